"""Position embeddings of a ViT resampled to another patch grid (to run DINOv2 at 224 px: 16x16 + CLS = 257 tokens)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def interpolate_position_embeddings(positions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[1, 1 + n*n, D] (CLS first, square grid) -> [1, 1 + h*w, D]; bicubic in float32, as DINOv2's reference code."""
    count = positions.shape[1] - 1
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"{count} patch positions do not form a square grid")
    if (side, side) == tuple(grid):
        return positions
    dim = positions.shape[-1]
    patch = positions[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch.float(), size=tuple(grid), mode="bicubic", align_corners=False).to(positions.dtype)
    return torch.cat([positions[:, :1], patch.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
