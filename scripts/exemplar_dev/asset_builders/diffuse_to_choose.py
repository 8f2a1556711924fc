"""Assets of the Diffuse to Choose workflow: tiny 9-channel SD1 checkpoint, a random-weight DINOv2-large
CLIP_VISION (the smallest DINOv2 ComfyUI's CLIP vision loader recognises), a tiny untrained adapter
made from the checkpoint, and sample person / garment images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..host import boot, pack_submodule
from ..tiny_dtc import TINY_DTC_ADAPTER_NAME, load_tiny_inpaint_model, write_tiny_sd15_inpaint_checkpoint
from ..tiny_models import atomic_save, is_current, random_state_dict
from .. import model_files

DINOV2_NAME = model_files.DINOV2_LARGE.name
PERSON_IMAGE = model_files.PERSON_IMAGE
GARMENT_IMAGE = model_files.GARMENT_IMAGE
BUILDER_VERSION = "1"


def write_random_dinov2_large(directory: Path, seed: int = 0) -> Path:
    """DINOv2-large shapes (HF key layout) with deterministic random weights, fp16 (about 600 MB)."""
    path = Path(directory) / DINOV2_NAME
    meta = {"exemplar.kind": "random_dinov2_large", "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}
    if is_current(path, meta):
        return path
    boot()
    import json

    import comfy.clip_vision
    import comfy.ops
    from comfy.image_encoders.dino2 import Dinov2Model

    config = json.loads((Path(comfy.clip_vision.__file__).parent / "image_encoders" / "dino2_large.json").read_text())
    model = Dinov2Model(config, torch.float16, "meta", comfy.ops.disable_weight_init)
    return atomic_save({k: v.half() for k, v in random_state_dict(model, "", seed).items()}, path, meta)


def write_tiny_adapter(base_dir: Path) -> Path:
    """An untrained adapter for the tiny inpainting checkpoint, projecting 1024-wide (DINOv2-large) tokens."""
    path = base_dir / "models" / "exemplar" / TINY_DTC_ADAPTER_NAME
    dtc = pack_submodule("models.diffuse_to_choose.adapter")
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("exemplar.version") == str(dtc.FORMAT_VERSION) and meta.get("exemplar.image_dim") == "1024":
            return path
    model, _ = load_tiny_inpaint_model(base_dir / "models" / "checkpoints")
    adapter = pack_submodule("nodes.diffuse_to_choose.adapter_patch").create_adapter(model, image_dim=1024, seed=0)
    return dtc.save_adapter(adapter, path, torch.float16)


def person_image(size: int = 256) -> Image.Image:
    """A synthetic person (head, arms, legs) whose shirt area is transparent: LoadImage's mask = the garment region."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.75 - 0.2 * yy, 0.78 - 0.1 * xx, 0.82 + 0 * xx], axis=-1)
    skin = (0.86, 0.68, 0.55)
    head = ((xx - 0.5) / 0.09) ** 2 + ((yy - 0.17) / 0.11) ** 2 <= 1
    arms = ((np.abs(xx - 0.5) > 0.2) & (np.abs(xx - 0.5) < 0.27) & (yy > 0.32) & (yy < 0.7))
    legs = (np.abs(xx - 0.5) < 0.14) & (yy >= 0.68) & (np.abs(xx - 0.5) > 0.02)
    rgb[head | arms] = skin
    rgb[legs] = (0.2, 0.22, 0.35)
    shirt = (np.abs(xx - 0.5) <= 0.2) & (yy > 0.29) & (yy < 0.7)
    alpha = np.where(shirt, 0.0, 1.0)
    rgb[shirt] = (0.5, 0.5, 0.5)
    return Image.fromarray((np.concatenate([rgb, alpha[..., None]], -1) * 255).round().astype(np.uint8), "RGBA")


def garment_image(size: int = 224) -> Image.Image:
    """A striped T-shirt on white."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.ones((size, size, 3))
    body = (np.abs(xx - 0.5) < 0.22) & (yy > 0.2) & (yy < 0.9)
    sleeves = (np.abs(xx - 0.5) < 0.38) & (yy > 0.2) & (yy < 0.4)
    neck = ((xx - 0.5) / 0.08) ** 2 + ((yy - 0.2) / 0.06) ** 2 <= 1
    cloth = (body | sleeves) & ~neck
    stripes = (np.floor(yy * 14) % 2) == 0
    rgb[cloth & stripes] = (0.15, 0.35, 0.75)
    rgb[cloth & ~stripes] = (0.95, 0.85, 0.2)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def prepare(base_dir: Path) -> None:
    base_dir = Path(base_dir)
    write_tiny_sd15_inpaint_checkpoint(base_dir / "models" / "checkpoints")
    write_random_dinov2_large(base_dir / "models" / "clip_vision")
    write_tiny_adapter(base_dir)
    input_dir = base_dir / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    for name, make in ((PERSON_IMAGE, person_image), (GARMENT_IMAGE, garment_image)):
        path = input_dir / name
        if not path.is_file():
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp.png")
            make().save(tmp)
            os.replace(tmp, path)
