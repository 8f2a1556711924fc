"""Where the checkout, its host base directory and the cached ComfyUI host live."""

from __future__ import annotations

import os
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
PACK_FOLDER_NAME = "comfyui_exemplar"
BASE_DIR = Path(os.environ.get("EXEMPLAR_BASE_DIR", PACK_ROOT / ".comfy"))
WORKFLOWS_DIR = PACK_ROOT / "workflows"


def host_dir() -> Path:
    """The ComfyUI host built by scripts/setup_host.sh (it records its location in the base dir)."""
    if "EXEMPLAR_HOST_DIR" in os.environ:
        return Path(os.environ["EXEMPLAR_HOST_DIR"])
    marker = BASE_DIR / "host_dir"
    if not marker.is_file():
        raise RuntimeError(f"no ComfyUI host recorded in {marker}: run scripts/setup_host.sh first")
    return Path(marker.read_text().strip())


def comfyui_dir() -> Path:
    return host_dir() / "ComfyUI"
