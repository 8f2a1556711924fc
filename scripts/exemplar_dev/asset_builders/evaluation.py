"""Evaluation workflow assets: a random-weight VGG16 in models/vgg/ (the DINOv2 CLIP_VISION comes from the
Diffuse to Choose builder)."""

from __future__ import annotations

from pathlib import Path

from ..tiny_evaluation import write_random_vgg16


def prepare(base_dir: Path) -> None:
    write_random_vgg16(base_dir / "models" / "vgg")
