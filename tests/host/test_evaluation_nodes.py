"""Evaluation nodes through real ComfyUI objects, checked against independent implementations: transformers'
CLIP / DINOv2 classes built from the same tiny configs and random weights, and the pure metric functions."""

import json

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_dtc import TINY_DINOV2_CONFIG, tiny_dinov2
from exemplar_dev.tiny_evaluation import (
    TINY_CLIP_TEXT_CONFIG,
    random_vgg16_state_dict,
    tiny_clip_text,
    tiny_clip_text_state_dict,
)
from exemplar_dev.tiny_models import TINY_CLIP_VISION_CONFIG, atomic_save, tiny_clip_vision


def quantised(seed: int, batch: int, size: int) -> torch.Tensor:
    """Images already on ComfyUI's 1/255 grid at the encoder's size, so preprocessing is only mean/std."""
    return torch.randint(0, 256, (batch, size, size, 3), generator=torch.Generator().manual_seed(seed)) / 255.0


def normalised(image: torch.Tensor, mean, std) -> torch.Tensor:
    x = image.movedim(-1, 1)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def cos(a, b):
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


@pytest.fixture(scope="module")
def clip_vision(comfy, tmp_path_factory):
    return tiny_clip_vision(tmp_path_factory.mktemp("clip_vision"))


@pytest.fixture(scope="module")
def hf_clip_vision(clip_vision):
    import transformers

    config = transformers.CLIPVisionConfig(**{k: v for k, v in TINY_CLIP_VISION_CONFIG.items() if k != "model_type"})
    model = transformers.CLIPVisionModelWithProjection(config).eval()
    missing, unexpected = model.load_state_dict(clip_vision.model.state_dict(), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    return model


def hf_image_embeds(model, image):
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    with torch.no_grad():
        return model(pixel_values=normalised(image, mean, std)).image_embeds


def run(node, node_id, **inputs):
    return node(node_id).execute(**inputs)


def test_clip_i_matches_transformers_clip_vision_with_projection(node, clip_vision, hf_clip_vision):
    images, references = quantised(1, 3, 56), quantised(2, 3, 56)
    out = run(node, "ExemplarImageSimilarity", clip_vision=clip_vision, images=images, references=references,
              pairing="paired", score="cosine", crop="center")
    expected = cos(hf_image_embeds(hf_clip_vision, images), hf_image_embeds(hf_clip_vision, references))
    mean, metrics, summary = out.result
    torch.testing.assert_close(torch.tensor(metrics["CLIP-I"]).double(), expected, rtol=0, atol=2e-6)
    assert mean == pytest.approx(float(expected.mean()), abs=2e-6)
    assert summary.startswith("CLIP-I: mean ")
    record = json.loads(out.ui["exemplar_metrics"][0])
    assert record["CLIP-I"]["values"] == pytest.approx(metrics["CLIP-I"], abs=0)


def test_dreambooth_all_pairs_protocol_is_the_mean_over_every_pair(node, clip_vision, hf_clip_vision):
    images, references = quantised(3, 2, 56), quantised(4, 3, 56)
    _, metrics, _ = run(node, "ExemplarImageSimilarity", clip_vision=clip_vision, images=images,
                        references=references, pairing="all_pairs", score="cosine", crop="center").result
    a, b = hf_image_embeds(hf_clip_vision, images), hf_image_embeds(hf_clip_vision, references)
    expected = torch.stack([cos(a[i : i + 1], b).mean() for i in range(2)])
    torch.testing.assert_close(torch.tensor(metrics["CLIP-I"]).double(), expected, rtol=0, atol=2e-6)


def test_region_clip_score_crops_the_result_to_the_mask_box(node, clip_vision, hf_clip_vision):
    images = quantised(5, 2, 112)
    reference = quantised(6, 1, 56)
    mask = torch.zeros(1, 112, 112)
    mask[:, 20:76, 40:96] = 1
    _, metrics, _ = run(node, "ExemplarImageSimilarity", clip_vision=clip_vision, images=images, references=reference,
                        pairing="paired", score="clip_score", crop="center", mask=mask).result
    crops = images[:, 20:76, 40:96]
    expected = (100 * cos(hf_image_embeds(hf_clip_vision, crops), hf_image_embeds(hf_clip_vision, reference)))
    torch.testing.assert_close(torch.tensor(metrics["CLIP-I region score"]).double(), expected.clamp_min(0),
                               rtol=0, atol=2e-4)


def dinov2_to_transformers(state_dict: dict) -> dict:
    """ComfyUI keeps the older Hugging Face DINOv2 names; transformers 5 renamed attention and SwiGLU weights."""
    renames = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
               "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj",
               "mlp.weights_out": "mlp.down_proj"}
    out = {}
    for key, value in state_dict.items():
        if "mlp.weights_in" in key:  # SwiGLU: silu(first half) * second half
            gate, up = value.chunk(2, dim=0)
            out[key.replace("mlp.weights_in", "mlp.gate_proj")] = gate
            out[key.replace("mlp.weights_in", "mlp.up_proj")] = up
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def test_dino_matches_transformers_dinov2(node, comfy, tmp_path):
    import transformers

    dino = tiny_dinov2(tmp_path)
    config = transformers.Dinov2Config(**{k: v for k, v in TINY_DINOV2_CONFIG.items()
                                          if k not in ("model_type", "image_mean", "image_std")})
    hf = transformers.Dinov2Model(config).eval()
    missing, unexpected = hf.load_state_dict(dinov2_to_transformers(dino.model.state_dict()), strict=False)
    assert not unexpected and all("mask_token" in k for k in missing), (missing, unexpected)
    images, references = quantised(7, 2, 518), quantised(8, 1, 518)
    _, metrics, _ = run(node, "ExemplarImageSimilarity", clip_vision=dino, images=images, references=references,
                        pairing="paired", score="cosine", crop="center").result
    with torch.no_grad():
        mean, std = TINY_DINOV2_CONFIG["image_mean"], TINY_DINOV2_CONFIG["image_std"]
        a = hf(pixel_values=normalised(images, mean, std)).pooler_output
        b = hf(pixel_values=normalised(references, mean, std)).pooler_output
    torch.testing.assert_close(torch.tensor(metrics["DINO"]).double(), cos(a, b), rtol=0, atol=2e-6)
    small = quantised(16, 2, 224)
    _, metrics, _ = run(node, "ExemplarImageSimilarity", clip_vision=dino, images=small, references=small[:1],
                        pairing="paired", score="cosine", crop="center", resolution=224).result
    with torch.no_grad():  # transformers interpolates its position embeddings bicubically, as DINOv2 does
        a = hf(pixel_values=normalised(small, mean, std)).pooler_output
    torch.testing.assert_close(torch.tensor(metrics["DINO"]).double(), cos(a, a[:1]), rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def clip_text(comfy):
    return tiny_clip_text()


def test_clip_t_matches_transformers_clip_text_and_vision_with_projection(node, clip_vision, hf_clip_vision, clip_text):
    import transformers

    config = transformers.CLIPTextConfig(**{k: v for k, v in TINY_CLIP_TEXT_CONFIG.items() if k != "model_type"})
    hf_text = transformers.CLIPTextModelWithProjection(config).eval()
    missing, unexpected = hf_text.load_state_dict(tiny_clip_text_state_dict(), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    tokenizer_dir = pack_submodule("nodes.evaluation.encoders").comfy.sd1_clip.__file__.rsplit("/", 1)[0]
    tokenizer = transformers.CLIPTokenizer.from_pretrained(f"{tokenizer_dir}/sd1_tokenizer")
    prompts = ["a photo of a dog", "an oil painting of a red house"]
    images = quantised(9, 2, 56)
    out = run(node, "ExemplarTextAlignment", clip_vision=clip_vision, clip=clip_text, images=images,
              text="\n".join(prompts), one_prompt_per_line=True, score="clip_score", crop="center")
    with torch.no_grad():
        text = torch.cat([hf_text(input_ids=tokenizer(p, return_tensors="pt").input_ids).text_embeds for p in prompts])
    expected = (100 * cos(hf_image_embeds(hf_clip_vision, images), text)).clamp_min(0)
    torch.testing.assert_close(torch.tensor(out.result[1]["CLIP-T score"]).double(), expected, rtol=0, atol=2e-4)
    single = run(node, "ExemplarTextAlignment", clip_vision=clip_vision, clip=clip_text, images=images,
                 text=prompts[0], one_prompt_per_line=False, score="cosine", crop="center").result[1]["CLIP-T"]
    torch.testing.assert_close(torch.tensor(single).double(), cos(hf_image_embeds(hf_clip_vision, images), text[:1]),
                               rtol=0, atol=2e-6)


def test_clip_t_refuses_what_cannot_give_it(node, comfy, clip_vision, clip_text, tiny_sd15, tmp_path):
    images = quantised(10, 1, 56)
    common = dict(images=images, text="a dog", one_prompt_per_line=False, score="cosine", crop="center")
    with pytest.raises(ValueError, match="its text projection was not loaded"):
        run(node, "ExemplarTextAlignment", clip_vision=clip_vision, clip=tiny_sd15[1], **common)
    with pytest.raises(ValueError, match="clip_vision: CLIP-T needs a CLIP vision model with its projection"):
        run(node, "ExemplarTextAlignment", clip_vision=tiny_dinov2(tmp_path), clip=clip_text, **common)
    with pytest.raises(ValueError, match="text: 2 prompt lines for 1 images"):
        run(node, "ExemplarTextAlignment", clip_vision=clip_vision, clip=clip_text,
            **dict(common, text="a\nb", one_prompt_per_line=True))


def test_background_preservation_outputs_the_pure_metrics_in_order(node):
    source = quantised(11, 1, 48)
    result = quantised(12, 2, 48)
    mask = torch.zeros(1, 24, 24)
    mask[:, 6:18, 6:18] = 1
    out = run(node, "ExemplarBackgroundPreservation", source=source, result=result, mask=mask).result
    region = pack_submodule("models.common.masks").binary_mask(mask, (48, 48))
    expected = pack_submodule("models.evaluation.pixels").background_metrics(source, result, region)
    assert out[:8] == tuple(float(v.mean()) for v in expected.values())
    assert out[8] == {k: [float(x) for x in v] for k, v in expected.items()}
    assert out[0] < 100 and 0 < out[1] < 1
    with pytest.raises(ValueError, match="mask has batch 3; expected 1 or the result batch 2"):
        run(node, "ExemplarBackgroundPreservation", source=source, result=result, mask=torch.ones(3, 48, 48))


def test_style_score_node_reads_vgg_from_the_model_folder(node, model_folder):
    folder = model_folder("vgg")
    sd = random_vgg16_state_dict(seed=3)
    atomic_save(sd, folder / "vgg16_test.safetensors", {})
    style_image = quantised(14, 1, 64)
    images = torch.cat([quantised(13, 1, 64), style_image])
    mean, metrics, _ = run(node, "ExemplarStyleScore", vgg_name="vgg16_test.safetensors", images=images,
                           style_image=style_image, patch_fraction=0.5, patch_size=64).result
    style = pack_submodule("models.evaluation.style")
    vgg = pack_submodule("models.common.perceptual").vgg16_features(sd, taps=style.STYLE_LAYERS)
    expected = style.style_scores(vgg, images, style_image, 0.5, 64)
    torch.testing.assert_close(torch.tensor(metrics["style score"]).double(), expected, rtol=1e-6, atol=0)
    assert mean == pytest.approx(float(expected.mean()), rel=1e-6)
    assert metrics["style score"][1] == pytest.approx(100.0, abs=1e-6) and metrics["style score"][0] < 100
    atomic_save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, folder / "not_vgg.safetensors", {})
    with pytest.raises(ValueError, match=r"vgg_name: not_vgg.safetensors: VGG16 weights lack \['features.0.bias'.*"
                                         r"expected torchvision's VGG16 file \(vgg16-397923af.pth"):
        run(node, "ExemplarStyleScore", vgg_name="not_vgg.safetensors", images=images, style_image=style_image,
            patch_fraction=0.5, patch_size=64)


def test_style_score_node_reads_torchvisions_own_file_and_taps_its_features(node, model_folder):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(4)
    reference = torchvision.models.vgg16(weights=None).features.eval()
    torch.save(reference.state_dict(), model_folder("vgg") / "vgg16_torchvision.pth")  # features.* without prefix
    style_image = quantised(16, 1, 64)
    images = torch.cat([quantised(17, 2, 64), style_image])
    run_out = run(node, "ExemplarStyleScore", vgg_name="vgg16_torchvision.pth", images=images,
                  style_image=style_image, patch_fraction=0.5, patch_size=64).result
    style = pack_submodule("models.evaluation.style")
    vgg = pack_submodule("nodes.evaluation.encoders").load_vgg("vgg16_torchvision.pth").loaded()
    pixels = style.five_patches(images, 0.5, 64).to(next(vgg.parameters()))
    with torch.no_grad():
        ours = vgg(pixels)
        h, expected = normalised(pixels.movedim(1, -1), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), []
        for index, module in enumerate(reference.to(pixels.device)):
            h = module(h)
            if index in style.STYLE_LAYERS:
                expected.append(h)
    assert len(ours) == 5
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    scores = run_out[1]["style score"]
    assert scores[2] == pytest.approx(100.0, abs=1e-6) and max(scores[:2]) < 100


def test_plot_metrics_draws_one_figure_from_several_metric_nodes(node):
    images = quantised(15, 3, 64)
    figure = run(node, "ExemplarPlotMetrics", metrics_1={"PSNR": [20.0, 22.0, 30.0]},
                 metrics_2={"DINO": [0.1, 0.5, 0.4]}, x_label="cfg", x_values="1, 3, 5", images=images).result[0]
    plot = pack_submodule("models.evaluation.plot")
    expected = plot.sweep_figure({"PSNR": [20.0, 22.0, 30.0], "DINO": [0.1, 0.5, 0.4]}, ["1", "3", "5"], "cfg", images)
    assert torch.equal(figure, expected)
    with pytest.raises(ValueError, match="x_values has 2 entries but the metrics have 3 points"):
        run(node, "ExemplarPlotMetrics", metrics_1={"PSNR": [1.0, 2.0, 3.0]}, x_label="cfg", x_values="1,2")
