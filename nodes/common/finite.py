"""FLOAT inputs whose NaN or infinity has no meaning. ComfyUI's range check lets NaN through (every comparison with
NaN is false), and a NaN weight gives a black image or an all-white mask without a word."""

from __future__ import annotations

import math


def require_finite(**values) -> None:
    """A ValueError naming the first input (keyword) whose value is NaN or infinite; None means not given."""
    for name, value in values.items():
        if value is not None and not math.isfinite(float(value)):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
