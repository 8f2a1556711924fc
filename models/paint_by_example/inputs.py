"""Paint by Example's inputs: the binary keep-mask, the masked source image, the reference pixels.

Conventions: ComfyUI masks are white = hole (1 = repaint); PbE's UNet takes keep = 1 - hole.
The official code thresholds the soft mask at 0.5 in pixel space (`keep = 1 - m`, then
`keep < 0.5 -> 0`, `keep >= 0.5 -> 1`), multiplies the [-1, 1] image by it (the hole becomes 0,
mid grey) and resizes the keep-mask bilinearly to the latent size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_MODES = ("squash", "center")


def keep_mask(hole: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """[B, H, W] soft hole mask (1 = repaint) -> binary keep mask (1 = keep): keep = (1 - hole >= threshold)."""
    return ((1.0 - hole.float()) >= threshold).float()


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, H, W] -> [B, height, width], bilinear (no-op at the same size)."""
    if tuple(mask.shape[-2:]) == (height, width):
        return mask.float()
    return F.interpolate(mask[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]


def masked_source(image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[B, H, W, C] image in [0, 1] -> the same with the hole set to 0.5 (0 in PbE's [-1, 1] range).

    Equals `(2 * image - 1) * keep` mapped back to [0, 1]; keep is [B or 1, H, W] at image size.
    """
    keep = keep.to(image.dtype)[..., None]
    return (image - 0.5) * keep + 0.5


def latent_keep_mask(keep: torch.Tensor, latent_height: int, latent_width: int, threshold: float = 0.5) -> torch.Tensor:
    """The pixel keep-mask at latent size: bilinear resize, then binarised at `threshold` (1 = keep)."""
    return (resize_mask(keep, latent_height, latent_width) >= threshold).float()


def reference_pixels(
    images: torch.Tensor, size: int, crop: str, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)
) -> torch.Tensor:
    """[B, H, W, 3] in [0, 1] -> CLIP input [B, 3, size, size].

    crop="squash": resize the whole image to size x size (official PbE); crop="center": resize the
    short side to `size` and take the centre square (diffusers / CLIPImageProcessor). Bicubic with
    antialiasing, clamped to [0, 1], then (x - mean) / std.
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}; got {crop!r}")
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"reference must be an IMAGE [B, H, W, 3]; got shape {list(images.shape)}")
    x = images[..., :3].movedim(-1, 1).float()
    height, width = x.shape[-2:]
    if crop == "squash":
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
