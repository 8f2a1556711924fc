"""Damaged tensor files as clear errors: empty, truncated, unsafe pickles, NaN / inf values, wrong shapes.

Every message names the file (and the tensor or part); none passes on torch's advice to retry
with `weights_only=False`, which would run whatever code a pickle holds.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re

import torch

from .file_probe import unpickling_detail

_SIZE_MISMATCH = (
    r"size mismatch for (?P<key>\S+): copying a param with shape torch\.Size\((?P<found>\[[^\]]*\])\) from "
    r"checkpoint, the shape in current model is torch\.Size\((?P<expected>\[[^\]]*\])\)"
)
_UNSAFE_GLOBAL = r"GLOBAL (\S+) was not an allowed global|Unsupported global: GLOBAL (\S+)"


def _is_safetensors_error(error: BaseException) -> bool:
    return type(error).__name__ == "SafetensorError"


@contextlib.contextmanager
def readable(path: str | os.PathLike, source: str | None = None):
    """Turn the low-level errors of reading `path` (torch.load, safetensors) into a ValueError naming the file."""
    source = source or os.path.basename(os.fspath(path))
    try:
        yield
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error) and not re.search(_UNSAFE_GLOBAL, str(error)):
            raise ValueError(_damaged_message(path, source, error)) from None
        raise ValueError(
            f"refusing to load {source}: it pickles Python objects beyond plain tensors, which could run code; "
            f"only plain tensor files are read ({unpickling_detail(error)}). Use a .safetensors version of it"
        ) from None
    except (EOFError, OSError, RuntimeError) as error:
        if isinstance(error, FileNotFoundError) or not _damaged(path, error):
            raise
        raise ValueError(_damaged_message(path, source, error)) from None
    except Exception as error:
        if not _is_safetensors_error(error):
            raise
        raise ValueError(_damaged_message(path, source, error)) from None


def _damaged(path, error: BaseException) -> bool:
    if isinstance(error, EOFError) or _is_safetensors_error(error):
        return True
    text = str(error)
    if isinstance(error, RuntimeError):
        return any(s in text for s in ("PytorchStreamReader", "zip archive", "unexpected EOF", "storage has wrong"))
    return _size(path) == 0 or "Invalid argument" in text


def _size(path) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _damaged_message(path, source: str, error: BaseException) -> str:
    size = _size(path)
    if size == 0:
        return f"{source} is empty (0 bytes): the download or copy did not finish; fetch the file again"
    detail = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
    kind = "safetensors" if _is_safetensors_error(error) else "torch.save"
    return (
        f"{source} cannot be read as a {kind} file ({size} bytes; the reader said: {detail}): it is truncated, "
        "damaged or another kind of file; fetch or write it again"
    )


def require_finite_tensors(state: dict, source: str) -> None:
    """Refuse a state dict holding NaN or infinite values, naming the file and the first such tensor."""
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"{source}: tensor {key!r} holds {bad} NaN or infinite value(s) of {value.numel()}; the file is "
                "damaged or came from a training run that diverged, and would give black or noise images"
            )


def shape_mismatches(expected: dict, found: dict) -> list[tuple[str, tuple, tuple]]:
    """(key, expected shape, found shape) for every key in both dicts whose tensors differ in shape."""
    return [
        (key, tuple(expected[key].shape), tuple(found[key].shape))
        for key in expected
        if key in found and tuple(expected[key].shape) != tuple(found[key].shape)
    ]


def shape_message(source: str, part: str, mismatches: list[tuple[str, tuple, tuple]]) -> str:
    key, expected, found = mismatches[0]
    more = f" ({len(mismatches)} tensors differ)" if len(mismatches) > 1 else ""
    return (
        f"{source}: the {part} does not have the expected shapes: tensor {key!r} is {list(found)}, "
        f"expected {list(expected)}{more}"
    )


def shape_error_from_load(error: RuntimeError, source: str, part: str) -> ValueError | None:
    """The clear error for torch's load_state_dict size-mismatch dump, or None when it is another error."""
    mismatches = [
        (m["key"], tuple(_ints(m["expected"])), tuple(_ints(m["found"])))
        for m in re.finditer(_SIZE_MISMATCH, str(error))
    ]
    return ValueError(shape_message(source, part, mismatches)) if mismatches else None


def _ints(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", text)]
