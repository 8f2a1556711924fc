"""Everything the shipped workflows need, generated: tiny models and sample input images."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
from PIL import Image

from . import asset_builders
from .paths import BASE_DIR
from .tiny_models import write_tiny_sd15_checkpoint
from . import model_files

SOURCE_IMAGE = model_files.SOURCE_IMAGE
REFERENCE_IMAGE = model_files.REFERENCE_IMAGE


def sample_source(size: int = 256) -> Image.Image:
    """A synthetic scene (RGBA) whose transparent ellipse is the hole: LoadImage turns it into MASK = 1."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([0.35 + 0.4 * xx, 0.45 + 0.3 * yy, 0.55 - 0.2 * xx * yy], axis=-1)
    rgb[yy > 0.7] = (0.45, 0.33, 0.22)  # a table top
    hole = ((xx - 0.5) / 0.28) ** 2 + ((yy - 0.55) / 0.22) ** 2 <= 1.0
    alpha = np.where(hole, 0.0, 1.0)
    pixels = np.concatenate([rgb, alpha[..., None]], axis=-1)
    return Image.fromarray((pixels * 255).round().astype(np.uint8), "RGBA")


def sample_reference(size: int = 224) -> Image.Image:
    """A synthetic object on a white background (a red cup-like shape)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.ones((size, size, 3))
    body = (np.abs(xx - 0.5) < 0.22) & (yy > 0.25) & (yy < 0.85)
    handle = (((xx - 0.78) / 0.1) ** 2 + ((yy - 0.52) / 0.14) ** 2 <= 1.0) & ~(
        ((xx - 0.78) / 0.05) ** 2 + ((yy - 0.52) / 0.08) ** 2 <= 1.0
    )
    rgb[body | handle] = (0.8, 0.12, 0.1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def write_sample_inputs(input_dir: Path) -> None:
    input_dir.mkdir(parents=True, exist_ok=True)
    for name, make in ((SOURCE_IMAGE, sample_source), (REFERENCE_IMAGE, sample_reference)):
        path = input_dir / name
        if not path.is_file():
            make().save(path)


def prepare(base_dir: Path = BASE_DIR) -> None:
    """Write every generated asset into the host base directory (idempotent)."""
    write_tiny_sd15_checkpoint(base_dir / "models" / "checkpoints")
    write_sample_inputs(base_dir / "input")
    for info in sorted(pkgutil.iter_modules(asset_builders.__path__), key=lambda i: i.name):
        importlib.import_module(f"{asset_builders.__name__}.{info.name}").prepare(base_dir)
