"""Turn a vision encoder's outputs into ExemplarTokens (CLS, pooled, or spatial patch tokens)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .tokens import ExemplarTokens, spatial_positions

TOKEN_MODES = ("patches", "cls", "cls+patches", "image_embeds")


def patch_grid(sequence_length: int, prefix_tokens: int = 1) -> tuple[int, int]:
    """(h, w) of the square patch grid behind a ViT sequence of `prefix_tokens` + h*w tokens."""
    patches = sequence_length - prefix_tokens
    side = math.isqrt(max(patches, 0))
    if patches <= 0 or side * side != patches:
        raise ValueError(
            f"a ViT sequence of {sequence_length} tokens with {prefix_tokens} prefix token(s) "
            f"does not hold a square patch grid"
        )
    return side, side


def preprocess_mask(mask: torch.Tensor, size: int, crop: bool) -> torch.Tensor:
    """Resize a [B, H, W] mask the way CLIP preprocessing resizes its image (centre crop or squash)."""
    mask = mask[:, None].float()
    height, width = mask.shape[-2:]
    if crop:
        scale = size / min(height, width)
        resized = (round(height * scale), round(width * scale))
        mask = F.interpolate(mask, size=resized, mode="bilinear", antialias=True, align_corners=False)
        top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
        mask = mask[:, :, top : top + size, left : left + size]
    else:
        mask = F.interpolate(mask, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return mask[:, 0].clamp(0, 1)


def mask_to_grid(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each grid cell covered by the mask: [B, H, W] -> [B, h*w]."""
    pooled = F.adaptive_avg_pool2d(mask[:, None].float(), grid)
    return pooled.flatten(1).clamp(0, 1)


def feature_tokens(features: torch.Tensor, subject_mask: torch.Tensor | None, source: dict) -> ExemplarTokens:
    """A dense feature map [B, C, h, w] as h*w spatial tokens of width C, row-major.

    subject_mask: [B or 1, H, W] at the resolution the features were computed from (already cropped
    like the image); each token then carries the fraction of its cell the mask covers.
    """
    batch, _, height, width = features.shape
    tokens = features.flatten(2).transpose(1, 2).contiguous()
    mask = None
    if subject_mask is not None:
        mask = mask_to_grid(subject_mask, (height, width)).to(tokens.device).expand(batch, -1)
    return ExemplarTokens(tokens, spatial_positions(batch, height, width, tokens.device), (height, width), mask, source)


def vision_tokens(
    last_hidden_state: torch.Tensor,
    image_embeds: torch.Tensor | None,
    mode: str,
    subject_mask: torch.Tensor | None = None,
    source: dict | None = None,
) -> ExemplarTokens:
    """Select tokens from a ViT output.

    last_hidden_state: [B, 1 + h*w, D] (CLS first); image_embeds: [B, P] projected pooled output.
    subject_mask: [B, h_img, w_img] already preprocessed like the image (see preprocess_mask).
    """
    if mode not in TOKEN_MODES:
        raise ValueError(f"unknown token mode {mode!r}; expected one of {TOKEN_MODES}")
    batch = last_hidden_state.shape[0]
    device = last_hidden_state.device
    source = dict(source or {}, mode=mode)
    if mode == "image_embeds":
        if image_embeds is None:
            raise ValueError("this vision model has no projected image embedding; use mode 'cls' instead")
        tokens = image_embeds[:, None]
        return ExemplarTokens(tokens, torch.full((batch, 1), -1, device=device), None, None, source)

    grid = patch_grid(last_hidden_state.shape[1])
    cell_mask = None
    if subject_mask is not None:
        if subject_mask.shape[0] not in (1, batch):
            raise ValueError(f"subject_mask has batch {subject_mask.shape[0]}, the images have {batch}")
        cell_mask = mask_to_grid(subject_mask, grid).to(device).expand(batch, -1)

    if mode == "cls":
        cls_weight = None if cell_mask is None else torch.ones(batch, 1, device=device)
        return ExemplarTokens(
            last_hidden_state[:, :1], torch.full((batch, 1), -1, device=device), None, cls_weight, source
        )

    patches = last_hidden_state[:, 1:]
    positions = spatial_positions(batch, *grid, device=device)
    if mode == "patches":
        return ExemplarTokens(patches, positions, grid, cell_mask, source)

    tokens = torch.cat([last_hidden_state[:, :1], patches], dim=1)
    positions = torch.cat([torch.full((batch, 1), -1, device=device), positions], dim=1)
    if cell_mask is not None:
        cell_mask = torch.cat([torch.ones(batch, 1, device=device), cell_mask], dim=1)
    return ExemplarTokens(tokens, positions, grid, cell_mask, source)
