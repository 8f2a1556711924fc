"""Baseline: the core KSampler step on the full-size random SD1.5 UNet, and the harness's own noise
floor (an identity attention patch should cost nothing: its ratio shows the measurement spread)."""

from harness import compare, full_sd15_model, ksampler_run, report, text_conditioning

STEPS = 3


def main():
    import torch

    model = full_sd15_model()
    patched = model.clone()
    patched.set_model_attn1_patch(lambda q, k, v, extra_options: (q, k, v))
    positive, negative = text_conditioning(1), text_conditioning(2)
    latent = torch.zeros(1, 4, 32, 32)
    per_step = compare(
        {
            "core KSampler (cfg 5)": lambda: ksampler_run(model, positive, negative, latent, STEPS),
            "identity attn1 patch": lambda: ksampler_run(patched, positive, negative, latent, STEPS),
        },
        steps=STEPS,
    )
    return report("harness baseline (full-size SD1.5 UNet, 32x32 latent, CPU)", per_step, "core KSampler (cfg 5)")


if __name__ == "__main__":
    main()
