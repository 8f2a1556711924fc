"""Tiny models for Diffuse to Choose tests: a 9-channel (inpainting) SD1 checkpoint and a DINOv2-shaped CLIP_VISION.

The checkpoint holds the tiny SD1 UNet with `in_channels` 9 (ComfyUI detects SD1.5 and switches it
to inpainting: noise, mask, masked-source latent) and the TAESD VAE; it has no text encoder (the
DtC main UNet is conditioned on image tokens). Weights are deterministic (tiny_models._fill).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .host import boot
from .tiny_models import TINY_SD15_UNET, atomic_save, is_current, random_clip_vision_model, random_state_dict, tiny_unet
from . import model_files

TINY_SD15_INPAINT_NAME = model_files.SD15_INPAINT.name
TINY_DTC_ADAPTER_NAME = model_files.DTC_ADAPTER.name
BUILDER_VERSION = "1"
TINY_SD15_INPAINT_UNET = dict(TINY_SD15_UNET, in_channels=9)

TINY_DINOV2_CONFIG = {
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "hidden_size": 32,
    "image_size": 518,  # ComfyUI's DINOv2 embeddings always hold the 37x37 grid of 518 px
    "layer_norm_eps": 1e-06,
    "layerscale_value": 1.0,
    "mlp_ratio": 4,
    "model_type": "dinov2",
    "num_attention_heads": 2,
    "num_channels": 3,
    "num_hidden_layers": 2,
    "patch_size": 14,
    "qkv_bias": True,
    "use_swiglu_ffn": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}


def sd15_inpaint_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    boot()
    import comfy.taesd.taesd

    sd = random_state_dict(tiny_unet(TINY_SD15_INPAINT_UNET), "model.diffusion_model.", seed)
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD()
    sd.update(random_state_dict(taesd, "first_stage_model.", seed + 2))
    return sd




def write_tiny_sd15_inpaint_checkpoint(directory: Path, seed: int = 0, name: str = TINY_SD15_INPAINT_NAME) -> Path:
    path = Path(directory) / name
    meta = {
        "exemplar.kind": "tiny_sd15_inpaint_checkpoint",
        "exemplar.seed": str(seed),
        "exemplar.builder": BUILDER_VERSION,
    }
    if is_current(path, meta):
        return path
    return atomic_save({k: v.half() for k, v in sd15_inpaint_state_dict(seed).items()}, path, meta)


def load_tiny_inpaint_model(directory: Path, seed: int = 0):
    """(MODEL, VAE) of the tiny inpainting checkpoint, through ComfyUI's own checkpoint loader."""
    boot()
    import comfy.sd

    path = write_tiny_sd15_inpaint_checkpoint(directory, seed)
    model, _clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=False)
    return model, vae


def tiny_dinov2(directory: Path, seed: int = 0, config: dict | None = None):
    """A ComfyUI ClipVisionModel (CLIP_VISION) running the DINOv2 code path at a tiny width."""
    return random_clip_vision_model(Path(directory) / "tiny_dinov2.json", config or TINY_DINOV2_CONFIG, seed)


def inpaint_conds(size: int = 8, batch: int = 1, tokens: int = 6, seed: int = 7):
    """(positive, negative) for a 9-channel model: random contexts + a masked-source latent and mask."""
    g = torch.Generator().manual_seed(seed)
    masked = torch.randn(batch, 4, size, size, generator=g)
    mask = torch.zeros(batch, 1, size * 8, size * 8)
    mask[:, :, size * 2 : size * 6, size * 2 : size * 6] = 1
    extra = {"concat_latent_image": masked, "concat_mask": mask}
    return [[torch.randn(batch, tokens, 768, generator=g), dict(extra)]], [
        [torch.randn(batch, tokens, 768, generator=g), dict(extra)]
    ]


def sample_inpaint(model, batch: int = 1, size: int = 8, cfg: float = 5.0, steps: int = 2) -> torch.Tensor:
    """A stock KSampler run (comfy.sample.sample, euler/normal, seed 0) with inpaint_conds."""
    import comfy.sample

    positive, negative = inpaint_conds(size, batch)
    latent = torch.zeros(batch, 4, size, size)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        model, noise, steps, cfg, "euler", "normal", positive, negative, latent, disable_pbar=True, seed=0
    )
