"""Compositing: paste the untouched source back around an inpainted region."""

from .nodes import NODES

__all__ = ["NODES"]
