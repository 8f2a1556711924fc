"""DreamStyler: (1) a sampling step with a staged conditioning (T = 6 entries, one active per step) against
the same step with a plain single-entry conditioning, on the full-size SD1.5-shaped UNet (target <= 1.02);
(2) trainer steps per second on the tiny model (full CLIP-L text encoder + tiny UNet, 64 px images)."""

import os
import time

from harness import compare, full_sd15_model, ksampler_run, report, text_conditioning

STEPS = 6
STAGES = 6
REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "5"))
TRAIN_STEPS = int(os.environ.get("EXEMPLAR_BENCH_TRAIN_STEPS", "10"))


def staged_conditioning(model, seed: int = 1, conditioning=text_conditioning):
    """T entries, entry k `conditioning(seed + k)` gated to stage k's sigmas (as the staged encoder builds them)."""
    from exemplar_dev.host import pack_submodule

    glue = pack_submodule("nodes.dreamstyler.staged_encoding")
    bounds = glue.stage_bounds(model.get_model_object("model_sampling"), STAGES)
    entries = [conditioning(seed + k)[0] for k in range(STAGES)]
    return [[cond, glue.gate(options, k, STAGES, bounds)] for k, (cond, options) in enumerate(entries)]


def sampling_ratio(model=None, conditioning=text_conditioning, label="full-size SD1.5 UNet"):
    import torch

    model = model or full_sd15_model()
    plain, negative = conditioning(1), conditioning(100)
    staged = staged_conditioning(model, 1, conditioning)
    latent = torch.zeros(1, 4, 32, 32)
    per_step = compare(
        {
            "plain conditioning (cfg 7.5)": lambda: ksampler_run(model, plain, negative, latent, STEPS, cfg=7.5),
            f"staged conditioning, T={STAGES} (cfg 7.5)": lambda: ksampler_run(
                model, staged, negative, latent, STEPS, cfg=7.5
            ),
        },
        steps=STEPS,
        repeats=REPEATS,
    )
    return report(
        f"DreamStyler staged vs plain conditioning ({label}, 32x32 latent, CPU)",
        per_step,
        "plain conditioning (cfg 7.5)",
    )


def trainer_speed():
    import torch
    from comfy.sd import load_checkpoint_guess_config

    from exemplar_dev import assets, host
    from exemplar_dev.tiny_models import TINY_SD15_NAME

    booted = host.boot()
    assets.prepare()
    training = host.pack_submodule("nodes.dreamstyler.trainer")
    inversion = host.pack_submodule("models.dreamstyler.staged_inversion")
    path = booted.folder_paths.get_full_path_or_raise("checkpoints", TINY_SD15_NAME)
    model, clip, vae, _ = load_checkpoint_guess_config(path, output_vae=True, output_clip=True)
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    settings = inversion.InversionSettings(stages=STAGES, steps=TRAIN_STEPS, batch_size=1)
    times = []
    with torch.inference_mode(False), torch.enable_grad():
        setup = training.prepare(model, clip, vae, images, ["a pattern"], "<b>", settings)
        setup.run(lambda step, loss: times.append(time.perf_counter()))
    per_step = [b - a for a, b in zip(times, times[1:])]
    per_step.sort()
    median = per_step[len(per_step) // 2]
    text = (
        f"DreamStyler trainer on the tiny model (CLIP-L + tiny UNet, 64 px, batch 1, T={STAGES}, "
        f"{torch.get_num_threads()} threads): median {median:.2f} s/step = {1 / median:.2f} steps/s "
        f"over {len(per_step)} steps"
    )
    print(text, flush=True)
    return text


def main():
    return sampling_ratio() + "\n" + trainer_speed()


if __name__ == "__main__":
    main()
