"""Diffuse to Choose hint: the hint image, the masked source and the mask that belong together (EXEMPLAR_HINT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common.masks import binary_mask, masked_source
from .hint_image import build_hint_images

MIN_IMAGE_SIDE = 8


@dataclass(frozen=True)
class DtCHint:
    """hint_image [B, H, W, 3]: zeros with the reference in the mask's largest rectangle;
    masked_source [B, H, W, 3]: the source with the mask region filled grey (0.5, models/common/masks.py);
    rectangle [B, H, W]: 1 inside the rectangle the reference was pasted into."""

    hint_image: torch.Tensor
    masked_source: torch.Tensor
    rectangle: torch.Tensor

    @property
    def batch(self) -> int:
        return self.hint_image.shape[0]


def build_hint(
    image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor, fit: str = "stretch", min_side: int = 8
) -> DtCHint:
    """The EXEMPLAR_HINT value for a source image, its inpainting mask and the reference."""
    if image.ndim != 4 or min(image.shape[1:3]) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"image must be an IMAGE [B, H, W, C] of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} px (one latent cell), "
            f"got shape {tuple(image.shape)}"
        )
    hints, rectangles = build_hint_images(reference, mask, tuple(image.shape[1:3]), fit, min_side)
    region = binary_mask(mask, image.shape[1:3]).to(image.dtype)
    source = masked_source(image[..., :3], region)
    batch = max(hints.shape[0], source.shape[0])
    if source.shape[0] not in (1, batch):
        raise ValueError(f"image has batch {source.shape[0]}, the hint batch is {batch}")
    expand = lambda t: t.expand(batch, *t.shape[1:]).contiguous()  # noqa: E731
    return DtCHint(expand(hints), expand(source), expand(rectangles))
