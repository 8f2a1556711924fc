"""The trainers' one forward-noising function (models/common/noising.py) and its link to the DDPM form."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exemplar.models.common import noising


def sd1_sigmas():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, alphas_cumprod


def test_schedule_conversions_invert_each_other():
    sigmas, alphas_cumprod = sd1_sigmas()
    torch.testing.assert_close(noising.alphas_cumprod(sigmas), alphas_cumprod, rtol=1e-12, atol=0)
    torch.testing.assert_close(noising.sigmas(alphas_cumprod), sigmas, rtol=1e-12, atol=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 999), st.integers(0, 2**31 - 1))
def test_sigma_sample_scaled_by_sqrt_alpha_is_the_ddpm_sample(t, seed):
    sigmas, alphas_cumprod = sd1_sigmas()
    g = torch.Generator().manual_seed(seed)
    x0, noise = (
        torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64),
        torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64),
    )
    sigma = sigmas[[t, t]]
    a = alphas_cumprod[t]
    ddpm = a.sqrt() * x0 + (1 - a).sqrt() * noise
    torch.testing.assert_close(a.sqrt() * noising.add_noise(x0, noise, sigma), ddpm, rtol=1e-12, atol=1e-12)


def test_per_sample_sigmas_and_the_implied_noise_inverts():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    noisy = noising.add_noise(x0, noise, sigma)
    for i in range(3):
        torch.testing.assert_close(noisy[i], x0[i] + sigma[i] * noise[i], rtol=0, atol=0)
    torch.testing.assert_close(noising.implied_noise(noisy, x0, sigma), noise, rtol=1e-5, atol=1e-5)
