"""Evaluation metrics: time per image of each metric node at real encoder sizes (random weights, CPU).

Encoders are full size: CLIP ViT-L/14 (224 px, ComfyUI's own config), DINOv2-large (ComfyUI's config; at its 518 px
and at the DINO protocol's 224 px), torchvision's VGG16 features. Images are 512x512, two per call.
Each metric node is compared with the one stock operation it cannot avoid, in the same run:
- CLIP-I / DINO: ComfyUI's `encode_image` of the images and the references (what CLIPVisionEncode does);
  the node adds only the cosine, so the ratio should be ~1.0;
- style score: one VGG16 forward per image and style patch (5 patches each, as the score reads them);
- background metrics (PSNR, SSIM, MSE, ΔE inside and outside the mask): absolute time, no encoder.
"""

from pathlib import Path

import torch
from harness import compare, report

from exemplar_dev.host import boot, pack_submodule
from exemplar_dev.tiny_models import random_clip_vision_model, random_state_dict

BATCH = 2
REPEATS = 2


def comfy_config(relative: str) -> dict:
    import json

    import comfy.clip_vision

    return json.loads((Path(comfy.clip_vision.__file__).parent / relative).read_text())


def random_encoder(relative_config: str, name: str, seed: int):
    import tempfile

    return random_clip_vision_model(Path(tempfile.mkdtemp()) / f"{name}.json", comfy_config(relative_config), seed)


def main():
    boot()
    nodes = pack_submodule("nodes.evaluation.nodes")
    style = pack_submodule("models.evaluation.style")
    perceptual = pack_submodule("models.common.perceptual")
    encoders = pack_submodule("nodes.evaluation.encoders")
    torch.manual_seed(0)
    images = torch.rand(BATCH, 512, 512, 3)
    references = torch.rand(BATCH, 512, 512, 3)
    mask = torch.zeros(1, 512, 512)
    mask[:, 128:384, 128:384] = 1

    def similarity_variants(clip_vision, resolutions):
        def stock():
            with torch.no_grad():
                clip_vision.encode_image(images, crop=True)
                clip_vision.encode_image(references, crop=True)

        variants = {"stock encode_image of both batches": stock}
        for resolution in resolutions:
            label = f"metric node at {resolution or clip_vision.image_size} px"
            variants[label] = lambda r=resolution: nodes.ImageSimilarity.execute(
                clip_vision, images, references, "paired", "cosine", "center", r
            )
        return variants

    for config, title, resolutions in (
        ("clip_vision_config_vitl.json", "CLIP-I, CLIP ViT-L/14", (0,)),
        ("image_encoders/dino2_large.json", "DINO, DINOv2-large", (0, 224)),
    ):
        clip_vision = random_encoder(config, "encoder", seed=1)
        per_call = compare(similarity_variants(clip_vision, resolutions), steps=BATCH, repeats=REPEATS)
        print(report(f"{title}: seconds per image pair", per_call, "stock encode_image of both batches"))
        del clip_vision

    vgg_shapes = perceptual.VGG16Features(taps=style.STYLE_LAYERS)
    encoder = encoders.VGGStyleEncoder(random_state_dict(vgg_shapes, "", seed=2))
    patches = torch.rand(BATCH * 5 + 5, 3, 224, 224)

    def vgg_forward():
        with torch.no_grad():
            encoder.loaded()(patches)

    def style_score():
        with torch.no_grad():
            style.style_scores(encoder.loaded(), images, references[:1])

    per_call = compare({"VGG16 forward of the 25 patches": vgg_forward, "style score node math": style_score},
                       steps=BATCH, repeats=REPEATS)
    print(report("Style score (VGG16 Gram, 5 patches of 224 px): seconds per image", per_call,
                 "VGG16 forward of the 25 patches"))

    def background():
        nodes.BackgroundPreservation.execute(images, references, mask)

    per_call = compare({"background metrics": background}, steps=BATCH, repeats=REPEATS)
    print(report("Background preservation (PSNR, SSIM, MSE, ΔE in/out, 512x512): seconds per image", per_call,
                 "background metrics"))


if __name__ == "__main__":
    main()
