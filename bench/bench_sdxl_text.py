"""DreamStyler and DreamBooth on an SDXL-shaped UNet (random weights, CPU, fp32), ratios measured in one run:

(1) a sampling step with a staged conditioning (T = 6 entries, one active per step) against the same step with a
    plain single-entry conditioning (issue target <= 1.02);
(2) DreamBooth trainer steps per second (1 instance + 1 class image per step, LoRA on the attention projections, SDXL
    size conditioning; also without class images) against core TrainLoraNode (1 image per step) on the same model
    (target >= 1.0 with the class pass).

EXEMPLAR_BENCH_SDXL_DEPTH picks the UNet: "full" is SDXL base (320 ch, mult 1-2-4, transformer depths 0-2-10, 2.6 B
parameters, ~10 GB of fp32 weights; training needs about twice that), "reduced" (default) the same widths and levels
with one transformer block per attention layer (SDXL: 2 and 10), 0.6 B parameters, for a machine whose RAM is shared.
Latent 32x32 (256 px), conditioning random: context [1, 77, 2048], pooled [1, 1280]. EXEMPLAR_BENCH_SDXL_PARTS
(default "sampling,training") runs one part alone.
"""

import gc
import os

import torch
from bench_dreambooth import compare_trainers
from bench_dreamstyler import sampling_ratio

from exemplar_dev import host
from exemplar_dev.tiny_sdxl_base import TINY_SDXL_BASE_UNET

REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))
DEPTH = os.environ.get("EXEMPLAR_BENCH_SDXL_DEPTH", "reduced")

FULL_SDXL_UNET = {  # the tiny checkpoint's UNet at SDXL base's widths and depths
    **TINY_SDXL_BASE_UNET,
    "channel_mult": [1, 2, 4],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
}
REDUCED_SDXL_UNET = {
    **FULL_SDXL_UNET,
    "transformer_depth": [0, 0, 1, 1, 1, 1],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
}


def sdxl_model(inference: bool = False):
    """A ModelPatcher of ComfyUI's SDXL model class around the chosen UNet (random weights, fp32)."""
    host.boot()
    import comfy.model_patcher
    import comfy.supported_models

    from exemplar_dev.tiny_models import random_state_dict

    unet = dict(FULL_SDXL_UNET if DEPTH == "full" else REDUCED_SDXL_UNET)
    config = comfy.supported_models.SDXL(unet)
    config.set_inference_dtype(torch.float32, None)
    with torch.inference_mode(inference):
        model = config.get_model({})
        missing, unexpected = model.diffusion_model.load_state_dict(
            random_state_dict(model.diffusion_model, "", seed=0)
        )
    assert not missing and not unexpected, (missing, unexpected)
    cpu = torch.device("cpu")
    params = sum(p.numel() for p in model.diffusion_model.parameters()) / 1e9
    print(f"SDXL-shaped UNet ({DEPTH} depth): {params:.2f} B parameters", flush=True)
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def conditioning(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g)}]]


def staged_ratio(model):
    return sampling_ratio(model, conditioning, f"{DEPTH}-depth SDXL UNet")


def trainer_ratio(model):
    return compare_trainers(model, conditioning, f"{DEPTH}-depth SDXL UNet", max(1, REPEATS - 1), ">= 1.0 per step")


def main():
    parts = os.environ.get("EXEMPLAR_BENCH_SDXL_PARTS", "sampling,training").split(",")
    out = []
    if "sampling" in parts:
        out.append(staged_ratio(sdxl_model()))
        gc.collect()
    if "training" in parts:
        with torch.inference_mode():  # as in a ComfyUI run: the loader creates inference tensors
            model = sdxl_model(inference=True)
        out.append(trainer_ratio(model))
    return "\n".join(out)


if __name__ == "__main__":
    main()
