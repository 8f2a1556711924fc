"""DreamStyler's style score: similarity of VGG16 Gram matrices between an image and the style image.

The network is the pack's one VGG16 (models/common/perceptual.py, built with `taps=STYLE_LAYERS`):
torchvision's `features` layout, so torchvision's published ImageNet file loads as it is; it ImageNet-normalises
its [0, 1] input. Each image is cut into five patches (four corners and the centre, each `patch_fraction` of the
short side), resized to 224 px (`size`); the score is 100 x the mean, over patches and layers, of the cosine
between the flattened Gram matrices G = F F^T / (C H W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common.perceptual import VGG16Features

# indices in `features` of the ReLUs after conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (Gatys et al.'s style layers)
STYLE_LAYERS = (1, 6, 11, 18, 25)
PATCH_SIZE = 224


def gram(features: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C] = F F^T / (C H W)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def five_patches(image: torch.Tensor, patch_fraction: float = 0.5, size: int = PATCH_SIZE) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> [B * 5, 3, size, size]: top-left, top-right, bottom-left, bottom-right, centre."""
    if not 0 < patch_fraction <= 1:
        raise ValueError(f"patch_fraction must be in (0, 1], got {patch_fraction}")
    x = image[..., :3].movedim(-1, 1)
    b, _, h, w = x.shape
    p = max(1, round(min(h, w) * patch_fraction))
    corners = [(0, 0), (0, w - p), (h - p, 0), (h - p, w - p), ((h - p) // 2, (w - p) // 2)]
    patches = torch.stack([x[:, :, top : top + p, left : left + p] for top, left in corners], dim=1)
    patches = patches.reshape(b * 5, 3, p, p)
    return F.interpolate(patches, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def gram_matrices(vgg: VGG16Features, image: torch.Tensor, patch_fraction: float = 0.5,
                  size: int = PATCH_SIZE) -> list[torch.Tensor]:
    """Per style layer, the Gram matrices of the five patches of each image: [B, 5, C, C]."""
    b = image.shape[0]
    param = next(vgg.parameters())
    pixels = five_patches(image, patch_fraction, size).to(device=param.device, dtype=param.dtype)
    return [gram(f).reshape(b, 5, f.shape[1], f.shape[1]) for f in vgg(pixels)]


def style_scores(vgg: VGG16Features, images: torch.Tensor, style_image: torch.Tensor,
                 patch_fraction: float = 0.5, size: int = PATCH_SIZE) -> torch.Tensor:
    """One style score per image [B] in [0, 100] against the style image (batch 1, or one per image)."""
    if style_image.shape[0] not in (1, images.shape[0]):
        raise ValueError(
            f"style_image has batch {style_image.shape[0]}; expected 1 or the image batch {images.shape[0]}"
        )
    with torch.no_grad():
        ours = gram_matrices(vgg, images, patch_fraction, size)
        theirs = gram_matrices(vgg, style_image, patch_fraction, size)
    per_layer = []
    for g, s in zip(ours, theirs):
        g, s = g.flatten(2).double(), s.flatten(2).double().expand(g.shape[0], -1, -1)
        per_layer.append(F.cosine_similarity(g, s, dim=-1).mean(dim=1))
    return 100 * torch.stack(per_layer, dim=1).mean(dim=1)
