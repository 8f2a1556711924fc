"""Diffuse to Choose: adapter create / load / save, hint, adapter application, DINOv2 image conditioning, training."""

from .nodes import NODES as _INFERENCE_NODES
from .training_nodes import NODES as _TRAINING_NODES

NODES = _INFERENCE_NODES + _TRAINING_NODES

__all__ = ["NODES"]
