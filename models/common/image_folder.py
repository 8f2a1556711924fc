"""The one way the pack brings training images to the training size, from disk or from an IMAGE batch.

Resampling (DreamBooth node and CLI, DreamStyler CLI): crop the centre to the target aspect ratio,
then resize with **antialiased bicubic** interpolation (torch's `interpolate(mode="bicubic",
antialias=True)`, which widens the kernel when it shrinks, as Pillow's filters do), clamped to 0..1.
A photo several times larger than the training resolution is low-passed instead of aliased. An image
already at the target size passes through unchanged.

Files: the ones with an image suffix directly inside the folder, sorted by name; EXIF orientation
applied; converted to RGB (alpha dropped, greyscale repeated). Output: the IMAGE layout,
float32 [N, height, width, 3] in 0..1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def fit_images(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [B, H, W, C>=3] -> [B, height, width, 3]: centre crop to the aspect ratio, antialiased bicubic resize."""
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"expected an IMAGE batch [B, H, W, 3], got shape {tuple(images.shape)}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    pixels = images[..., :3]
    h, w = pixels.shape[1:3]
    if (h, w) == (height, width):
        return pixels.clone()
    if w * height > h * width:  # wider than the target: keep the middle columns
        keep = max(1, round(h * width / height))
        left = (w - keep) // 2
        pixels = pixels[:, :, left : left + keep]
    else:
        keep = max(1, round(w * height / width))
        top = (h - keep) // 2
        pixels = pixels[:, top : top + keep]
    resized = F.interpolate(
        pixels.movedim(-1, 1).float(), size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return resized.clamp(0, 1).movedim(1, -1).to(images.dtype)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | Path) -> torch.Tensor:
    """One file at its own size, upright and RGB: [H, W, 3] float32 in 0..1."""
    with Image.open(path) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0)


def load_images(paths, width: int, height: int) -> torch.Tensor:
    """The files, each fitted to width x height, as one batch [N, height, width, 3]."""
    paths = list(paths)
    if not paths:
        raise ValueError("no image files to load")
    return torch.cat([fit_images(read_image(p)[None], width, height) for p in paths])


def load_image_folder(folder: str | Path, width: int, height: int) -> torch.Tensor | None:
    """Every image in `folder` fitted to width x height; None when it holds none."""
    files = image_files(folder)
    return load_images(files, width, height) if files else None
