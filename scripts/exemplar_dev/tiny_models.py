"""Deterministic tiny random-weight models that ComfyUI's stock loaders accept.

`write_tiny_sd15_checkpoint` writes a single-file checkpoint that `CheckpointLoaderSimple`
detects as SD1.5: an SD1-shaped UNet (320 channels, context 768, shallow), the full CLIP-L text
model (its shape is fixed by the detector) and a TAESD VAE. Weights are drawn per tensor from a
generator seeded by (seed, tensor name), scaled by 1/sqrt(fan_in); norms are 1 and biases 0,
so every output is finite. The same seed always gives the same bytes.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import torch

from .host import boot
from . import model_files

TINY_SD15_NAME = model_files.SD15.name
BUILDER_VERSION = "1"

# Depth is free for SD1.5 detection; width and context are not (model_channels 320, context 768).
TINY_SD15_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "legacy": False,
}


def _fill(name: str, shape: torch.Size, seed: int) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if len(shape) == 0:
        return torch.tensor(1.0 if "scale" in leaf else 0.0)
    if leaf == "bias" or "shift" in leaf:
        return torch.zeros(shape)
    if len(shape) == 1:  # norm weights
        return torch.ones(shape)
    generator = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    fan_in = shape[1:].numel() if len(shape) > 1 else shape[0]
    if "embedding" in name:  # token / position tables are looked up, not multiplied
        fan_in = shape[-1]
    return torch.randn(shape, generator=generator) / fan_in**0.5


def random_state_dict(module: torch.nn.Module, prefix: str, seed: int, dtype=None) -> dict[str, torch.Tensor]:
    """Fresh deterministic weights for every tensor of `module` (which may live on the meta device); with `dtype`,
    converted tensor by tensor (bigG alone is 2.8 GB in fp32)."""
    shapes = {k: v.shape for k, v in module.state_dict().items()}
    return {prefix + k: _fill(prefix + k, shape, seed).to(dtype) for k, shape in sorted(shapes.items())}


def tiny_unet(config: dict | None = None, device="meta") -> torch.nn.Module:
    boot()
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(**(config or TINY_SD15_UNET), device=device, operations=comfy.ops.disable_weight_init)


def sd15_components_state_dict(seed: int = 0, unet_config: dict | None = None) -> dict[str, torch.Tensor]:
    """UNet + CLIP-L text + TAESD, in the single-file SD1.x key layout, fp32."""
    boot()
    import comfy.ops
    import comfy.taesd.taesd
    from comfy.clip_model import CLIPTextModel

    sd = random_state_dict(tiny_unet(unet_config), "model.diffusion_model.", seed)
    import comfy.sd1_clip

    clip_config = json.loads((Path(comfy.sd1_clip.__file__).parent / "sd1_clip_config.json").read_text())
    clip = CLIPTextModel(clip_config, torch.float32, "meta", comfy.ops.disable_weight_init)
    clip_sd = random_state_dict(clip, "cond_stage_model.transformer.", seed + 1)
    clip_sd.pop("cond_stage_model.transformer.text_projection.weight", None)
    sd.update(clip_sd)
    with torch.device("meta"):
        taesd = comfy.taesd.taesd.TAESD()
    sd.update(random_state_dict(taesd, "first_stage_model.", seed + 2))
    return sd


def atomic_save(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    """Write a model file via a temporary name, so a reader never sees half a file.

    A `.safetensors` name gets a safetensors file with `metadata` as its header; any other name (the `.ckpt` /
    `.pth` a user downloads) a torch pickle {"state_dict": tensors, "exemplar_metadata": metadata}, the layout
    ComfyUI's and the pack's loaders read with weights_only.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tensors = {k: v.contiguous() for k, v in state_dict.items()}
    try:
        if path.suffix == ".safetensors":
            save_file(tensors, str(tmp), metadata=metadata)
        else:
            torch.save({"state_dict": tensors, "exemplar_metadata": dict(metadata)}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def is_current(path: Path, meta: dict[str, str]) -> bool:
    """Whether `path` is a file atomic_save wrote with this metadata (then it is reused)."""
    if not Path(path).is_file():
        return False
    if Path(path).suffix != ".safetensors":
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return isinstance(saved, dict) and saved.get("exemplar_metadata") == meta
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return (f.metadata() or {}) == meta


def write_tiny_sd15_checkpoint(directory: Path, seed: int = 0, name: str = TINY_SD15_NAME) -> Path:
    """Write (once) the embedded default model; a present file of the same builder version is reused."""
    path = Path(directory) / name
    meta = {"exemplar.kind": "tiny_sd15_checkpoint", "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}
    if is_current(path, meta):
        return path
    sd = {k: v.half() for k, v in sd15_components_state_dict(seed).items()}
    return atomic_save(sd, path, meta)


TINY_CLIP_VISION_CONFIG = {
    "hidden_act": "quick_gelu",
    "hidden_size": 64,
    "image_size": 56,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-05,
    "model_type": "clip_vision_model",
    "num_attention_heads": 4,
    "num_channels": 3,
    "num_hidden_layers": 2,
    "patch_size": 14,
    "projection_dim": 32,
}


def tiny_clip_vision(directory: Path, seed: int = 0, config: dict | None = None):
    """A ComfyUI ClipVisionModel (the CLIP_VISION type) of a tiny config with deterministic weights.

    Stock CLIPVisionLoader only recognises full-size encoders, so tests build this one directly.
    """
    return random_clip_vision_model(Path(directory) / "tiny_clip_vision.json", config or TINY_CLIP_VISION_CONFIG, seed)


def random_clip_vision_model(config_path: Path, config: dict, seed: int):
    """ComfyUI's ClipVisionModel built from `config` (written to `config_path`) with deterministic random weights."""
    boot()
    import comfy.clip_vision

    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config))
    model = comfy.clip_vision.ClipVisionModel(str(config_path))
    missing, unexpected = model.load_sd(random_state_dict(model.model, "", seed))
    assert not missing and not unexpected, (missing, unexpected)
    return model
