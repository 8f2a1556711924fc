import pytest
import torch

from comfyui_exemplar.models.dreamstyler.staged_embedding import stage_index
from comfyui_exemplar.models.dreamstyler.staged_inversion import (
    InversionSettings,
    add_noise,
    batch_loss,
    draw_batch,
    train_staged_inversion,
    training_target,
)


def sd1_alphas_cumprod():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


class ToyModel:
    """context = the stage vector; the 'UNet' predicts eps from x_t assuming x0 = P @ vector, so loss -> 0 when
    P v = x0."""

    def __init__(self, dim=16, shape=(4, 2, 2), seed=0):
        g = torch.Generator().manual_seed(seed)
        self.projection = torch.randn(torch.Size(shape).numel(), dim, generator=g) / dim**0.5
        self.shape = shape
        self.alphas = sd1_alphas_cumprod()
        self.seen = []

    def encode(self, vectors, index):
        return vectors.mean(dim=1)

    def unet(self, noisy, t, context):
        self.seen.append((t.clone(), context.detach().clone()))
        x0 = (context @ self.projection.T).view(-1, *self.shape)
        a = self.alphas[t].float().view(-1, 1, 1, 1)
        return (noisy - a.sqrt() * x0) / (1 - a).sqrt()


def latents(count=2, shape=(4, 2, 2), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(count, *shape, generator=g)
    return x, x.flip(-1)


def test_loss_goes_down_and_only_the_vectors_train():
    toy = ToyModel()
    x, flipped = latents(count=1)
    projection = toy.projection.clone()
    init = torch.zeros(3, 1, 16)
    settings = InversionSettings(stages=3, steps=300, learning_rate=0.05, batch_size=4, flip_probability=0.0, seed=0)
    vectors, losses = train_staged_inversion(init, x, flipped, toy.encode, toy.unet, toy.alphas, settings)
    assert len(losses) == 300 and vectors.shape == (3, 1, 16)
    g = torch.Generator().manual_seed(123)
    draws = [draw_batch(g, 1, x.shape[1:], 1000, settings) for _ in range(50)]

    def mean_loss(v):
        return sum(
            batch_loss(v, d, x, flipped, toy.encode, toy.unet, toy.alphas, settings).item() for d in draws
        ) / len(draws)

    assert mean_loss(vectors) < 0.3 * mean_loss(init)
    for k in range(3):  # every stage learned x0 = P v
        error = (toy.projection @ vectors[k, 0] - x.flatten()).norm()
        assert error < 0.7 * x.norm(), (k, error)
    assert torch.equal(toy.projection, projection) and torch.equal(init, torch.zeros(3, 1, 16))


def test_each_sample_uses_the_vectors_of_its_timesteps_stage():
    toy = ToyModel()
    x, flipped = latents()
    init = torch.arange(6, dtype=torch.float32).view(6, 1, 1).expand(6, 1, 16).clone()
    settings = InversionSettings(stages=6, steps=1, batch_size=64, seed=3)
    train_staged_inversion(init, x, flipped, toy.encode, toy.unet, toy.alphas, settings)
    (t, context), = toy.seen
    assert torch.equal(context[:, 0], stage_index(t, 6).float())
    assert set(stage_index(t, 6).tolist()) == set(range(6))


def test_draws_are_the_seeded_generator_sequence_and_runs_repeat():
    toy = ToyModel()
    x, flipped = latents()
    settings = InversionSettings(stages=2, steps=5, batch_size=3, seed=7)
    a, losses_a = train_staged_inversion(torch.zeros(2, 1, 16), x, flipped, toy.encode, toy.unet, toy.alphas, settings)
    seen = list(toy.seen)
    b, losses_b = train_staged_inversion(torch.zeros(2, 1, 16), x, flipped, toy.encode, toy.unet, toy.alphas, settings)
    assert torch.equal(a, b) and losses_a == losses_b
    g = torch.Generator().manual_seed(7)
    for step in range(5):
        draw = draw_batch(g, 2, x.shape[1:], 1000, settings)
        assert torch.equal(draw.timesteps, seen[step][0])
    other, _ = train_staged_inversion(
        torch.zeros(2, 1, 16),
        x,
        flipped,
        toy.encode,
        toy.unet,
        toy.alphas,
        InversionSettings(stages=2, steps=5, batch_size=3, seed=8),
    )
    assert not torch.equal(a, other)


def test_flip_probability_picks_the_mirrored_latents():
    x, flipped = latents(count=1)
    captured = []

    def unet(noisy, t, context):
        captured.append((noisy, t))
        return torch.zeros_like(noisy) + context.sum() * 0

    settings = InversionSettings(stages=1, steps=1, batch_size=8, flip_probability=1.0, seed=0)
    alphas = sd1_alphas_cumprod()
    train_staged_inversion(torch.zeros(1, 1, 4), x, flipped, lambda v, i: v.mean(1), unet, alphas, settings)
    g = torch.Generator().manual_seed(0)
    draw = draw_batch(g, 1, x.shape[1:], 1000, settings)
    expected = add_noise(flipped[draw.index], draw.noise, alphas, draw.timesteps).float()
    assert torch.allclose(captured[0][0], expected)


def test_targets_and_noising_formulas():
    alphas = sd1_alphas_cumprod()
    x0, noise, t = torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 2.0), torch.tensor([500])
    a = alphas[500].item()
    assert add_noise(x0, noise, alphas, t).item() == pytest.approx(a**0.5 + 2 * (1 - a) ** 0.5)
    assert training_target("eps", x0, noise, alphas, t).item() == 2.0
    assert training_target("v", x0, noise, alphas, t).item() == pytest.approx(2 * a**0.5 - (1 - a) ** 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stages": 0}, "must be >= 1"),
        ({"flip_probability": 1.5}, "flip_probability"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"prediction": "x0"}, "prediction must be one of"),
    ],
)
def test_settings_validate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InversionSettings(**kwargs)
