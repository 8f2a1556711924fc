"""One check for every name a node turns into a file: run it before any work starts, so a bad name fails in a
second rather than after a training run."""

from __future__ import annotations

import re

MAX_COMPONENT = 200  # leaves room for the suffixes the pack adds (_step000100.safetensors) under the usual 255
_CONTROL = r"[\x00-\x1f\x7f]"
_DRIVE = r"^[A-Za-z]:"


def check_output_name(name, input_name: str, example: str, folders: bool = True) -> str:
    """`name` stripped of surrounding spaces, or a ValueError naming `input_name`: blank, control characters (NUL
    included), an absolute path, `.`/`..`/empty parts, a folder when `folders` is False, a part over
    MAX_COMPONENT characters."""

    def refuse(why: str):
        shown = name if len(str(name)) <= 80 else f"{str(name)[:40]}...({len(name)} characters)"
        raise ValueError(f"{input_name}: {why}; expected a name like {example!r}, got {shown!r}")

    if not isinstance(name, str):
        refuse("not text")
    clean = name.strip()
    if not clean:
        refuse("the name is blank")
    if re.search(_CONTROL, clean):
        refuse("the name holds a control character (NUL, newline, tab, ...)")
    clean = clean.replace("\\", "/")
    if clean.startswith("/") or re.match(_DRIVE, clean):
        refuse("an absolute path is not allowed")
    parts = clean.split("/")
    if not folders and len(parts) > 1:
        refuse("a plain file name without folders is needed")
    if any(part.strip() in ("", ".", "..") for part in parts):
        refuse("a relative name without empty, '.' or '..' parts is needed")
    longest = max(parts, key=len)
    if len(longest) > MAX_COMPONENT:
        refuse(f"a part of {len(longest)} characters is over the limit of {MAX_COMPONENT}")
    return clean
