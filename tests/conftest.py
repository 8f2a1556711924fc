"""Shared test set-up.

Three tiers (directories): tests/pure (models/ only, no ComfyUI), tests/host (real ComfyUI
in-process, the pack loaded by ComfyUI's own loader), tests/workflows (every workflows/*.json
converted and executed). The checkout's root is never put on sys.path (its `nodes/` would shadow
ComfyUI's); pure tests import the pack as the package `comfyui_exemplar` registered below without
running its `__init__` (which needs ComfyUI). Host tests get ComfyUI's own copy of a module
through `exemplar_dev.host.pack_submodule`, so classes match the ones the nodes use.

Tests never write into the checkout's `.comfy/` folders (what the UI lists): a test that makes files
asks for `model_folder(name)`, `input_folder` or `output_folder`, which point ComfyUI at a fresh
temporary folder for that test and restore the real one afterwards.

`EXEMPLAR_TEST_SHUFFLE=<seed>` runs the collected tests in a seeded random order (order-dependence check).
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

if "comfyui_exemplar" not in sys.modules:
    package = types.ModuleType("comfyui_exemplar")
    package.__path__ = [str(ROOT)]
    package.__file__ = str(ROOT / "__init__.py")
    sys.modules["comfyui_exemplar"] = package

if os.environ.get("EXEMPLAR_TORCH_THREADS"):  # e.g. 1 when several suites share the two cores
    torch.set_num_threads(int(os.environ["EXEMPLAR_TORCH_THREADS"]))


def pytest_collection_modifyitems(config, items):
    seed = os.environ.get("EXEMPLAR_TEST_SHUFFLE")
    if seed:
        random.Random(seed).shuffle(items)


def pytest_report_header(config):
    seed = os.environ.get("EXEMPLAR_TEST_SHUFFLE")
    return f"test order shuffled with seed {seed!r}" if seed else None


# --- comparing computations that are equal in exact arithmetic -------------------------------------------


def assert_equal_up_to_rounding(actual, expected, *, coefficients=(1.0,), scale=None, roundings=1, dtype=None):
    """Two float computations of the same algebraic value agree to within their rounding error.

    A linear combination sum_i c_i p_i evaluated in another order (or batched differently) differs by about
    eps * sum_i |c_i| * max|p| per rounding stage, so the bound is
        atol = 8 * roundings * eps * sum|coefficients| * scale,
    where `scale` is the magnitude of the operands (default: max|expected|) and `roundings` counts the stages
    whose errors add up: the sampling steps that each combine predictions, or, for two implementations of one
    network, its layers (pass the module: its Linear and Conv layers are counted). The factor 8 covers the few
    roundings inside one stage (a subtraction, a product, a sum). The failure message gives the measured error in
    units of eps * sum|c| * scale. Where the claim is exact (the same operations in the same order), assert
    torch.equal instead.
    """
    actual, expected = torch.as_tensor(actual).detach(), torch.as_tensor(expected).detach()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if isinstance(roundings, torch.nn.Module):
        roundings = sum(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) for m in roundings.modules())
    eps = torch.finfo(dtype or expected.dtype).eps
    scale = float(expected.abs().max()) if scale is None else float(scale)
    unit = eps * sum(abs(float(c)) for c in coefficients) * max(scale, torch.finfo(torch.float32).tiny)
    error = float((actual.double() - expected.double()).abs().max())
    assert error <= 8 * roundings * unit, (
        f"max abs difference {error:.3e} = {error / unit:.1f} units of eps*sum|c|*scale ({unit:.2e}); "
        f"allowed {8 * roundings} units for {roundings} rounding stage(s)"
    )
    return error / unit


# --- the host -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def comfy():
    """The booted in-process ComfyUI host with the generated assets in place."""
    from exemplar_dev import assets, host

    booted = host.boot()
    assets.prepare()
    return booted


@contextlib.contextmanager
def temporary_model_folder(folder_paths, name: str, directory: Path):
    """Register `directory` first in ComfyUI's model folder `name` (where nodes write and look first),
    keeping the real folders behind it for reading; restore the registration afterwards."""
    saved = folder_paths.folder_names_and_paths[name]
    directory.mkdir(parents=True, exist_ok=True)
    folder_paths.folder_names_and_paths[name] = ([str(directory), *saved[0]], saved[1])
    # the file-list cache checks the mtimes of the folders it listed: drop it so neither side sees the other
    folder_paths.filename_list_cache.pop(name, None)
    try:
        yield directory
    finally:
        folder_paths.folder_names_and_paths[name] = saved
        folder_paths.filename_list_cache.pop(name, None)


@pytest.fixture
def model_folder(comfy, tmp_path):
    """model_folder("loras") -> a fresh folder that ComfyUI uses as its first `loras` folder during this test."""
    with contextlib.ExitStack() as stack:

        def register(name: str) -> Path:
            return stack.enter_context(temporary_model_folder(comfy.folder_paths, name, tmp_path / "models" / name))

        yield register


@contextlib.contextmanager
def _temporary_directory(get, set_, directory: Path):
    saved = get()
    directory.mkdir(parents=True, exist_ok=True)
    set_(str(directory))
    try:
        yield directory
    finally:
        set_(saved)


@pytest.fixture
def input_folder(comfy, tmp_path):
    """A fresh ComfyUI input directory for this test."""
    fp = comfy.folder_paths
    with _temporary_directory(fp.get_input_directory, fp.set_input_directory, tmp_path / "input") as folder:
        yield folder


@pytest.fixture
def output_folder(comfy, tmp_path):
    """A fresh ComfyUI output directory for this test."""
    fp = comfy.folder_paths
    with _temporary_directory(fp.get_output_directory, fp.set_output_directory, tmp_path / "output") as folder:
        yield folder


@pytest.fixture(scope="session")
def equal_up_to_rounding():
    """The assert_equal_up_to_rounding check, for tests (conftest modules are not importable under importlib mode)."""
    return assert_equal_up_to_rounding
