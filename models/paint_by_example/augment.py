"""Paint by Example's reference augmentation for fine-tuning (official recipe, docs/training.md):

    crop the reference to its box padded by `pad` px (when it comes from the image itself) -> resize to `size`
    -> horizontal flip (p .5) -> rotation by a uniform angle in +-`degrees` -> blur (p .3) -> elastic warp (p .3)

The blur and elastic strengths are not stated in the spec: a Gaussian blur with sigma uniform in 0.1..2 px (at
224 px, scaled with the size) and a displacement field of uniform noise smoothed by a Gaussian of 8 % of the size,
at most 4 % of the size per pixel. Every random choice comes from the generator passed in, always in the same order
(each draw is made whether or not it is used), so a resumed run augments exactly as the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.filters
import torch
import torch.nn.functional as F

from ..common.datasets import rotate_image
from ..common.train_masks import bounding_box


@dataclass(frozen=True)
class ReferenceAugmentation:
    size: int = 224
    flip_probability: float = 0.5
    rotation_degrees: float = 20.0
    blur_probability: float = 0.3
    elastic_probability: float = 0.3

    def validate(self):
        for name in ("flip_probability", "blur_probability", "elastic_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.rotation_degrees <= 180:
            raise ValueError(f"rotation_degrees must be in [0, 180], got {self.rotation_degrees}")
        if self.size < 8:
            raise ValueError(f"the reference size must be at least 8 px, got {self.size}")


def crop_to_box(image: torch.Tensor, mask: torch.Tensor, pad: int = 10) -> torch.Tensor:
    """[H, W, 3] cropped to the bounding box of `mask` [H, W] grown by `pad` px on each side (within the image)."""
    top, left, bottom, right = bounding_box(mask)
    height, width = mask.shape
    return image[max(top - pad, 0) : min(bottom + pad, height), max(left - pad, 0) : min(right + pad, width)]


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    x = image.movedim(-1, 0)[None].float()
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return x[0].clamp(0, 1).movedim(0, -1)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """[H, W, 3] blurred by a Gaussian of `sigma` px (kernel 2 * ceil(3 sigma) + 1, reflected borders)."""
    radius = max(1, int(torch.tensor(3 * sigma).ceil()))
    kernel = min(2 * radius + 1, 2 * (min(image.shape[:2]) // 2) - 1)
    x = image.movedim(-1, 0)[None]
    return kornia.filters.gaussian_blur2d(x, (kernel, kernel), (sigma, sigma), border_type="reflect")[0].movedim(0, -1)


def elastic_warp(image: torch.Tensor, noise: torch.Tensor, smooth: float, strength: float) -> torch.Tensor:
    """[H, W, 3] resampled along a displacement field: `noise` [2, H, W] in [-1, 1] smoothed by a Gaussian of
    `smooth` px and scaled so the largest displacement is `strength` px; borders are clamped."""
    height, width = image.shape[:2]
    field = gaussian_blur(noise.movedim(0, -1), smooth).movedim(-1, 0)
    field = field / field.abs().amax().clamp_min(1e-12) * strength
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    grid_x = (xs + field[0]) * 2 / max(width - 1, 1) - 1
    grid_y = (ys + field[1]) * 2 / max(height - 1, 1) - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)[None]
    x = image.movedim(-1, 0)[None].float()
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0].clamp(0, 1).movedim(0, -1)


def augment_reference(image: torch.Tensor, settings: ReferenceAugmentation, generator: torch.Generator):
    """One augmented reference [size, size, 3] from `image` [H, W, 3] in 0..1 (see the module docstring)."""
    size = settings.size
    out = _resize(image, size)
    u = torch.rand(6, generator=generator, dtype=torch.float64).tolist()
    noise = torch.rand(2, size, size, generator=generator) * 2 - 1
    if u[0] < settings.flip_probability:
        out = out.flip(1)
    angle = (u[1] * 2 - 1) * settings.rotation_degrees
    if angle:
        out = rotate_image(out, angle)
    scale = size / 224
    if u[2] < settings.blur_probability:
        out = gaussian_blur(out, (0.1 + 1.9 * u[3]) * scale)
    if u[4] < settings.elastic_probability:
        out = elastic_warp(out, noise, smooth=0.08 * size, strength=0.04 * size)
    return out
