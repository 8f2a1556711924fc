"""Paint by Example: checkpoint loaders, reference encoding, inpaint conditioning, .ckpt conversion."""

from .nodes import NODES

__all__ = ["NODES"]
