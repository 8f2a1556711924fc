"""What a weight file is, from its first bytes only (no tensor is read), for pickers that list one kind of file.

- `.safetensors`: the JSON header (8-byte length + JSON) holds every tensor name and the metadata; `safetensors_header`
  reads just that.
- pickled checkpoints (`.ckpt`, `.bin`, `.pt`) in torch's zip format: the pickle `*/data.pkl` holds the key names;
  `pickle_names_contain` searches it for byte strings without unpickling anything. A legacy (non-zip) file cannot be
  probed cheaply and counts as unknown (None).

Answers are cached by (path, size, mtime), so listing a folder again costs a stat per file.
"""

from __future__ import annotations

import json
import re
import os
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache

MAX_HEADER_BYTES = 100 * 1024 * 1024  # a larger header means the file is not safetensors
MAX_PICKLE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SafetensorsHeader:
    metadata: dict
    keys: frozenset


def _stamp(path) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return os.fspath(path), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4096)
def _header(path: str, size: int, mtime: int) -> SafetensorsHeader | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return None
            (length,) = struct.unpack("<Q", raw)
            if length > min(MAX_HEADER_BYTES, size - 8):
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    metadata = header.pop("__metadata__", None) or {}
    return SafetensorsHeader(dict(metadata) if isinstance(metadata, dict) else {}, frozenset(header))


def safetensors_header(path) -> SafetensorsHeader | None:
    """The tensor names and metadata of a safetensors file, or None when it is not one (or unreadable)."""
    stamp = _stamp(path)
    return None if stamp is None else _header(*stamp)


@lru_cache(maxsize=4096)
def _pickle_contains(path: str, size: int, mtime: int, needles: tuple[bytes, ...]) -> bool | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names or archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                return None
            data = archive.read(names[0])
    except (OSError, zipfile.BadZipFile, KeyError):
        return None
    return any(needle in data for needle in needles)


def pickle_names_contain(path, needles: tuple[bytes, ...]) -> bool | None:
    """Whether the pickle of a torch zip checkpoint mentions any of `needles`; None when it cannot be told."""
    stamp = _stamp(path)
    return None if stamp is None else _pickle_contains(*stamp, tuple(needles))


_ANSI = r"\x1b\[[0-9;]*[A-Za-z]"
_GLOBAL = r"GLOBAL (\S+) was not an allowed global"


def plain_text(message: str) -> str:
    """`message` without terminal colour codes (torch's weights_only errors carry some)."""
    return re.sub(_ANSI, "", message)


def unpickling_detail(error: BaseException) -> str:
    """What a refused weights_only load found, in one line without terminal codes: the Python object it would
    create (torch names it), else the first line of the error."""
    text = plain_text(str(error))
    found = re.search(_GLOBAL, text)
    if found:
        return f"it stores a Python object of type {found.group(1)}, not only tensors"
    return next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
