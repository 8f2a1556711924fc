"""The forward (noising) process the trainers share, in the sigma parameterisation ComfyUI samples in.

x_sigma = x0 + sigma * noise is what ComfyUI's eps- and v-prediction `model_sampling.noise_scaling`
returns (without max_denoise) and what `BaseModel.apply_model` takes. The DDPM sample of the same
point at cumulative alpha a = 1 / (1 + sigma^2) is sqrt(a) * x_sigma = sqrt(a) x0 + sqrt(1 - a) noise,
i.e. the sigma-space sample times ComfyUI's input scaling c_in = 1 / sqrt(1 + sigma^2).
"""

from __future__ import annotations

import torch


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0 + sigma * noise, with one sigma per sample ([B]) or one for all."""
    return noise * _per_sample(sigma, x0) + x0


def implied_noise(noisy: torch.Tensor, x0_prediction: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The noise a denoised prediction implies: the inverse of `add_noise` in `noise`."""
    return (noisy - x0_prediction) / _per_sample(sigma, noisy)


def alphas_cumprod(sigmas: torch.Tensor) -> torch.Tensor:
    """Cumulative alphas of a discrete schedule from its sigmas (float64: a is within 1e-3 of 1 at t = 0)."""
    return 1.0 / (1.0 + sigmas.double() ** 2)


def sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The inverse of `alphas_cumprod`: sigma = sqrt((1 - a) / a)."""
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
