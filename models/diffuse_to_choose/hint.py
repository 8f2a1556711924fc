"""Diffuse to Choose hint: the hint image, the masked source and the mask that belong together (EXEMPLAR_HINT)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .hint_image import build_hint_images


@dataclass(frozen=True)
class DtCHint:
    """hint_image [B, H, W, 3]: zeros with the reference in the mask's largest rectangle;
    masked_source [B, H, W, 3]: the source with the mask region filled grey (0.5);
    mask [B, H, W]: the inpainting mask at source size (1 = regenerate); rectangle [B, H, W]."""

    hint_image: torch.Tensor
    masked_source: torch.Tensor
    mask: torch.Tensor
    rectangle: torch.Tensor

    @property
    def batch(self) -> int:
        return self.hint_image.shape[0]


def masked_source(image: torch.Tensor, mask: torch.Tensor, fill: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(source with the mask region replaced by `fill`, the binarised mask at image size).

    image [B, H, W, C]; mask [Bm, H', W'] (1 = region to regenerate), resized and thresholded at 0.5;
    batches of 1 broadcast. `fill` 0.5 is grey, i.e. zero in the [-1, 1] range the VAE sees.
    """
    if mask.ndim == 2:
        mask = mask[None]
    batch = max(image.shape[0], mask.shape[0])
    if 1 not in (image.shape[0], mask.shape[0]) and image.shape[0] != mask.shape[0]:
        raise ValueError(f"image batch {image.shape[0]} and mask batch {mask.shape[0]} differ; each must be 1 or the same")
    resized = F.interpolate(mask[:, None].float(), size=image.shape[1:3], mode="bilinear", align_corners=False)[:, 0] > 0.5
    resized = resized.expand(batch, -1, -1).to(image.dtype)
    rgb = image[..., :3].expand(batch, -1, -1, -1)
    return rgb * (1 - resized[..., None]) + fill * resized[..., None], resized


def build_hint(image: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor, fit: str = "stretch", min_side: int = 8) -> DtCHint:
    """The EXEMPLAR_HINT value for a source image, its inpainting mask and the reference."""
    hints, rectangles = build_hint_images(reference, mask, tuple(image.shape[1:3]), fit, min_side)
    source, binary = masked_source(image, mask)
    batch = max(hints.shape[0], source.shape[0])
    if source.shape[0] not in (1, batch):
        raise ValueError(f"image has batch {source.shape[0]}, the hint batch is {batch}")
    expand = lambda t: t.expand(batch, *t.shape[1:]).contiguous()  # noqa: E731
    return DtCHint(expand(hints), expand(source), expand(binary), expand(rectangles))
