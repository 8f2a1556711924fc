"""Benchmark harness: time sampling steps of model variants in one process, as ratios to a baseline.

Variants run interleaved (A B A B ...) so drift in machine load hits all of them alike; each
figure is the median over repeats of (wall time of a `steps`-step sampling run) / steps.
Full-size SD1.5-shaped UNet (320 ch, mult 1-2-4-4, 2 res blocks, context 768) with random
weights, 32x32 latent, CPU, fp32.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import torch  # noqa: E402

from exemplar_dev import host  # noqa: E402
from exemplar_dev.tiny_models import TINY_SD15_UNET, random_state_dict, tiny_unet  # noqa: E402

FULL_SD15_UNET = {  # the tiny model's config at SD1.5's real depth
    **TINY_SD15_UNET,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
}

_models: dict = {}


def full_sd15_model(in_channels: int = 4):
    """A ModelPatcher of a full-size SD1.5 UNet with random weights (built once per process)."""
    if in_channels not in _models:
        host.boot()
        import comfy.sd

        config = dict(FULL_SD15_UNET, in_channels=in_channels)
        state_dict = random_state_dict(tiny_unet(config), "", seed=0)
        _models[in_channels] = comfy.sd.load_diffusion_model_state_dict(state_dict)
    return _models[in_channels]


def text_conditioning(seed: int = 0, tokens: int = 77):
    context = torch.randn(1, tokens, 768, generator=torch.Generator().manual_seed(seed))
    return [[context, {}]]


def ksampler_run(
    model,
    positive,
    negative,
    latent: torch.Tensor,
    steps: int = 3,
    cfg: float = 5.0,
    sampler="euler",
    scheduler="normal",
):
    """One stock KSampler run (comfy.sample.sample): what every ratio is measured against."""
    import comfy.sample

    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, disable_pbar=True, seed=0
    )


def core_train_lora(model, latent: torch.Tensor, positive, steps: int) -> None:
    """ComfyUI's TrainLoraNode (rank 4, AdamW lr 1e-4, fp32, batch 1): the baseline of the DreamBooth benchmarks."""
    from comfy_extras.nodes_train import TrainLoraNode

    TrainLoraNode.execute(
        # two single-image latent dicts: with one, this ComfyUI's TrainLoraNode hits an unset `multi_res`
        model=[model],
        latents=[{"samples": latent}, {"samples": latent.flip(-1)}],
        positive=[positive],
        batch_size=[1],
        steps=[steps],
        grad_accumulation_steps=[1],
        learning_rate=[1e-4],
        rank=[4],
        optimizer=["AdamW"],
        loss_function=["MSE"],
        seed=[0],
        training_dtype=["fp32"],
        lora_dtype=["fp32"],
        algorithm=["LoRA"],
        gradient_checkpointing=[False],
        existing_lora=["[None]"],
    )


def compare(
    variants: dict[str, Callable[[], object]], steps: int, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per step for each variant (each callable runs `steps` sampling steps)."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - started) / steps)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, per_step: dict[str, float], baseline: str) -> str:
    lines = [title, f"  baseline {baseline}: {per_step[baseline] * 1000:.1f} ms/step"]
    for name, seconds in per_step.items():
        lines.append(f"  {name:<40} {seconds * 1000:8.1f} ms/step   ratio {seconds / per_step[baseline]:.3f}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text
