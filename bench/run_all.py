"""Run every bench/bench_*.py (or the ones named on the command line) and print their reports."""

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv):
    if os.environ.get(
        "EXEMPLAR_BENCH_THREADS"
    ):  # e.g. 1: two benchmarks side by side, or CPU time without idle spinning
        import torch

        torch.set_num_threads(int(os.environ["EXEMPLAR_BENCH_THREADS"]))
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in names:
        module = importlib.import_module(name if name.startswith("bench_") else f"bench_{name}")
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
