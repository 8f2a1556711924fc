"""A tiny Paint-by-Example model with deterministic random weights, in both layouts users have.

- `write_tiny_pbe_checkpoint`: the official single-file layout (`model.diffusion_model.*` SD1 UNet
  with 9 input channels, `first_stage_model.*`, `cond_stage_model.{transformer.vision_model,
  mapper, final_ln}.*`, `proj_out.*`, `learnable_vector`) as safetensors, or as a `.ckpt`
  (`{"state_dict": ...}`, readable with `weights_only=True`).
- `write_tiny_pbe_diffusers`: the diffusers folder (`unet/`, `vae/`, `image_encoder/`).

Sizes: the UNet is the tiny SD1.5 one (320 channels, two levels) with 9 input channels; the CLIP
vision tower is 128 wide, 24 layers (so diffusers' PaintByExampleMapper also has 5 blocks),
2 heads of 64, 56 px images with 14 px patches; the mapper has 5 blocks; context 768. The VAE is
TAESD in ComfyUI's layout (the loader hands VAE weights to ComfyUI's VAE class, which reads both
that and the full AutoencoderKL of the real checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .host import boot, pack_submodule
from .tiny_models import TINY_SD15_UNET, atomic_save, is_current, random_state_dict, tiny_unet
from . import model_files

TINY_PBE_NAME = model_files.PBE.name
TINY_PBE_DIFFUSERS = "exemplar_tiny_pbe"
BUILDER_VERSION = "1"

TINY_PBE_UNET = dict(TINY_SD15_UNET, in_channels=9)
TINY_VISION = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 24,
    "num_attention_heads": 2,
    "image_size": 56,
    "patch_size": 14,
    "layer_norm_eps": 1e-5,
    "hidden_act": "quick_gelu",
    "num_channels": 3,
    "projection_dim": 768,
    "model_type": "clip_vision_model",
}
MAPPER_BLOCKS = 5
CONTEXT_DIM = 768

# The diffusers UNet2DConditionModel config of TINY_PBE_UNET.
TINY_PBE_DIFFUSERS_UNET = {
    "_class_name": "UNet2DConditionModel",
    "sample_size": 32,
    "in_channels": 9,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640],
    "layers_per_block": 1,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "center_input_sample": False,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "use_linear_projection": False,
}


def tiny_encoder_config():
    enc = pack_submodule("models.paint_by_example.encoder")
    tower = pack_submodule("models.paint_by_example.clip_vision_tower").VisionTowerConfig(
        hidden_size=TINY_VISION["hidden_size"],
        intermediate_size=TINY_VISION["intermediate_size"],
        num_layers=TINY_VISION["num_hidden_layers"],
        num_heads=TINY_VISION["num_attention_heads"],
        patch_size=TINY_VISION["patch_size"],
        image_size=TINY_VISION["image_size"],
    )
    return enc.ExemplarEncoderConfig(tower, MAPPER_BLOCKS, TINY_VISION["hidden_size"], 1, CONTEXT_DIM)


def tiny_pbe_parts(seed: int = 0) -> tuple[dict, dict, dict]:
    """(unet, vae, encoder) state dicts, fp32, ldm / ComfyUI-TAESD / models.paint_by_example.encoder layouts."""
    boot()
    import comfy.taesd.taesd

    enc = pack_submodule("models.paint_by_example.encoder")
    unet = random_state_dict(tiny_unet(TINY_PBE_UNET), "", seed)
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD()
        encoder = enc.ExemplarEncoder(tiny_encoder_config())
    vae = random_state_dict(taesd, "", seed + 2)
    encoder_sd = random_state_dict(encoder, "", seed + 3)
    positions = (TINY_VISION["image_size"] // TINY_VISION["patch_size"]) ** 2 + 1
    # HF checkpoints of the official file's era carry this buffer; the loader must ignore it
    encoder_sd["transformer.vision_model.embeddings.position_ids"] = torch.arange(positions)[None]
    return unet, vae, encoder_sd


def tiny_pbe_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The official single-file layout of the tiny model (fp32)."""
    return pack_submodule("models.paint_by_example.checkpoint").official_state_dict(*tiny_pbe_parts(seed))


def _half(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}


def _meta(seed: int, kind: str) -> dict[str, str]:
    return {"exemplar.kind": kind, "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}




def write_tiny_pbe_checkpoint(
    directory: Path, seed: int = 0, name: str = TINY_PBE_NAME, fmt: str = "safetensors"
) -> Path:
    """Official layout; fmt "safetensors" (fp16, reused when up to date) or "ckpt" (a Lightning-style pickle)."""
    path = Path(directory) / name
    meta = _meta(seed, "tiny_pbe_checkpoint")
    if fmt == "ckpt":
        sd = tiny_pbe_state_dict(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"state_dict": sd, "global_step": 0, "epoch": 0}, tmp)
        os.replace(tmp, path)
        return path
    if is_current(path, meta):
        return path
    sd = _half(tiny_pbe_state_dict(seed))
    return atomic_save(sd, path, meta)


def unet_to_diffusers_names(unet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import comfy.utils

    ldm_to_diffusers = {v: k for k, v in comfy.utils.unet_to_diffusers(TINY_PBE_UNET).items()}
    missing = sorted(set(unet) - set(ldm_to_diffusers))
    if missing:
        raise RuntimeError(f"no diffusers name for {missing[:3]}")
    return {ldm_to_diffusers[k]: v for k, v in unet.items()}


def write_tiny_pbe_diffusers(directory: Path, seed: int = 0, name: str = TINY_PBE_DIFFUSERS) -> Path:
    """The diffusers folder form of the same (fp16) weights as the checkpoint, rebuilt only when out of date."""
    folder = Path(directory) / name
    meta = _meta(seed, "tiny_pbe_diffusers")
    if is_current(folder / "image_encoder" / "model.safetensors", meta):
        return folder
    unet, vae, encoder = (_half(part) for part in tiny_pbe_parts(seed))
    encoder = {k: v for k, v in encoder.items() if not k.endswith("position_ids")}
    to_diffusers = pack_submodule("models.paint_by_example.checkpoint").encoder_to_diffusers
    tmp = folder.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    files = {
        "unet/diffusion_pytorch_model.safetensors": unet_to_diffusers_names(unet),
        "vae/diffusion_pytorch_model.safetensors": vae,
        "image_encoder/model.safetensors": to_diffusers(encoder),
    }
    configs = {
        "model_index.json": {"_class_name": "PaintByExamplePipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                             "image_encoder": ["paint_by_example", "PaintByExampleImageEncoder"]},
        "unet/config.json": TINY_PBE_DIFFUSERS_UNET,
        "vae/config.json": {"_comment": "TAESD weights in ComfyUI's layout (tiny test model)"},
        "image_encoder/config.json": dict(TINY_VISION, architectures=["PaintByExampleImageEncoder"]),
    }
    try:
        for rel, config in configs.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(json.dumps(config, indent=2))
        for rel, sd in files.items():
            atomic_save(sd, tmp / rel, meta)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
