"""The one start-up helper of the command-line scripts: import the pack without its `__init__`, boot ComfyUI.

It lives in scripts/ rather than in the pack (`nodes/common/`) because it has to run *before* any pack
module can be imported: the pack's root `__init__.py` registers nodes and so needs a running ComfyUI, and
the checkout root may never go on sys.path (its `nodes/` package would shadow ComfyUI's `nodes.py`). So the
pack is registered as a bare package `comfyui_exemplar` whose path is the checkout, and its modules are
imported from there. Every script run from scripts/ finds this module next to it (Python puts a script's
folder first on sys.path, also for each process torchrun starts).

ComfyUI is booted the way it must be in-process (see docs/development.md): its argument parser off and
the device chosen before `comfy.model_management` is first imported, and `utils.extra_config` imported
before anything imports ComfyUI's `nodes` (after which `import utils` would find `comfy/utils.py`).
`exemplar_dev.host` uses the same boot before it loads the pack through ComfyUI's custom-node loader.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_exemplar"


def pack_module(dotted: str):
    """`comfyui_exemplar.<dotted>` (e.g. "models.common.atomic_file"), imported without running the pack's __init__."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(PACK_ROOT)]
        package.__file__ = str(PACK_ROOT / "__init__.py")
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{dotted}")


def comfyui_dir(given: str | os.PathLike | None = None) -> Path:
    """The ComfyUI folder: `given`, else $COMFYUI_DIR, else the ComfyUI this pack is installed in (custom_nodes/...)."""
    given = given or os.environ.get("COMFYUI_DIR")
    candidate = Path(given) if given else PACK_ROOT.parent.parent
    if not (candidate / "comfy" / "model_management.py").is_file():
        sys.exit(f"ComfyUI not found at {candidate} (no comfy/model_management.py): pass --comfyui or set COMFYUI_DIR")
    return candidate.resolve()


def one_gpu_per_rank(cpu: bool) -> None:
    """Under torchrun on GPUs, show each rank only its own GPU (must run before torch first sees CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not cpu and "LOCAL_RANK" in os.environ:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", os.environ["LOCAL_RANK"])


def boot_comfyui(
    root: str | os.PathLike,
    cpu: bool = False,
    base_directory: str | os.PathLike | None = None,
    pytorch_attention: bool = False,
) -> None:
    """Make ComfyUI's libraries importable and configured (no server, no custom nodes); idempotent.

    `pytorch_attention` is ComfyUI's `--use-pytorch-cross-attention`: the attention NVIDIA users get by default,
    which ComfyUI does not pick on the CPU (it takes its sub-quadratic attention there).
    """
    root = str(Path(root).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    import comfy.options

    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args

    args.cpu = cpu
    if pytorch_attention:
        args.use_pytorch_cross_attention = True
    if base_directory is not None:
        args.base_directory = str(base_directory)
    import utils.extra_config  # noqa: F401  (before anything imports ComfyUI's `nodes`)
