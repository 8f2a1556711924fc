"""`make lint` as part of the suite: ruff (configured in pyproject.toml, line length included) passes on the repo."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_check_passes():
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
