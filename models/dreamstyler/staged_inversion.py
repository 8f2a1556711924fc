"""DreamStyler's multi-stage textual inversion: the training loop, in plain PyTorch.

Only the T x n placeholder vectors train (the text encoder and the UNet are frozen and never
touched). Each step draws, per sample, an image (or its mirror, with probability `flip_probability`),
a DDPM timestep t uniformly in [0, num_timesteps) and Gaussian noise; the prompt is encoded with
the vectors of stage ``floor(t / num_timesteps * T)``; the loss is the MSE between the UNet's
output and its target (the noise for eps-prediction, v for v-prediction). AdamW, constant
learning rate. Every random draw comes from one generator seeded by `seed`, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..common import noising
from .staged_embedding import stage_index

PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class InversionSettings:
    stages: int = 6
    steps: int = 500
    learning_rate: float = 0.002
    batch_size: int = 1
    flip_probability: float = 0.5
    weight_decay: float = 0.01
    seed: int = 0
    prediction: str = "eps"

    def __post_init__(self):
        if self.stages < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"stages, steps and batch_size must be >= 1; got {self.stages}, {self.steps}, {self.batch_size}"
            )
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1]; got {self.flip_probability}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}; got {self.prediction!r}")


def add_noise(
    latents: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """DDPM forward process sqrt(a_t) x0 + sqrt(1 - a_t) noise: the shared sigma-space sample x0 + sigma_t noise
    scaled by sqrt(a_t), the input scaling of a UNet called directly with timesteps."""
    a = alphas_cumprod[t]
    scale = a.sqrt().to(latents.dtype).view(-1, *([1] * (latents.ndim - 1)))
    return scale * noising.add_noise(latents, noise, noising.sigmas(a))


def training_target(prediction: str, latents, noise, alphas_cumprod, t) -> torch.Tensor:
    if prediction == "eps":
        return noise
    a = alphas_cumprod[t].to(latents.dtype).view(-1, *([1] * (latents.ndim - 1)))
    return a.sqrt() * noise - (1 - a).sqrt() * latents


@dataclass(frozen=True)
class Draw:
    """The random choices of one training step: images, mirror flags, timesteps, noise."""

    index: torch.Tensor
    flip: torch.Tensor
    timesteps: torch.Tensor
    noise: torch.Tensor


def draw_batch(
    generator: torch.Generator, count: int, latent_shape, num_timesteps: int, settings: InversionSettings
) -> Draw:
    batch = settings.batch_size
    index = torch.randint(count, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < settings.flip_probability
    timesteps = torch.randint(num_timesteps, (batch,), generator=generator)
    noise = torch.randn((batch, *latent_shape), generator=generator)
    return Draw(index, flip, timesteps, noise)


def batch_loss(
    vectors, draw: Draw, latents, flipped_latents, encode, unet, alphas_cumprod, settings: InversionSettings
) -> torch.Tensor:
    """The MSE of one draw with the given staged vectors [T, n, dim]."""
    device = latents.device
    index = draw.index.to(device)
    x0 = torch.where(draw.flip.to(device).view(-1, 1, 1, 1), flipped_latents[index], latents[index]).float()
    t = draw.timesteps.to(device)
    noise = draw.noise.to(device)
    stage = stage_index(draw.timesteps, settings.stages, alphas_cumprod.shape[0])
    context = encode(vectors[stage.to(vectors.device)], draw.index)
    noisy = add_noise(x0, noise, alphas_cumprod, t).float()
    output = unet(noisy, t, context)
    target = training_target(settings.prediction, x0, noise, alphas_cumprod, t).float()
    return F.mse_loss(output.float(), target)


def train_staged_inversion(
    init_vectors: torch.Tensor,
    latents: torch.Tensor,
    flipped_latents: torch.Tensor,
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    unet: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    alphas_cumprod: torch.Tensor,
    settings: InversionSettings,
    on_step: Callable[[int, float], None] | None = None,
    after_step: Callable[[int, float, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Train the staged vectors.

    init_vectors: [T, n, dim]; latents / flipped_latents: [N, C, H, W] (each image and its mirror,
    already in the UNet's latent space); encode(vectors [B, n, dim], image_index [B]) -> context;
    unet(x_t, t [B] long, context) -> output; alphas_cumprod: [num_timesteps].
    Step k's random choices are `draw_batch` number k of a generator seeded with `settings.seed`.
    on_step(step, loss) after step `step` (0-based); after_step(done, loss, vectors) with the number of steps done
    and the vectors after them (detached: what a checkpoint of that step holds).
    Returns the trained vectors [T, n, dim] (float32, detached) and the loss of every step.
    """
    if init_vectors.ndim != 3 or init_vectors.shape[0] != settings.stages:
        raise ValueError(f"init_vectors must be [stages={settings.stages}, n, dim]; got {tuple(init_vectors.shape)}")
    if latents.shape != flipped_latents.shape or latents.ndim != 4 or latents.shape[0] < 1:
        raise ValueError(
            f"latents and flipped_latents must both be [N, C, H, W]; got {tuple(latents.shape)} and "
            f"{tuple(flipped_latents.shape)}"
        )
    alphas_cumprod = alphas_cumprod.to(device=latents.device, dtype=torch.float64)
    generator = torch.Generator().manual_seed(settings.seed)
    vectors = init_vectors.detach().to(device=latents.device, dtype=torch.float32).clone().requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [vectors], lr=settings.learning_rate, betas=(0.9, 0.999), eps=1e-8, weight_decay=settings.weight_decay
    )
    losses: list[float] = []
    for step in range(settings.steps):
        draw = draw_batch(generator, latents.shape[0], latents.shape[1:], alphas_cumprod.shape[0], settings)
        loss = batch_loss(vectors, draw, latents, flipped_latents, encode, unet, alphas_cumprod, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if after_step is not None:
            after_step(step + 1, losses[-1], vectors.detach())
    return vectors.detach().float().cpu(), losses
