"""Combo values arriving over the API: ComfyUI 0.3.75 does not check V3 combo values against their options, so an
unknown value would otherwise run as some default or fail deep inside with a KeyError or AttributeError."""

from __future__ import annotations

CROP_CHOICES = ("center", "none")  # how a reference is fitted to the encoder's square: centre crop or squash


def require_choice(input_name: str, value, options) -> None:
    """A ValueError naming `input_name` and every allowed value when `value` is not one of `options`."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{input_name}: unknown value {value!r}; expected one of {', '.join(map(str, options))}")
