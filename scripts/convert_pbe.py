"""Convert an official Paint-by-Example .ckpt to .safetensors without ComfyUI running.

Usage: python scripts/convert_pbe.py model.ckpt [out.safetensors] [--overwrite]

The pickle is read with torch.load(weights_only=True) (nothing in it can run), checked to be a
Paint-by-Example checkpoint, and every tensor is written unchanged, atomically. Same code as the
"Convert Paint-by-Example .ckpt to .safetensors" node.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]


def _pbe_checkpoint():
    # import models/ as a package without the pack's __init__ (which needs ComfyUI); the pack root
    # itself never goes on sys.path (its nodes/ would shadow ComfyUI's nodes.py)
    if "comfyui_exemplar" not in sys.modules:
        package = types.ModuleType("comfyui_exemplar")
        package.__path__ = [str(PACK_ROOT)]
        sys.modules["comfyui_exemplar"] = package
    return importlib.import_module("comfyui_exemplar.models.paint_by_example.checkpoint")


def main(argv: list[str]) -> Path:
    args = [a for a in argv if a != "--overwrite"]
    if not 1 <= len(args) <= 2:
        sys.exit(__doc__.split("\n\n")[1])
    source = Path(args[0])
    target = Path(args[1]) if len(args) == 2 else source.with_suffix(".safetensors")
    ckpt = _pbe_checkpoint()
    try:
        written = ckpt.convert_to_safetensors(source, target, overwrite="--overwrite" in argv)
    except (ckpt.PbECheckpointError, FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {written}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
