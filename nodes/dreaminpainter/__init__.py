"""DreamInpainter: reference encoders (CLIP vision / DINOv2, the UNet's own features), top-K token
selection, token injection into self- and cross-attention, learned scorer and projection loaders and their
trainer."""

from . import reference_encode_clip_vision, reference_encode_unet, reference_inject, token_select, training_nodes

NODES = [
    *reference_encode_clip_vision.NODES,
    *reference_encode_unet.NODES,
    *token_select.NODES,
    *reference_inject.NODES,
    *training_nodes.NODES,
]
