"""Paint by Example's inputs: the source cropped to the latent grid, its masked version, the hole mask, the reference
pixels.

Masks follow the pack's convention (models/common/masks.py: 1 = the hole to repaint); PbE's UNet
takes keep = 1 - hole, which the MODEL's concat keys build (nodes/paint_by_example/loader.py). The
official code binarises the soft mask at 0.5 in pixel space (`keep = 1 - m`, then `keep < 0.5 -> 0`,
`keep >= 0.5 -> 1`), multiplies the [-1, 1] image by keep (the hole becomes 0, mid grey) and resizes
the keep-mask bilinearly to the latent size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..common.masks import as_batch, masked_source, resize_mask

CROP_MODES = ("squash", "center")
LATENT_SCALE = 8  # pixels per latent cell of the SD VAE


def hole_mask(mask: torch.Tensor, size: tuple[int, int], threshold: float = 0.5) -> torch.Tensor:
    """The soft mask (1 = repaint) at `size`, binarised by the official rule keep = (1 - mask >= threshold).

    The hole is where keep falls below the threshold; at the default 0.5 that is exactly
    `binary_mask(mask) = mask > 0.5`. The rule is kept in its official form for the other thresholds,
    where `mask > 1 - threshold` would round differently at the boundary.
    """
    return ((1.0 - resize_mask(mask, size)) < threshold).float()


@dataclass(frozen=True)
class InpaintInputs:
    """pixels [B, H, W, 3]: the source cropped (centred) to multiples of 8; masked: the same with the
    hole grey (0 in [-1, 1]); hole [B, H, W]: binary, 1 = repaint."""

    pixels: torch.Tensor
    masked: torch.Tensor
    hole: torch.Tensor


def inpaint_inputs(pixels: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> InpaintInputs:
    """Align a source image [B, H, W, C] and its mask ([B or 1, H', W'], any size) to the latent grid.

    The mask is resized to the image, both are cropped to the centred multiple-of-8 window the VAE
    encodes without remainder, and the mask is binarised (see hole_mask).
    """
    mask = as_batch(mask)
    if mask.shape[0] not in (1, pixels.shape[0]):
        raise ValueError(f"mask has batch {mask.shape[0]}; expected 1 or the pixels batch {pixels.shape[0]}")
    height, width = (pixels.shape[1] // LATENT_SCALE) * LATENT_SCALE, (pixels.shape[2] // LATENT_SCALE) * LATENT_SCALE
    if height == 0 or width == 0:
        raise ValueError(f"pixels must be at least 8x8; got {pixels.shape[1]}x{pixels.shape[2]}")
    top, left = (pixels.shape[1] % LATENT_SCALE) // 2, (pixels.shape[2] % LATENT_SCALE) // 2
    hole = hole_mask(mask, tuple(pixels.shape[1:3]), threshold)[:, top : top + height, left : left + width]
    pixels = pixels[:, top : top + height, left : left + width, :3]
    hole = hole.expand(pixels.shape[0], -1, -1).contiguous()
    return InpaintInputs(pixels, masked_source(pixels, hole), hole)


def squash_8bit(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 3, size, size] as the official code's PIL `resize((size, size))` does it.

    The image is taken to 8 bits (LoadImage's values are exact bytes / 255), then resampled bicubic
    (a = -0.5, support widened by the scale when shrinking) first along the width, rounded to 8 bits
    and clipped, then along the height, rounded and clipped again: Pillow's two passes, in the order of
    its Resample.c (width first; Pillow 13 sometimes starts with the height, which moves edge pixels).
    """
    levels = (x.clamp(0, 1) * 255).round()
    for axis_size in ((levels.shape[-2], size), (size, size)):
        if tuple(levels.shape[-2:]) != axis_size:
            levels = F.interpolate(levels, size=axis_size, mode="bicubic", antialias=True, align_corners=False)
            levels = levels.round().clamp(0, 255)
    return levels / 255


def reference_pixels(
    images: torch.Tensor,
    size: int,
    crop: str,
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
) -> torch.Tensor:
    """[B, H, W, 3] in [0, 1] -> CLIP input [B, 3, size, size].

    crop="squash": resize the whole image to size x size in 8 bits as the official PbE code (squash_8bit);
    crop="center": resize the short side to `size` and take the centre square (diffusers /
    CLIPImageProcessor), bicubic with antialiasing in float. Clamped to [0, 1], then (x - mean) / std.
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}; got {crop!r}")
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"reference must be an IMAGE [B, H, W, 3]; got shape {list(images.shape)}")
    x = images[..., :3].movedim(-1, 1).float()
    height, width = x.shape[-2:]
    if crop == "squash":
        x = squash_8bit(x, size)
        target = (size, size)
    else:
        scale = size / min(height, width)
        target = (max(size, round(height * scale)), max(size, round(width * scale)))
    if (height, width) != target:
        x = F.interpolate(x, size=target, mode="bicubic", antialias=True, align_corners=False)
    if crop == "center":
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top : top + size, left : left + size]
    x = x.clamp(0, 1)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean_t) / std_t
