"""Masks, one convention for the whole pack.

A mask is a float tensor [B, H, W] (a 2-D [H, W] counts as a batch of one) with values in [0, 1]
and 1 = the region to regenerate: ComfyUI's white = inpaint. On a reference image the same white
marks the subject. A method whose model wants the opposite (Paint by Example's UNet takes
keep = 1 - hole) converts at the point where it builds that model input, not before.

Resizing is bilinear (align_corners=False), and a soft mask becomes binary by one rule: a pixel is
in the region when its value is above the threshold (0.5 by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def as_batch(mask: torch.Tensor) -> torch.Tensor:
    """[H, W] or [B, H, W] -> [B, H, W]."""
    if mask.ndim == 2:
        return mask[None]
    if mask.ndim != 3:
        raise ValueError(f"a mask is [B, H, W] or [H, W]; got shape {tuple(mask.shape)}")
    return mask


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float [B, h, w] at `size` = (h, w), bilinear; the values are unchanged at the same size."""
    mask = as_batch(mask).float()
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def binary_mask(mask: torch.Tensor, size: tuple[int, int] | None = None, threshold: float = 0.5) -> torch.Tensor:
    """Resize (when `size` is given), then 1.0 where the value is above `threshold`, else 0.0."""
    resized = resize_mask(mask, size) if size is not None else as_batch(mask).float()
    return (resized > threshold).float()


def masked_source(image: torch.Tensor, region: torch.Tensor, fill: float = 0.5) -> torch.Tensor:
    """The image [B, H, W, C] with the region set to `fill`; elsewhere the pixels are kept exactly.

    `region` is a binary mask at the image's size ([B or 1, H, W]); a batch of 1 on either side
    broadcasts. `fill` 0.5 is grey, i.e. 0 in the [-1, 1] range a VAE sees.
    """
    region = as_batch(region)
    if tuple(region.shape[-2:]) != tuple(image.shape[1:3]):
        raise ValueError(
            f"the mask is {tuple(region.shape[-2:])}, the image {tuple(image.shape[1:3])}; resize it first"
        )
    if 1 not in (image.shape[0], region.shape[0]) and image.shape[0] != region.shape[0]:
        raise ValueError(
            f"image batch {image.shape[0]} and mask batch {region.shape[0]} differ; each must be 1 or the same"
        )
    return torch.where(region[..., None] > 0.5, torch.tensor(fill, dtype=image.dtype), image)


def blank_outside_mask(images: torch.Tensor, mask: torch.Tensor, fill: float = 1.0) -> torch.Tensor:
    """Blend everything outside the (soft) mask, resized to the images, towards `fill` (white by default)."""
    weight = resize_mask(mask, images.shape[1:3]).clamp(0, 1)[..., None].to(images.dtype)
    return images * weight + fill * (1 - weight)
