"""List and load the pack's own safetensors artefacts (token scorers, token projections) from models/exemplar."""

from __future__ import annotations

import comfy.utils
import folder_paths

from .model_folders import EXEMPLAR_FOLDER


def exemplar_file_list() -> list[str]:
    """The safetensors files in the registered `exemplar` folder(s)."""
    return [name for name in folder_paths.get_filename_list(EXEMPLAR_FOLDER) if name.endswith(".safetensors")]


def load_exemplar_file(name: str, kind: str):
    """Load `name` from the exemplar folder; its metadata must say `exemplar.kind = kind`."""
    path = folder_paths.get_full_path_or_raise(EXEMPLAR_FOLDER, name)
    state_dict, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    found = (metadata or {}).get("exemplar.kind")
    if found != kind:
        raise ValueError(f"{name} is not a {kind} file: its metadata says exemplar.kind = {found!r}")
    return state_dict
