"""DreamStyler: staged embeddings, staged and style-and-context text encoding, prompt templates, trainer."""

from .nodes import NODES

__all__ = ["NODES"]
