"""Paste the untouched source back around an inpainted region.

Images are ComfyUI IMAGE tensors [B, H, W, C] in [0, 1]; the mask follows the pack's convention
(models/common/masks.py: 1 = the regenerated region, resized bilinearly and binarised at 0.5).

Blend weight. The weight of the generated image is 0 outside the binary mask, so every pixel there is
the source's, bit for bit. Inside, it ramps from 1/feather on the mask's edge to 1 at `feather` pixels
from the nearest kept pixel: weight = min(d, feather) / feather, where d is the chessboard (Chebyshev)
distance to the outside, counted by successive 3x3 erosions. The image border does not count as outside,
so a mask that touches the border is not faded there. feather = 0 gives the hard binary mask.

Colour match (optional). The sampler and the VAE shift colours slightly everywhere. Per colour channel,
the generated region is mapped by x -> (x - m_g) * s_s / s_g + m_s, where m and s are the mean and the
standard deviation over a ring of `ring` pixels around the mask (the chessboard dilation of the mask minus the
mask), m_g / s_g measured on the generated image and m_s / s_s on the source: the change that makes the
generated image agree with the source where both should show the same surroundings. Where the generated ring is
flat (s_g below 1e-6) only the mean is shifted. Values are clamped to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common.masks import binary_mask

FLAT = 1e-6


def _batch(name: str, tensor: torch.Tensor, size: int) -> torch.Tensor:
    if tensor.shape[0] == size:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(size, *tensor.shape[1:])
    raise ValueError(f"{name}: batch of {tensor.shape[0]}, expected 1 or {size} (the generated images' batch)")


def _erode(region: torch.Tensor) -> torch.Tensor:
    """One 3x3 erosion of a binary [B, H, W] map; outside the image counts as inside (replicated border)."""
    padded = F.pad(region[:, None], (1, 1, 1, 1), mode="replicate")
    return -F.max_pool2d(-padded, 3, stride=1)[:, 0]


def _dilate(region: torch.Tensor, pixels: int) -> torch.Tensor:
    if pixels <= 0:
        return region
    return F.max_pool2d(region[:, None], 2 * pixels + 1, stride=1, padding=pixels)[:, 0]


def feathered_weight(region: torch.Tensor, feather: int) -> torch.Tensor:
    """The generated image's blend weight [B, H, W] for a binary region: 0 outside, min(d, feather) / feather in."""
    if feather < 0:
        raise ValueError(f"feather: expected a number of pixels >= 0, got {feather}")
    if feather == 0:
        return region.clone()
    total = torch.zeros_like(region)
    eroded = region
    for _ in range(feather):
        total += eroded
        if not eroded.any():
            break
        eroded = _erode(eroded)
    return total / feather


def ring_around(region: torch.Tensor, pixels: int) -> torch.Tensor:
    """The pixels outside a binary region within `pixels` (chessboard distance) of it."""
    return _dilate(region, pixels) - region


def _mean_std(image: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel over the weighted pixels: [B, C] each."""
    w = weight[..., None].double()
    count = w.sum(dim=(1, 2))
    mean = (image.double() * w).sum(dim=(1, 2)) / count
    var = ((image.double() - mean[:, None, None]).square() * w).sum(dim=(1, 2)) / count
    return mean, var.sqrt()


def match_colours(generated: torch.Tensor, source: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """The generated images with each channel's mean/std over `ring` moved to the source's (module docstring)."""
    empty = [i for i in range(ring.shape[0]) if not ring[i].any()]
    if empty:
        raise ValueError(
            f"color_match: the mask leaves no surrounding pixels to match to (image {empty[0]} of the batch: the "
            "mask covers the whole image); turn color_match off or draw a smaller mask"
        )
    m_g, s_g = _mean_std(generated, ring)
    m_s, s_s = _mean_std(source, ring)
    scale = torch.where(s_g > FLAT, s_s / s_g.clamp_min(FLAT), torch.ones_like(s_g))
    out = (generated.double() - m_g[:, None, None]) * scale[:, None, None] + m_s[:, None, None]
    return out.clamp(0, 1).to(generated.dtype)


def paste_back(
    generated: torch.Tensor,
    source: torch.Tensor,
    mask: torch.Tensor,
    feather: int = 8,
    color_match: bool = False,
    ring: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(composited images [B, H, W, C], the generated image's blend weight [B, H, W]).

    A batch of 1 in `source` or `mask` is used for every generated image; the mask is resized to the images.
    """
    if generated.ndim != 4 or source.ndim != 4:
        raise ValueError(
            f"image / source: expected IMAGE tensors [B, H, W, C], got {tuple(generated.shape)} and "
            f"{tuple(source.shape)}"
        )
    if generated.shape[1:] != source.shape[1:]:
        raise ValueError(
            f"source: {source.shape[2]}x{source.shape[1]} with {source.shape[3]} channels, but the generated image is "
            f"{generated.shape[2]}x{generated.shape[1]} with {generated.shape[3]} channels; paste back onto the "
            "image that was inpainted, at its size (inpainting nodes crop the source to a multiple of 8 pixels: "
            "give them a source whose sides are multiples of 8, or scale the generated image to the source)"
        )
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask: expected a MASK [B, H, W], got shape {tuple(mask.shape)}")
    if ring < 1 and color_match:
        raise ValueError(f"ring: expected at least 1 pixel for the colour match, got {ring}")
    size = generated.shape[0]
    source = _batch("source", source.to(generated.device, generated.dtype), size)
    region = _batch("mask", binary_mask(mask.to(generated.device), tuple(generated.shape[1:3])), size)
    weight = feathered_weight(region, feather)
    if color_match:
        generated = match_colours(generated, source, ring_around(region, ring))
    w = weight[..., None].to(generated.dtype)
    return source + w * (generated - source), weight
