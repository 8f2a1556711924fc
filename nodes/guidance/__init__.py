"""Multi-prediction guidance: dual-condition and style-and-context guiders and KSampler-shaped nodes."""

from .nodes import NODES

__all__ = ["NODES"]
