"""List and load the pack's own safetensors artefacts (adapters, token scorers, token projections) in models/exemplar.

Pickers list only the files of their kind, read from each file's header (`exemplar.kind`), without reading tensors
(models/common/file_probe.py, cached by size and modification time).
"""

from __future__ import annotations

import comfy.utils
import folder_paths

from .model_folders import EXEMPLAR_FOLDER
from ...models.common.artefact_header import KIND_KEY, read_header
from ...models.common.file_probe import safetensors_header
from ...models.common.tensor_files import readable, require_finite_tensors


def exemplar_file_list() -> list[str]:
    """The safetensors files in the registered `exemplar` folder(s)."""
    return [name for name in folder_paths.get_filename_list(EXEMPLAR_FOLDER) if name.endswith(".safetensors")]


def file_kind(folder: str, name: str) -> str | None:
    """The `exemplar.kind` in the header of `name` in the model folder `folder` (None: no header, not safetensors)."""
    path = folder_paths.get_full_path(folder, name)
    header = safetensors_header(path) if path else None
    return None if header is None else header.metadata.get(KIND_KEY)


def files_of_kind(kind: str, folder: str = EXEMPLAR_FOLDER) -> list[str]:
    """The safetensors files in `folder` whose header says `kind`, in the folder's listing order."""
    names = folder_paths.get_filename_list(folder)
    return [name for name in names if name.endswith(".safetensors") and file_kind(folder, name) == kind]


def load_exemplar_file(name: str, kind: str, version: int):
    """Load `name` from the exemplar folder; its header must name `kind` in a layout version up to `version`."""
    path = folder_paths.get_full_path_or_raise(EXEMPLAR_FOLDER, name)
    with readable(path, name):
        state_dict, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    read_header(metadata, kind, version, source=name)
    require_finite_tensors(state_dict, name)
    return state_dict
