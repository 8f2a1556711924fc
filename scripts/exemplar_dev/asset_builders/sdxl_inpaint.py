"""Assets of the SDXL reference workflows (DreamInpainter, Diffuse to Choose): the tiny SDXL inpainting checkpoint
under the public SDXL inpainting 0.1 file name."""

from __future__ import annotations

from pathlib import Path

from ..tiny_sdxl_inpaint import write_tiny_sdxl_inpaint_checkpoint


def prepare(base_dir: Path) -> None:
    write_tiny_sdxl_inpaint_checkpoint(Path(base_dir) / "models" / "checkpoints")
