"""Run a training CLI of scripts/ as a user would (one process, or torchrun with CPU processes on gloo), for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .paths import PACK_ROOT, comfyui_dir


def run_cli(script: str, args: list[str], nproc: int = 1, timeout: int = 900) -> subprocess.CompletedProcess:
    """scripts/`script` with `args` plus --comfyui and --cpu, in one process or under torchrun with `nproc` CPU
    processes; its output is captured, its exit code not checked."""
    command = [sys.executable]
    if nproc > 1:
        command += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    command += [str(PACK_ROOT / "scripts" / script), "--comfyui", str(comfyui_dir()), "--cpu", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def run_training_cli(script: str, args: list[str], nproc: int, rank_dir: Path, timeout: int = 900):
    """(one rank report per process, stdout) of `run_cli` with --rank-report-dir `rank_dir`; a failing run is an
    AssertionError holding its output."""
    done = run_cli(script, [*args, "--rank-report-dir", str(rank_dir)], nproc, timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return [json.loads((Path(rank_dir) / f"rank{r}.json").read_text()) for r in range(nproc)], done.stdout
