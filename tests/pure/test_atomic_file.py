"""Atomic writes: the write's own error is the one reported, long names fit, stale temporaries are swept."""

import os
import subprocess
import sys
import time

import pytest

from comfyui_exemplar.models.common import atomic_file


def test_a_failed_write_reports_its_own_error_and_leaves_nothing(tmp_path):
    def failing(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_file.atomic_write(tmp_path / "a.bin", failing)
    assert list(tmp_path.iterdir()) == []


def test_the_clean_up_never_hides_the_original_error(tmp_path, monkeypatch):
    def failing(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    def unremovable(self, missing_ok=False):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(atomic_file.Path, "unlink", unremovable)
    with pytest.raises(OSError, match="No space left on device") as raised:
        atomic_file.atomic_write(tmp_path / "a.bin", failing)
    assert raised.value.errno == 28


def test_a_name_near_the_length_limit_still_gets_a_temporary_that_fits(tmp_path):
    name = "n" * 250 + ".bin"
    assert len(atomic_file.temporary_path(tmp_path / name).name.encode()) <= 255
    atomic_file.atomic_write(tmp_path / name, lambda tmp: tmp.write_bytes(b"ok"))
    assert (tmp_path / name).read_bytes() == b"ok" and len(list(tmp_path.iterdir())) == 1


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.skipif(os.name == "nt", reason="a writer's liveness is not probed on Windows")
def test_stale_temporaries_of_the_pack_are_removed_before_the_next_write_and_nothing_else(tmp_path):
    old = time.time() - atomic_file.STALE_DEAD_WRITER - 60
    dead, alive = dead_pid(), os.getpid()
    files = {
        f".lora.safetensors.{dead}.tmp": (old, True),  # a killed writer's leftover
        f".recent.safetensors.{dead}.tmp": (time.time(), False),  # young: maybe still being looked at
        f".mine.safetensors.{alive}.tmp": (old, False),  # a writer that still runs
        f".ancient.bin.{alive}.tmp": (time.time() - atomic_file.STALE_ANY - 60, True),  # pid reused, long gone
        "user.tmp": (old, False),  # not the pack's pattern
        f".notes.{dead}.tmp.png": (old, False),
        "model.safetensors": (old, False),
    }
    for name, (mtime, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    atomic_file.atomic_write(tmp_path / "new.bin", lambda tmp: tmp.write_bytes(b"new"))
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {name for name, (_, removed) in files.items() if not removed} | {"new.bin"}
