"""Diffuse to Choose hint image: the reference pasted into the largest rectangle inside the mask."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..common.masks import binary_mask

FIT_MODES = ("stretch", "fit")


class Rectangle(NamedTuple):
    top: int
    left: int
    height: int
    width: int

    @property
    def area(self) -> int:
        return self.height * self.width


def largest_rectangle(mask: torch.Tensor | np.ndarray) -> Rectangle:
    """Largest axis-aligned rectangle of True cells in a 2-D boolean mask (histogram method, O(H*W)).

    Ties go to the rectangle found first scanning rows top to bottom. An empty mask gives area 0.
    """
    cells = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
    if cells.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {cells.shape}")
    rows, cols = cells.shape
    heights = np.zeros(cols + 1, dtype=np.int64)  # trailing 0 flushes the stack
    best = Rectangle(0, 0, 0, 0)
    for row in range(rows):
        heights[:cols] = np.where(cells[row], heights[:cols] + 1, 0)
        stack: list[int] = []
        for col in range(cols + 1):
            while stack and heights[stack[-1]] >= heights[col]:
                top_col = stack.pop()
                height = int(heights[top_col])
                left = stack[-1] + 1 if stack else 0
                width = col - left
                if height * width > best.area:
                    best = Rectangle(row - height + 1, left, height, width)
            stack.append(col)
    return best


def _resize_into(reference: torch.Tensor, height: int, width: int, fit: str) -> tuple[torch.Tensor, int, int]:
    """Resize a [C, h, w] image to fill (stretch) or fit inside (keep aspect) a height x width box."""
    if fit == "stretch":
        target = (height, width)
    else:
        scale = min(height / reference.shape[1], width / reference.shape[2])
        target = (max(1, round(reference.shape[1] * scale)), max(1, round(reference.shape[2] * scale)))
    resized = F.interpolate(reference[None], size=target, mode="bicubic", antialias=True, align_corners=False)[0]
    return resized.clamp(0, 1), (height - target[0]) // 2, (width - target[1]) // 2


def build_hint_images(
    references: torch.Tensor,
    masks: torch.Tensor,
    image_size: tuple[int, int],
    fit: str = "stretch",
    min_side: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hint images [B, H, W, C] (zeros, reference pasted in the largest rectangle of each mask) and
    the rectangles as masks [B, H, W].

    references: [Br, h, w, C] in [0, 1]; masks: [Bm, H', W'] (white = region to fill), resized to
    image_size and binarised as models/common/masks.py does. Batches of 1 broadcast against the other.
    """
    if fit not in FIT_MODES:
        raise ValueError(f"unknown fit {fit!r}; expected one of {FIT_MODES}")
    if references.ndim != 4:
        raise ValueError(f"reference must be an IMAGE batch [B, H, W, C], got shape {tuple(references.shape)}")
    if masks.ndim == 2:
        masks = masks[None]
    batch = max(references.shape[0], masks.shape[0])
    for name, count in (("reference", references.shape[0]), ("mask", masks.shape[0])):
        if count not in (1, batch):
            raise ValueError(f"{name} has batch {count}, expected 1 or {batch}")
    height, width = image_size
    masks = binary_mask(masks, (height, width)) > 0

    hints = torch.zeros(batch, height, width, references.shape[-1], dtype=references.dtype)
    rect_masks = torch.zeros(batch, height, width)
    for index in range(batch):
        mask = masks[index if masks.shape[0] > 1 else 0]
        if not mask.any():
            raise ValueError(f"mask {index} is empty: draw the region the reference should go into")
        rect = largest_rectangle(mask)
        if min(rect.height, rect.width) < min_side:
            raise ValueError(
                f"the largest rectangle inside mask {index} is {rect.height}x{rect.width} px; "
                f"at least {min_side}x{min_side} px is needed to hold the reference"
            )
        reference = references[index if references.shape[0] > 1 else 0].movedim(-1, 0).float()
        pasted, dy, dx = _resize_into(reference, rect.height, rect.width, fit)
        top, left = rect.top + dy, rect.left + dx
        hints[index, top : top + pasted.shape[1], left : left + pasted.shape[2]] = pasted.movedim(0, -1).to(hints.dtype)
        rect_masks[index, rect.top : rect.top + rect.height, rect.left : rect.left + rect.width] = 1.0
    return hints, rect_masks
