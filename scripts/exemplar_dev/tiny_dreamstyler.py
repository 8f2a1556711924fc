"""Deterministic DreamStyler test assets: a tiny SD1.5 ControlNet, a staged embedding in the official
file layout, and synthetic content / depth / style images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .host import boot, pack_submodule
from .tiny_models import TINY_SD15_UNET, atomic_save, is_current, random_state_dict
from . import model_files

TINY_CONTROLNET_NAME = model_files.CONTROLNET_DEPTH.name
TINY_STAGED_EMBEDDING_NAME = model_files.DREAMSTYLER_STYLE.name
CONTENT_IMAGE = model_files.CONTENT_IMAGE
DEPTH_IMAGE = model_files.DEPTH_IMAGE
STYLE_IMAGE = model_files.STYLE_IMAGE
TOKEN = "<sks1>"
BUILDER_VERSION = "1"


def write_tiny_controlnet(directory: Path, seed: int = 7) -> Path:
    """An SD1.5-shaped ControlNet (the tiny UNet's encoder + zero convs + hint block) that ControlNetLoader detects."""
    path = Path(directory) / TINY_CONTROLNET_NAME
    meta = {"exemplar.kind": "tiny_controlnet_sd15", "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}
    if is_current(path, meta):
        return path
    boot()
    import comfy.cldm.cldm
    import comfy.ops

    config = {k: v for k, v in TINY_SD15_UNET.items() if k not in ("out_channels", "transformer_depth_output")}
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, device="meta", operations=comfy.ops.disable_weight_init, **config)
    state = {k: v.half() for k, v in random_state_dict(net, "control_model.", seed).items()}
    return atomic_save(state, path, meta)


def tiny_staged_embedding(stages: int = 6, seed: int = 4):
    se = pack_submodule("models.dreamstyler.staged_embedding")
    g = torch.Generator().manual_seed(seed)
    return se.StagedEmbedding(TOKEN, torch.randn(stages, 1, 768, generator=g) / 768**0.5)


def write_tiny_staged_embedding(directory: Path) -> Path:
    """The pack's safetensors layout (what DreamStyler Train writes and its loader lists), rewritten when stale."""
    path = Path(directory) / TINY_STAGED_EMBEDDING_NAME
    embedding = tiny_staged_embedding()
    if not is_current(path, embedding.header()):
        pack_submodule("models.dreamstyler.staged_embedding").save_safetensors(embedding, path)
    return path


def _grid(size):
    return np.mgrid[0:size, 0:size] / size


def content_image(size: int = 256) -> Image.Image:
    """A house-like shape on a meadow under a sky."""
    yy, xx = _grid(size)
    rgb = np.zeros((size, size, 3))
    rgb[...] = (0.55, 0.75, 0.95)
    rgb[yy > 0.65] = (0.35, 0.6, 0.25)
    wall = (np.abs(xx - 0.5) < 0.2) & (yy > 0.4) & (yy < 0.8)
    roof = (yy > 0.2) & (yy <= 0.4) & (np.abs(xx - 0.5) < (yy - 0.2) * 1.1)
    rgb[wall] = (0.85, 0.8, 0.7)
    rgb[roof] = (0.6, 0.2, 0.15)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def depth_image(size: int = 256) -> Image.Image:
    """A depth map of the content image (near = bright): ground rising towards the viewer, the house in front."""
    yy, xx = _grid(size)
    depth = np.clip((yy - 0.5) * 1.6, 0, 1) * 0.6
    house = (np.abs(xx - 0.5) < 0.2) & (yy > 0.2) & (yy < 0.8)
    depth[house] = 0.8
    return Image.fromarray((np.repeat(depth[..., None], 3, -1) * 255).round().astype(np.uint8), "RGB")


def style_image(size: int = 256) -> Image.Image:
    """Bold diagonal brush-like stripes in warm colours: something to learn a style from."""
    yy, xx = _grid(size)
    bands = np.sin((xx + yy) * 18) * 0.5 + 0.5
    rgb = np.stack([0.9 * bands + 0.1, 0.5 * bands + 0.2 * (1 - bands), 0.2 + 0.6 * (1 - bands)], -1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def write_images(input_dir: Path) -> None:
    input_dir.mkdir(parents=True, exist_ok=True)
    for name, make in ((CONTENT_IMAGE, content_image), (DEPTH_IMAGE, depth_image), (STYLE_IMAGE, style_image)):
        path = input_dir / name
        if not path.is_file():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
            make().save(tmp)
            os.replace(tmp, path)
