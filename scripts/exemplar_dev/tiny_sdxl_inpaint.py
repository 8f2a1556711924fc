"""A tiny SDXL inpainting checkpoint that ComfyUI's stock loader detects as SDXL inpainting.

SDXL detection (comfy/supported_models.py `SDXL`) fixes the width (model_channels 320), the context (2048, CLIP-L
and OpenCLIP-bigG side by side), the vector conditioning (2816 = pooled 1280 + six 256-wide size embeddings) and the
input transformer depths [0, 0, 2, 2, 10, 10]; channel multipliers, output and middle depths are free, so they are
kept small (all levels 320 wide, one transformer block per attention output block). `in_channels` 9 makes ComfyUI
switch the model to inpainting (noise, mask, masked-source latent). The text encoders are the full CLIP-L and bigG
(their shapes are fixed by the loader), stored in the single-file SDXL layout (`conditioner.embedders.0/1`); the
VAE is TAESD. Weights are deterministic (tiny_models._fill), fp16 on disk (about 2 GB, written once).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import model_files
from .tiny_sdxl_base import write_sdxl_checkpoint

# the file name of the public SDXL inpainting 0.1 single-file checkpoint, so a shipped workflow names what users get
TINY_SDXL_INPAINT_NAME = model_files.SDXL_INPAINT.name
BUILDER_VERSION = "1"
SDXL_CONTEXT_DIM = 2048
SDXL_POOLED_DIM = 1280

TINY_SDXL_INPAINT_UNET = {
    "image_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 1, 1],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": SDXL_CONTEXT_DIM,
    "adm_in_channels": SDXL_POOLED_DIM + 6 * 256,
    "num_classes": "sequential",
    "num_head_channels": 64,
    "num_heads": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "use_temporal_attention": False,
    "legacy": False,
}


def write_tiny_sdxl_inpaint_checkpoint(directory: Path, seed: int = 0, name: str = TINY_SDXL_INPAINT_NAME) -> Path:
    """The tiny SDXL inpainting checkpoint, written once."""
    path = Path(directory) / name
    return write_sdxl_checkpoint(path, "tiny_sdxl_inpaint_checkpoint", TINY_SDXL_INPAINT_UNET, seed, BUILDER_VERSION)


def sdxl_conditioning(context: torch.Tensor, pooled: torch.Tensor, size: int, **extra) -> list:
    """A CONDITIONING as CLIPTextEncodeSDXL gives it: tokens, pooled output and the six size values."""
    sizes = {"width": size, "height": size, "crop_w": 0, "crop_h": 0, "target_width": size, "target_height": size}
    return [[context, {"pooled_output": pooled, **sizes, **extra}]]


def random_sdxl_conditioning(seed: int, size: int = 64, tokens: int = 6, batch: int = 1, **extra) -> list:
    """A random SDXL CONDITIONING (context 2048, pooled 1280) for tests that need no text encoder run."""
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, tokens, SDXL_CONTEXT_DIM, generator=g)
    return sdxl_conditioning(context, torch.randn(batch, SDXL_POOLED_DIM, generator=g), size, **extra)
