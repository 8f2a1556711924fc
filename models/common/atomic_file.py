"""Write a file so that readers never see half of it: into a temporary name in the same folder,
then renamed over the target (atomic on POSIX and Windows); the temporary is removed on failure.

A process killed mid-write (kill -9, power loss) cannot remove its temporary. Before each write the
folder is swept of this module's own temporaries (`.<name>.<pid>.tmp`) that are stale: older than
STALE_DEAD_WRITER seconds when the writing process no longer runs, or older than STALE_ANY whatever
the process (a pid can be reused). Nothing else in the folder is touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Callable

STALE_DEAD_WRITER = 10 * 60
STALE_ANY = 24 * 3600
_TEMPORARY = r"^\..+\.(?P<pid>\d+)\.tmp$"
_MAX_NAME = 255  # bytes per file name on the common file systems


def temporary_path(path: Path) -> Path:
    """The temporary name for `path`, kept within the file-system limit on name length."""
    name = f".{path.name}.{os.getpid()}.tmp"
    if len(name.encode()) > _MAX_NAME:
        digest = hashlib.sha1(path.name.encode()).hexdigest()[:10]
        name = f".{path.name.encode()[:180].decode(errors='ignore')}-{digest}.{os.getpid()}.tmp"
    return path.with_name(name)


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there; assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Delete this module's stale temporaries in `folder` (see the module doc); returns what was removed."""
    folder = Path(folder)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = re.match(_TEMPORARY, entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = int(match["pid"])
            dead = pid != os.getpid() and not _running(pid)
            if age > STALE_ANY or (dead and age > STALE_DEAD_WRITER):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone meanwhile, or not ours to delete
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and move the result to `path`; create the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the one that stopped the write
            tmp.unlink(missing_ok=True)
        raise
    return path


def save_safetensors_atomic(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
