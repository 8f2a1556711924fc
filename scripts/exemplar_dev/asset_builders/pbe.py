"""Paint by Example assets: the tiny PbE checkpoint (official layout) and its diffusers folder."""

from __future__ import annotations

from pathlib import Path

from ..tiny_pbe import write_tiny_pbe_checkpoint, write_tiny_pbe_diffusers


def prepare(base_dir: Path) -> None:
    write_tiny_pbe_checkpoint(base_dir / "models" / "checkpoints")
    write_tiny_pbe_diffusers(base_dir / "models" / "diffusers")
