"""Convert an official Paint-by-Example .ckpt to .safetensors without ComfyUI running.

Usage: python scripts/convert_pbe.py model.ckpt [out.safetensors] [--overwrite]

The pickle is read with torch.load(weights_only=True) (nothing in it can run), checked to be a
Paint-by-Example checkpoint, and every tensor is written unchanged, atomically. Same code as the
"Convert Paint-by-Example .ckpt to .safetensors" node.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cli_boot


def main(argv: list[str]) -> Path:
    args = [a for a in argv if a != "--overwrite"]
    if not 1 <= len(args) <= 2:
        sys.exit(__doc__.split("\n\n")[1])
    source = Path(args[0])
    target = Path(args[1]) if len(args) == 2 else source.with_suffix(".safetensors")
    ckpt = cli_boot.pack_module("models.paint_by_example.checkpoint")
    try:
        written = ckpt.convert_to_safetensors(source, target, overwrite="--overwrite" in argv)
    except (ckpt.PbECheckpointError, FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"wrote {written}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
