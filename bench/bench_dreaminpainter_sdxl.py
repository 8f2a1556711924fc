"""DreamInpainter on SDXL: per-step cost of self-attention reference injection with K = 24 selected tokens vs no
injection, on an SDXL-shaped UNet at full width (320 ch, mult 1-2-4, 2 res blocks, context 2048, `y` 2816, no
attention at level 0, two transformer blocks per layer at level 1) at a small latent (32x32, CPU, fp32, cfg 5).

The level-2 transformer depth is EXEMPLAR_BENCH_SDXL_DEPTH (default 2; SDXL's own is 10, about 10 GB of fp32
weights): the injected blocks are the 640-wide ones of level 1, which are as in SDXL at any depth, so a shallower
level 2 removes only un-injected work and makes the measured ratio an upper bound of the full-depth one.
The tokens are the model's own features at its auto block (input.5, 640 wide) for a 512 px reference (64x64
latent): N = 32 x 32 = 1024, of which the top 24 by saliency are injected.
"""

import os

from harness import compare, ksampler_run, report

from exemplar_dev.host import boot, pack_submodule
from exemplar_dev.tiny_models import _fill

STEPS = 3
K = 24
REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))
DEPTH = int(os.environ.get("EXEMPLAR_BENCH_SDXL_DEPTH", "2"))


def sdxl_shaped_unet_config(depth: int) -> dict:
    from exemplar_dev.tiny_sdxl_inpaint import TINY_SDXL_INPAINT_UNET

    return {
        **TINY_SDXL_INPAINT_UNET,
        "in_channels": 4,
        "channel_mult": [1, 2, 4],
        "transformer_depth": [0, 0, 2, 2, depth, depth],
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, depth, depth, depth],
        "transformer_depth_middle": depth,
    }


def sdxl_model(depth: int):
    """A ModelPatcher around ComfyUI's SDXL model class with random weights, filled tensor by tensor."""
    import torch

    boot()
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SDXL(sdxl_shaped_unet_config(depth))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    with torch.no_grad():
        for name, tensor in model.diffusion_model.state_dict(keep_vars=True).items():
            tensor.copy_(_fill(name, tensor.shape, 0))
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def main():
    import torch

    from exemplar_dev.tiny_sdxl_inpaint import random_sdxl_conditioning

    features = pack_submodule("nodes.dreaminpainter.unet_features")
    attention = pack_submodule("nodes.dreaminpainter.reference_attention")
    tokens_module = pack_submodule("models.dreaminpainter.tokens")
    selector = pack_submodule("models.dreaminpainter.token_selector")

    model = sdxl_model(DEPTH)
    params = sum(p.numel() for p in model.model.diffusion_model.parameters())
    empty = random_sdxl_conditioning(0, size=512, tokens=77)
    reference = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(7))
    context, extra = features.reference_context(model, empty, 1)
    grid = features.unet_features(model, reference, "auto", 0, context, extra)
    batch, dim, h, w = grid.shape
    all_tokens = tokens_module.ExemplarTokens(
        grid.flatten(2).transpose(1, 2).contiguous(), tokens_module.spatial_positions(batch, h, w), (h, w)
    )
    top_k = selector.select_top_k(all_tokens, K, "saliency")
    with_k = attention.patch_reference_attention(model, top_k.tokens, 1.0, 0.0, 1.0, False)
    positive = random_sdxl_conditioning(1, size=256, tokens=77)
    negative = random_sdxl_conditioning(2, size=256, tokens=77)
    latent = torch.zeros(1, 4, 32, 32)
    baseline = "core KSampler (no injection)"
    per_step = compare(
        {
            baseline: lambda: ksampler_run(model, positive, negative, latent, STEPS),
            f"injection, K = {K} selected tokens": lambda: ksampler_run(with_k, positive, negative, latent, STEPS),
        },
        steps=STEPS,
        repeats=REPEATS,
    )
    text = report(
        f"DreamInpainter self-attention injection on SDXL (SDXL-shaped UNet, level-2 depth {DEPTH} of SDXL's 10, "
        f"{params / 1e6:.0f} M parameters, 32x32 latent, CPU)",
        per_step,
        baseline,
    )
    extra_line = f"  reference tokens: {dim}-wide from input.5 (auto), grid {h}x{w}, N = {all_tokens.count}, K = {K}"
    print(extra_line, flush=True)
    return text + "\n" + extra_line


if __name__ == "__main__":
    main()
