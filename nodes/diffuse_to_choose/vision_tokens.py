"""Image tokens from a stock CLIP_VISION at a chosen resolution (DINOv2 at 224 px gives the paper's 257 tokens).

ComfyUI runs DINOv2 only at 518 px (37x37 patches + CLS = 1370 tokens). Diffuse to Choose feeds
DINOv2 a 224 px reference (16x16 + CLS = 257 tokens); for that the position embeddings are
resampled to the smaller grid (models/vit_positions.py), the way DINOv2's own code does.
"""

from __future__ import annotations

import torch

import comfy.model_management
from comfy.image_encoders.dino2 import Dinov2Model

from ...models.diffuse_to_choose.vit_positions import interpolate_position_embeddings
from ..common import comfyui_compat


def is_dinov2(clip_vision) -> bool:
    return isinstance(getattr(clip_vision, "model", None), Dinov2Model)


def encode_tokens(clip_vision, image: torch.Tensor, resolution: int = 0, crop: bool = True) -> torch.Tensor:
    """last_hidden_state [B, 1 + patches, D] on the intermediate device; resolution 0 = the model's own size."""
    if resolution in (0, clip_vision.image_size):
        return clip_vision.encode_image(image, crop=crop)["last_hidden_state"]
    if not is_dinov2(clip_vision):
        raise ValueError(
            f"resolution {resolution} needs a DINOv2 CLIP_VISION; this encoder runs only at its own "
            f"{clip_vision.image_size} px (use 0)"
        )
    model = clip_vision.model
    patch = model.embeddings.patch_embeddings.projection.kernel_size[0]
    if resolution % patch:
        raise ValueError(f"resolution must be a multiple of the {patch} px patch size, got {resolution}")
    comfy.model_management.load_model_gpu(clip_vision.patcher)
    device = clip_vision.load_device
    pixels = comfyui_compat.clip_preprocess(
        image.to(device), size=resolution, mean=clip_vision.image_mean, std=clip_vision.image_std, crop=crop
    ).float()
    embeddings = model.embeddings
    x = embeddings.patch_embeddings(pixels)
    cls = embeddings.cls_token.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1)
    grid = (resolution // patch, resolution // patch)
    positions = interpolate_position_embeddings(
        comfy.model_management.cast_to_device(embeddings.position_embeddings, x.device, x.dtype), grid
    )
    x = torch.cat([cls, x], dim=1) + positions
    x, _ = model.encoder(x)
    x = model.layernorm(x)
    return x.to(comfy.model_management.intermediate_device())
