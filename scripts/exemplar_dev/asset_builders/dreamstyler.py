"""DreamStyler workflow assets: tiny ControlNet, a staged embedding (official layout), sample images."""

from __future__ import annotations

from pathlib import Path

from ..tiny_dreamstyler import write_images, write_tiny_controlnet, write_tiny_staged_embedding


def prepare(base_dir: Path) -> None:
    write_tiny_controlnet(base_dir / "models" / "controlnet")
    write_tiny_staged_embedding(base_dir / "models" / "embeddings")
    write_images(base_dir / "input")
