"""Diffuse to Choose: adapter create / load / save, hint, adapter application, DINOv2 image conditioning."""

from .nodes import NODES

__all__ = ["NODES"]
