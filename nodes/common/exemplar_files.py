"""List and load the pack's own safetensors artefacts (token scorers, token projections) from models/exemplar."""

from __future__ import annotations

import comfy.utils
import folder_paths

from .model_folders import EXEMPLAR_FOLDER
from ...models.common.artefact_header import read_header
from ...models.common.tensor_files import readable, require_finite_tensors


def exemplar_file_list() -> list[str]:
    """The safetensors files in the registered `exemplar` folder(s)."""
    return [name for name in folder_paths.get_filename_list(EXEMPLAR_FOLDER) if name.endswith(".safetensors")]


def load_exemplar_file(name: str, kind: str, version: int):
    """Load `name` from the exemplar folder; its header must name `kind` in a layout version up to `version`."""
    path = folder_paths.get_full_path_or_raise(EXEMPLAR_FOLDER, name)
    with readable(path, name):
        state_dict, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    read_header(metadata, kind, version, source=name)
    require_finite_tensors(state_dict, name)
    return state_dict
