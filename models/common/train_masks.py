"""Training masks drawn from a sample's own mask: the one place the trainers get their inpainting regions.

Masks follow models/common/masks.py (float [H, W], 1 = the region to regenerate). Modes:

- ``given``: the sample's mask as it is (Diffuse to Choose's "fine-grained" mask);
- ``box``: the filled bounding box of that mask;
- ``mixed``: ``given`` with probability ``fine_probability`` (0.5, the DtC recipe), else ``box``;
- ``irregular``: Paint by Example's masks: the bounding box extended by a random 0..``extend`` of the free space
  on each side; with probability 0.5 the extended rectangle itself, else a polygon of four quadratic Bezier
  curves, one per side, from corner to corner of the original box with the middle control point pushed out to
  the extended box's edge, each curve sampled at t = 0.05 i (i = 1..18) and every point jittered by up to
  ``jitter`` pixels.

Every random choice comes from the generator passed in (the trainer's per-step generator), so a resumed run
draws the same masks.
"""

from __future__ import annotations

import torch

MASK_MODES = ("mixed", "given", "box", "irregular")


def bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels above 0.5 (bottom/right exclusive); an empty mask is an error."""
    rows = torch.nonzero((mask > 0.5).any(dim=1)).flatten()
    cols = torch.nonzero((mask > 0.5).any(dim=0)).flatten()
    if rows.numel() == 0:
        raise ValueError("the mask is empty: it marks no region to regenerate")
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def box_mask(shape: tuple[int, int], box: tuple[float, float, float, float]) -> torch.Tensor:
    top, left, bottom, right = (round(v) for v in box)
    out = torch.zeros(shape)
    out[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = 1.0
    return out


def random_box_mask(
    height: int, width: int, generator: torch.Generator, low: float = 0.3, high: float = 0.7
) -> torch.Tensor:
    """A rectangle, sides uniformly `low`..`high` of the image's, placed uniformly (for samples without a mask)."""
    u = torch.rand(4, generator=generator).tolist()
    h = max(1, round(height * (low + (high - low) * u[0])))
    w = max(1, round(width * (low + (high - low) * u[1])))
    top = round((height - h) * u[2])
    left = round((width - w) * u[3])
    return box_mask((height, width), (top, left, top + h, left + w))


def _uniform(generator: torch.Generator, n: int = 1) -> list[float]:
    return torch.rand(n, generator=generator, dtype=torch.float64).tolist()


def extended_box(mask: torch.Tensor, generator: torch.Generator, extend: float = 0.4) -> tuple[tuple, tuple]:
    """(box, extended box): each side moved out by a random fraction 0..`extend` of the free space on that side."""
    height, width = mask.shape
    top, left, bottom, right = bounding_box(mask)
    a, b, c, d = (extend * u for u in _uniform(generator, 4))
    extended = (top - a * top, left - b * left, bottom + c * (height - bottom), right + d * (width - right))
    return (top, left, bottom, right), extended


def rasterise_polygon(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float [H, W], 1 where the pixel centre lies inside the closed polygon `points` [P, 2] of (x, y) (even-odd)."""
    ys = torch.arange(height, dtype=torch.float64)[:, None, None] + 0.5
    xs = torch.arange(width, dtype=torch.float64)[None, :, None] + 0.5
    p = points.double()
    x0, y0 = p[:, 0], p[:, 1]
    x1, y1 = p.roll(-1, 0)[:, 0], p.roll(-1, 0)[:, 1]
    straddles = (y0 > ys) != (y1 > ys)
    with torch.no_grad():
        crossing_x = x0 + (ys - y0) * (x1 - x0) / torch.where(y1 == y0, torch.ones_like(y1), y1 - y0)
    inside = (straddles & (xs < crossing_x)).sum(dim=-1) % 2 == 1
    return inside.float()


def bezier_polygon(box, extended, generator: torch.Generator, jitter: float = 5.0) -> torch.Tensor:
    """Points [72, 2] (x, y): four quadratic Bezier curves around `box`, bulging out to `extended`."""
    top, left, bottom, right = box
    etop, eleft, ebottom, eright = extended
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    middles = [
        ((left + right) / 2, etop),
        (eright, (top + bottom) / 2),
        ((left + right) / 2, ebottom),
        (eleft, (top + bottom) / 2),
    ]
    t = torch.arange(1, 19, dtype=torch.float64)[:, None] * 0.05
    curves = []
    for side in range(4):
        start = torch.tensor(corners[side], dtype=torch.float64)
        end = torch.tensor(corners[(side + 1) % 4], dtype=torch.float64)
        control = torch.tensor(middles[side], dtype=torch.float64)
        curves.append((1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end)
    points = torch.cat(curves)
    noise = torch.rand(points.shape, generator=generator, dtype=torch.float64) * 2 - 1
    return points + jitter * noise


def irregular_mask(
    mask: torch.Tensor, generator: torch.Generator, extend: float = 0.4, jitter: float = 5.0
) -> torch.Tensor:
    """Paint by Example's training mask around `mask` (see the module docstring)."""
    height, width = mask.shape
    box, extended = extended_box(mask, generator, extend)
    if _uniform(generator)[0] < 0.5:
        return box_mask((height, width), extended)
    return rasterise_polygon(bezier_polygon(box, extended, generator, jitter), height, width)


def training_mask(
    mask: torch.Tensor, mode: str, generator: torch.Generator, fine_probability: float = 0.5
) -> torch.Tensor:
    """The mask one training step uses, from the sample's binary mask [H, W] (see MASK_MODES)."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask_mode: expected one of {MASK_MODES}, got {mode!r}")
    if not 0 <= fine_probability <= 1:
        raise ValueError(f"fine_probability: expected a probability in [0, 1], got {fine_probability}")
    mask = (mask > 0.5).float()
    if mode == "mixed":
        mode = "given" if _uniform(generator)[0] < fine_probability else "box"
    if mode == "given":
        bounding_box(mask)  # an empty mask is an error in every mode
        return mask
    if mode == "box":
        return box_mask(tuple(mask.shape), bounding_box(mask))
    return irregular_mask(mask, generator)
