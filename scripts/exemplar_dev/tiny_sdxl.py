"""A small SDXL-shaped model built in-process (never written to disk): ComfyUI's SDXL model class
with a shrunken UNet that keeps SDXL's structure (no attention at level 0, linear transformer
projections, two transformer blocks per attention layer, `adm` vector conditioning with a pooled
text embedding). Deterministic random weights, fp32, CPU."""

from __future__ import annotations

import torch

from .host import boot
from .tiny_models import random_state_dict

POOLED_DIM = 32
TINY_SDXL_UNET = {
    "model_channels": 64,
    "use_linear_in_transformer": True,
    "transformer_depth": [0, 2],
    "transformer_depth_output": [0, 0, 2, 2],
    "transformer_depth_middle": 1,
    "context_dim": 96,
    "adm_in_channels": POOLED_DIM + 6 * 256,
    "use_temporal_attention": False,
    "in_channels": 4,
    "out_channels": 4,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "num_head_channels": 32,
    "num_heads": -1,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "image_size": 32,
}


def tiny_sdxl_model(seed: int = 0):
    """A ModelPatcher around comfy.model_base.SDXL with the tiny SDXL-shaped UNet above."""
    boot()
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SDXL(dict(TINY_SDXL_UNET))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    missing, unexpected = model.diffusion_model.load_state_dict(random_state_dict(model.diffusion_model, "", seed))
    assert not missing and not unexpected, (missing, unexpected)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_sdxl_conditioning(seed: int, tokens: int = 5):
    g = torch.Generator().manual_seed(seed)
    return [
        [
            torch.randn(1, tokens, TINY_SDXL_UNET["context_dim"], generator=g),
            {"pooled_output": torch.randn(1, POOLED_DIM, generator=g)},
        ]
    ]
