"""DreamStyler's style score: similarity of VGG16 Gram matrices between an image and the style image.

VGG16's convolutional part is torchvision's architecture and key layout (`features.<i>.weight/bias`), so
torchvision's published ImageNet file loads as it is. Each image is cut into five patches (four corners and
the centre, each `patch_fraction` of the short side), resized to 224 px (`size`); the score is
100 x the mean, over patches and layers, of the cosine between the flattened Gram matrices G = F F^T / (C H W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# indices in `features` of the ReLUs after conv1_1, conv2_1, conv3_1, conv4_1, conv5_1 (Gatys et al.'s style layers)
STYLE_LAYERS = (1, 6, 11, 18, 25)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PATCH_SIZE = 224


class VGG16Features(torch.nn.Module):
    """torchvision's vgg16().features, same module indices, truncated after the last layer needed."""

    def __init__(self, last_layer: int = max(STYLE_LAYERS)):
        super().__init__()
        layers: list[torch.nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [torch.nn.Conv2d(channels, item, kernel_size=3, padding=1), torch.nn.ReLU(inplace=False)]
                channels = item
        self.features = torch.nn.Sequential(*layers[: last_layer + 1])

    def load_vgg_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Take `features.*` from a torchvision VGG16 file (the classifier, if present, is ignored)."""
        wanted = self.state_dict()
        missing = [k for k in wanted if k not in state_dict]
        if missing:
            raise ValueError(f"not a VGG16 state dict: missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        for key, value in wanted.items():
            if tuple(state_dict[key].shape) != tuple(value.shape):
                raise ValueError(f"not a VGG16 state dict: {key} is {tuple(state_dict[key].shape)}, expected "
                                 f"{tuple(value.shape)}")
        self.load_state_dict({k: state_dict[k] for k in wanted})

    def forward(self, pixels: torch.Tensor, layers=STYLE_LAYERS) -> list[torch.Tensor]:
        """ImageNet-normalised pixels [B, 3, H, W] -> the activations after each listed layer."""
        out = []
        x = pixels
        for index, module in enumerate(self.features):
            x = module(x)
            if index in layers:
                out.append(x)
        return out


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


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def gram_matrices(vgg: VGG16Features, image: torch.Tensor, patch_fraction: float = 0.5,
                  size: int = PATCH_SIZE) -> list[torch.Tensor]:
    """Per style layer, the Gram matrices of the five patches of each image: [B, 5, C, C]."""
    b = image.shape[0]
    param = next(vgg.parameters())
    pixels = normalise(five_patches(image, patch_fraction, size).to(device=param.device, dtype=param.dtype))
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
