"""A tiny checkpoint that ComfyUI's `CheckpointLoaderSimple` detects as SDXL (`supported_models.SDXL`).

SDXL detection fixes the UNet's width (320), context (2048), vector input (2816) and the input-side transformer
depths per res block ([0, 0, 2, 2, 10, 10]); the channel multipliers, the output-side depths and the middle depth
are free, so this UNet keeps 320 channels on all three levels and one transformer block per output attention layer.
Both text towers are SDXL's real ones (CLIP-L and OpenCLIP bigG, their shapes are fixed by ComfyUI's configs),
written in the official file's key layout (`conditioner.embedders.0.transformer.*`, `conditioner.embedders.1.model.*`);
the VAE is TAESD. Weights: tiny_models._fill (deterministic per tensor name), stored fp16.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from . import model_files
from .host import boot
from .tiny_models import TINY_SD15_UNET, atomic_save, is_current, random_state_dict, tiny_unet

TINY_SDXL_NAME = model_files.SDXL.name
BUILDER_VERSION = "1"

TINY_SDXL_BASE_UNET = {
    **TINY_SD15_UNET,
    # fixed by SDXL's detection (comfy.supported_models.SDXL.unet_config), besides model_channels 320
    **dict(transformer_depth=[0, 0, 2, 2, 10, 10], context_dim=2048, adm_in_channels=2816),
    **dict(use_linear_in_transformer=True, use_temporal_attention=False),
    # free: three levels of 320 channels, one transformer block per output-side attention layer
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 1, 1],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "num_classes": "sequential",
    "num_head_channels": 64,
    "num_heads": -1,
}


def sdxl_text_encoders(seed: int) -> dict[str, torch.Tensor]:
    """CLIP-L (seed + 1) and OpenCLIP-bigG (seed + 3) in the official single-file SDXL layout (ComfyUI's own saving
    conversion), fp16."""
    import comfy.ops
    import comfy.sd1_clip
    import comfy.supported_models
    from comfy.clip_model import CLIPTextModel

    folder = Path(comfy.sd1_clip.__file__).parent
    sd = {}
    for name, config_file, offset in (("clip_l", "sd1_clip_config.json", 1), ("clip_g", "clip_config_bigg.json", 3)):
        config = json.loads((folder / config_file).read_text())
        encoder = CLIPTextModel(config, torch.float16, "meta", comfy.ops.disable_weight_init)
        sd.update(random_state_dict(encoder, f"{name}.transformer.", seed + offset, torch.float16))
    return comfy.supported_models.SDXL(dict(TINY_SDXL_BASE_UNET)).process_clip_state_dict_for_saving(sd)


def sdxl_checkpoint_state_dict(unet_config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A UNet of `unet_config` + CLIP-L + bigG + TAESD in the official single-file SDXL key layout, fp16."""
    boot()
    import comfy.taesd.taesd

    sd = random_state_dict(tiny_unet(unet_config), "model.diffusion_model.", seed, torch.float16)
    sd.update(sdxl_text_encoders(seed))
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD()
    sd.update(random_state_dict(taesd, "first_stage_model.", seed + 2, torch.float16))
    return sd


def write_sdxl_checkpoint(path: Path, kind: str, unet_config: dict, seed: int, builder: str) -> Path:
    """Write (once) a tiny SDXL checkpoint of `unet_config`; a present file of the same kind, seed and builder version
    is reused."""
    meta = {"exemplar.kind": kind, "exemplar.seed": str(seed), "exemplar.builder": builder}
    if is_current(path, meta):
        return path
    return atomic_save(sdxl_checkpoint_state_dict(unet_config, seed), path, meta)


def write_tiny_sdxl_checkpoint(directory: Path, seed: int = 0, name: str = TINY_SDXL_NAME) -> Path:
    """The tiny SDXL base checkpoint, written once."""
    path = Path(directory) / name
    return write_sdxl_checkpoint(path, "tiny_sdxl_checkpoint", TINY_SDXL_BASE_UNET, seed, BUILDER_VERSION)


TINY_SDXL_STAGED_EMBEDDING_NAME = model_files.DREAMSTYLER_SDXL_STYLE.name
WORKFLOW_SDXL_LORA = "dreambooth/sks_dog_sdxl.safetensors"


def tiny_sdxl_staged_embedding(stages: int = 2, seed: int = 5):
    """A random SDXL staged embedding for `<sks1>`: per stage one CLIP-L and one bigG vector (norm ~1). Two stages:
    every stage costs the workflow two bigG encodes."""
    from .host import pack_submodule

    se = pack_submodule("models.dreamstyler.staged_embedding")
    g = torch.Generator().manual_seed(seed)
    return se.StagedEmbedding(
        "<sks1>",
        torch.randn(stages, 1, 768, generator=g) / 768**0.5,
        base="sdxl",
        clip_g=torch.randn(stages, 1, 1280, generator=g) / 1280**0.5,
    )


def retargeted(spec: list[dict], values: dict) -> list[dict]:
    """A copy of a workflow spec with every widget value found in `values` replaced (the same graph on SDXL)."""
    out = copy.deepcopy(spec)
    for node in out:
        widgets = node.get("widgets", {})
        for name, value in widgets.items():
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value in values:
                widgets[name] = values[value]
    return out
