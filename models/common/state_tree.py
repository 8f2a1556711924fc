"""A nested state (an optimizer's `state_dict()`: dicts with int keys, lists, tuples, numbers, tensors) as one
safetensors file: the tensors as tensors, everything else as JSON in the metadata, each tensor replaced there by
a reference to its key. Reading gives back the same structure (int keys stay ints, tuples stay tuples), so
`optimizer.load_state_dict` continues bit-exactly. Only JSON and tensors are read: nothing in the file can run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .artefact_header import read_header, write_header
from .atomic_file import save_safetensors_atomic

KIND = "state_tree"
VERSION = 1
STRUCTURE_FIELD = "structure"
_TENSOR, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"


def _encode(value, tensors: dict[str, torch.Tensor], where: str):
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no inf/nan; repr round-trips every float exactly
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"{where}: a key must be a str or int to be stored, got {type(k).__name__}")
            items.append([k, _encode(v, tensors, f"{where}[{k!r}]")])
        return {_DICT: items}
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a safetensors state file")


def _decode(value, tensors: dict[str, torch.Tensor], source: str):
    if isinstance(value, list):
        return [_decode(v, tensors, source) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        raise ValueError(f"{source}: unreadable structure entry {sorted(value)!r}")
    ((tag, body),) = value.items()
    if tag == _TENSOR:
        if body not in tensors:
            raise ValueError(f"{source}: the structure names tensor {body!r}, which the file does not hold")
        return tensors[body]
    if tag == _FLOAT:
        return float(body)
    if tag == _TUPLE:
        return tuple(_decode(v, tensors, source) for v in body)
    if tag == _DICT:
        return {k: _decode(v, tensors, source) for k, v in body}
    raise ValueError(f"{source}: unknown structure tag {tag!r}")


def save_state_tree(path: str | Path, state) -> Path:
    """Write `state` to `path` as safetensors (atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, "state")
    metadata = write_header(KIND, VERSION, {STRUCTURE_FIELD: json.dumps(structure, separators=(",", ":"))})
    return save_safetensors_atomic(path, tensors, metadata)


def load_state_tree(path: str | Path):
    """The structure `save_state_tree` wrote to `path`, tensors on the CPU."""
    from safetensors import safe_open

    source = str(path)
    with safe_open(source, framework="pt", device="cpu") as f:
        header = read_header(f.metadata(), KIND, VERSION, source=source, label="saved training state")
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    return _decode(json.loads(header.value(STRUCTURE_FIELD)), tensors, source)


def is_safetensors_file(path: str | Path) -> bool:
    """True when the file starts like safetensors (an 8-byte header length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"
