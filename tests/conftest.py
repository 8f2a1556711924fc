"""Shared test set-up.

Three tiers (directories): tests/pure (models/ only, no ComfyUI), tests/host (real ComfyUI
in-process, the pack loaded by ComfyUI's own loader), tests/workflows (every workflows/*.json
converted and executed). The checkout's root is never put on sys.path (its `nodes/` would shadow
ComfyUI's); pure tests import the pack as the package `comfyui_exemplar` registered below without
running its `__init__` (which needs ComfyUI). Host tests get ComfyUI's own copy of a module
through `exemplar_dev.host.pack_submodule`, so classes match the ones the nodes use.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

if "comfyui_exemplar" not in sys.modules:
    package = types.ModuleType("comfyui_exemplar")
    package.__path__ = [str(ROOT)]
    package.__file__ = str(ROOT / "__init__.py")
    sys.modules["comfyui_exemplar"] = package

if os.environ.get("EXEMPLAR_TORCH_THREADS"):  # e.g. 1 when several suites share the two cores
    import torch

    torch.set_num_threads(int(os.environ["EXEMPLAR_TORCH_THREADS"]))


@pytest.fixture(scope="session")
def comfy():
    """The booted in-process ComfyUI host with the generated assets in place."""
    from exemplar_dev import assets, host

    booted = host.boot()
    assets.prepare()
    return booted
