"""DreamBooth: rare-token identifier, class images, prior-preservation LoRA trainer."""

from .nodes import NODES

__all__ = ["NODES"]
