"""Background-preservation metrics between a source and a result image, over a region of the image.

Images are ComfyUI IMAGE tensors [B, H, W, C] in [0, 1]; a region is a weight map [B, H, W] in [0, 1]
(1 = the pixel counts). PSNR and MSE average squared errors over the region's pixels and channels; SSIM uses
the Gaussian window of Wang et al. (11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03) over the part of the image where
the whole window fits, and averages its map over the region; colour shift is CIE76 Delta E in CIELAB (kornia).
"""

from __future__ import annotations

import math

import kornia.color
import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _nchw(image: torch.Tensor) -> torch.Tensor:
    return image[..., :3].movedim(-1, 1).double()


def _weight(region: torch.Tensor | None, image: torch.Tensor) -> torch.Tensor:
    if region is None:
        return torch.ones(image.shape[:3], dtype=torch.float64, device=image.device)
    return region.to(device=image.device, dtype=torch.float64)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """values [B, H, W], weight [B, H, W] -> [B]; NaN where a region is empty."""
    total = weight.sum(dim=(1, 2))
    mean = (values * weight).sum(dim=(1, 2)) / total.clamp_min(1e-12)
    return torch.where(total > 0, mean, torch.full_like(mean, math.nan))


def mse(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per image [B] over the region's pixels and the three channels."""
    squared = (_nchw(a) - _nchw(b)).square().mean(dim=1)
    return _weighted_mean(squared, _weight(region, a))


def psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """10 log10(range^2 / MSE) per image [B], in dB; +inf where the region is identical."""
    return 10 * torch.log10(data_range**2 / mse(a, b, region))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM per pixel, averaged over channels: [B, H - 10, W - 10] (the positions where the window fits)."""
    x, y = _nchw(a), _nchw(b)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    window = gaussian_window().to(x.device).expand(channels, 1, -1, -1)

    def blur(t):
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=1)


def ssim(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image [B] over the region (cropped like the map, by half a window on each side)."""
    pad = (SSIM_WINDOW - 1) // 2
    weight = _weight(region, a)[:, pad:-pad, pad:-pad]
    return _weighted_mean(ssim_map(a, b, data_range), weight)


def delta_e(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CIE76 colour difference per image [B]: Euclidean distance in CIELAB (D65), sRGB input."""
    lab_a = kornia.color.rgb_to_lab(_nchw(a).clamp(0, 1))
    lab_b = kornia.color.rgb_to_lab(_nchw(b).clamp(0, 1))
    distance = (lab_a - lab_b).square().sum(dim=1).sqrt()
    return _weighted_mean(distance, _weight(region, a))


PIXEL_METRICS = {"psnr": psnr, "ssim": ssim, "mse": mse, "delta_e": delta_e}


def background_metrics(source: torch.Tensor, result: torch.Tensor,
                       region_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every pixel metric outside the binary mask (1 = regenerated) and inside it: {'psnr_outside': [B], ...}."""
    if source.shape[1:3] != result.shape[1:3]:
        raise ValueError(f"source is {tuple(source.shape[1:3])} pixels but result is {tuple(result.shape[1:3])}")
    if source.shape[0] not in (1, result.shape[0]):
        raise ValueError(f"source has batch {source.shape[0]}; expected 1 or the result batch {result.shape[0]}")
    source = source.expand(result.shape[0], -1, -1, -1)
    inside = region_mask.expand(result.shape[0], -1, -1)
    regions = {"outside": 1 - inside, "inside": inside}
    return {f"{name}_{where}": fn(source, result, region) for where, region in regions.items()
            for name, fn in PIXEL_METRICS.items()}
