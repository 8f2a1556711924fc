"""Embedding scores: CLIP-I, DINO, CLIP-T and the papers' CLIP scores, from embeddings computed elsewhere.

`paired` compares the i-th image with the i-th reference (a single reference or image is shared by all);
`all_pairs` is DreamBooth's protocol: the mean cosine over every (generated, real) pair.
A CLIP score is max(100 cos, 0) (Paint by Example, Diffuse to Choose, DreamStyler's text and image scores).
"""

from __future__ import annotations

import torch

PAIRINGS = ("paired", "all_pairs")
SCORES = ("cosine", "clip_score")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [M, D] -> [N, M] cosine similarities (computed in float64)."""
    a = torch.nn.functional.normalize(a.double().flatten(1), dim=-1)
    b = torch.nn.functional.normalize(b.double().flatten(1), dim=-1)
    return a @ b.T


def similarities(images: torch.Tensor, references: torch.Tensor, pairing: str = "paired") -> torch.Tensor:
    """One value per image [N]: its cosine to its reference (paired) or its mean over all references (all_pairs)."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    matrix = cosine_matrix(images, references)
    if pairing == "all_pairs":
        return matrix.mean(dim=1)
    n, m = matrix.shape
    if m == 1:
        return matrix[:, 0]
    if n == 1:
        return matrix[0]
    if n != m:
        raise ValueError(f"paired scoring needs as many references as images (or one of either): got {n} and {m}")
    return matrix.diagonal()


def as_score(cosines: torch.Tensor, score: str) -> torch.Tensor:
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    return cosines if score == "cosine" else (100 * cosines).clamp_min(0)


def mask_box(mask: torch.Tensor, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), end-exclusive, of the pixels of one mask [H, W] above the threshold."""
    rows = (mask > threshold).any(dim=1).nonzero()
    cols = (mask > threshold).any(dim=0).nonzero()
    if rows.numel() == 0:
        raise ValueError("mask is empty: its box cannot be cropped (expected at least one pixel > 0.5)")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_mask_boxes(images: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
    """Each image [B, H, W, C] cropped to its mask's box (a single mask serves every image): B tensors [1, h, w, C]."""
    if masks.shape[-2:] != images.shape[1:3]:
        raise ValueError(f"mask is {tuple(masks.shape[-2:])} pixels but the images are {tuple(images.shape[1:3])}")
    if masks.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"mask has batch {masks.shape[0]}; expected 1 or the image batch {images.shape[0]}")
    crops = []
    for i in range(images.shape[0]):
        top, bottom, left, right = mask_box(masks[min(i, masks.shape[0] - 1)])
        crops.append(images[i : i + 1, top:bottom, left:right])
    return crops
