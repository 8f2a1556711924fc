"""Paint by Example: step time of the PbE model / a plain SD1.5-inpaint model on the same UNet, and
the exemplar encoder's time per reference.

Both variants are the same full-size 9-channel SD1.5 UNet (random weights), sampled by the stock
KSampler path with the same masked-image latent, mask and noise mask, CFG 5:
- baseline "SD1.5 inpaint": ComfyUI's inpaint concat order ("mask", "masked_image"), a 77-token
  text context (positive and negative);
- "PbE": the pack's concat order ("masked_image", "mask_inverted"), a 1-token exemplar context
  and the learned unconditional vector.
The only extra work PbE could add is in building its concat; its context is shorter. Target: ratio <= 1.03.
The encoder figure is the full ViT-L/14 (24 layers, 1024 wide, 224 px) + 5-block mapper + projection.
"""

import statistics
import time

import torch
from harness import compare, full_sd15_model, report, text_conditioning

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import random_state_dict

STEPS = 3
REPEATS = 3


def inpaint_conds(context: torch.Tensor, latent: torch.Tensor, hole: torch.Tensor):
    return [[context, {"concat_latent_image": latent, "concat_mask": hole}]]


def vit_l_encoder():
    """The PbE exemplar encoder at the official size, random weights, behind ComfyUI's model management."""
    tower_mod = pack_submodule("models.paint_by_example.clip_vision_tower")
    enc_mod = pack_submodule("models.paint_by_example.encoder")
    glue = pack_submodule("nodes.paint_by_example.loader")
    tower = tower_mod.VisionTowerConfig(
        hidden_size=1024, intermediate_size=4096, num_layers=24, num_heads=16, patch_size=14, image_size=224
    )
    with torch.device("meta"):
        encoder = enc_mod.ExemplarEncoder(enc_mod.ExemplarEncoderConfig(tower, 5, 1024, 1, 768))
    return glue.make_encoder(random_state_dict(encoder, "", seed=0))


def main():
    model = full_sd15_model(in_channels=9)
    base_model = model.model
    latent = torch.zeros(1, 4, 32, 32)
    masked = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1
    text_pos, text_neg = text_conditioning(1)[0][0], text_conditioning(2)[0][0]
    exemplar = torch.randn(1, 1, 768, generator=torch.Generator().manual_seed(4))
    uncond = torch.randn(1, 1, 768, generator=torch.Generator().manual_seed(5))

    def run(concat_keys, positive, negative):
        def go():
            base_model.concat_keys = concat_keys  # same UNet weights for both variants
            import comfy.sample

            noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
            return comfy.sample.sample(
                model,
                noise,
                STEPS,
                5.0,
                "euler",
                "normal",
                positive,
                negative,
                latent,
                noise_mask=hole,
                disable_pbar=True,
                seed=0,
            )

        return go

    per_step = compare(
        {
            "SD1.5 inpaint (77-token text context)": run(
                ("mask", "masked_image"), inpaint_conds(text_pos, masked, hole), inpaint_conds(text_neg, masked, hole)
            ),
            "PbE (1-token exemplar context)": run(
                ("masked_image", "mask_inverted"),
                inpaint_conds(exemplar, masked, hole),
                inpaint_conds(uncond, masked, hole),
            ),
        },
        steps=STEPS,
        repeats=REPEATS,
    )
    text = report(
        "Paint by Example step time (full-size 9-channel SD1.5 UNet, 32x32 latent, CPU)",
        per_step,
        "SD1.5 inpaint (77-token text context)",
    )

    encoder = vit_l_encoder()
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    encoder.encode(pixels)  # warm-up (and load through model management)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        encoder.encode(pixels)
        times.append(time.perf_counter() - started)
    median_ms = statistics.median(times) * 1000
    line = f"  PbE exemplar encoder (ViT-L/14 + mapper + proj, fp32, CPU): {median_ms:.0f} ms per reference"
    print(line, flush=True)
    return text + "\n" + line


if __name__ == "__main__":
    main()
