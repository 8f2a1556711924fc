"""The shipped DreamStyler txt2img workflow samples at the official run's timesteps: its scheduler, sgm_uniform,
gives the 25 timesteps of diffusers' DPM-Solver++ (the official sampler) on SD1.5's noise schedule, so every step
uses the stage the official code uses; karras does not."""

import json

import pytest
import torch

from exemplar_dev.paths import WORKFLOWS_DIR

STEPS, STAGES = 25, 6


def comfyui_timesteps(model, scheduler: str) -> torch.Tensor:
    import comfy.samplers

    sampling = model.get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(sampling, scheduler, STEPS)[:-1]
    return sampling.timestep(sigmas).float()


def test_sgm_uniform_reproduces_the_official_dpm_solver_timesteps(comfy, tiny_sd15):
    diffusers = pytest.importorskip("diffusers")
    official = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    official.set_timesteps(STEPS)
    theirs = official.timesteps.float()
    ours = comfyui_timesteps(tiny_sd15[0], "sgm_uniform")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0.5)  # ComfyUI keeps the unrounded t
    stage = lambda t: torch.floor(t / 1000 * STAGES)  # noqa: E731
    assert torch.equal(stage(ours), stage(theirs))
    karras = comfyui_timesteps(tiny_sd15[0], "karras")
    assert int((stage(karras) != stage(theirs)).sum()) > 0
    workflow = json.loads((WORKFLOWS_DIR / "dreamstyler_txt2img.json").read_text())
    sampler = next(n for n in workflow["nodes"] if n["type"] == "ExemplarStyleContextKSampler")
    assert "sgm_uniform" in sampler["widgets_values"] and "dpmpp_2m" in sampler["widgets_values"]
