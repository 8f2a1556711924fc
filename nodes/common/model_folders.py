"""Model folders the pack adds to ComfyUI's `folder_paths` (registered once, on import).

`models/exemplar/` holds the pack's own artefacts (adapters, scorers, projections, encoders);
extra locations come from `extra_model_paths.yaml` under the same key, as for any folder.
"""

from __future__ import annotations

import os

import folder_paths

from . import comfyui_compat

EXEMPLAR_FOLDER = "exemplar"


def register(name: str, extensions: set[str] | None = None) -> str:
    """Make `models/<name>/` a ComfyUI model folder (idempotent); return its name."""
    path = os.path.join(folder_paths.models_dir, name)
    comfyui_compat.register_model_folder(name, path, set(extensions or folder_paths.supported_pt_extensions))
    return name


register(EXEMPLAR_FOLDER)
VGG_FOLDER = register("vgg", {".pth", ".pt", ".safetensors"})


def model_file(folder: str, name: str, input_name: str) -> str:
    """The full path of `name` in ComfyUI's model folder `folder`, or an error that names the input."""
    path = folder_paths.get_full_path(folder, name) if name else None
    if path is None:
        raise ValueError(
            f"{input_name}: no file {name!r} in models/{folder}/ (or the {folder} paths of extra_model_paths.yaml); "
            "pick a file the list offers, or put the file there first (where to get it: docs/weights.md)"
        )
    return path
