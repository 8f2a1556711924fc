"""Paint by Example: checkpoint loaders, reference encoding, inpaint conditioning, .ckpt conversion, fine-tuning."""

from . import nodes, training_nodes

NODES = [*nodes.NODES, *training_nodes.NODES]

__all__ = ["NODES"]
