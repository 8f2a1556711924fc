"""Multi-prediction guidance: per-step time of our guiders against core DualCFGGuider on the same model.

Targets (issue 6): 3-prediction guidance / core DualCFGGuider <= 1.03; 4-prediction style-and-context
guidance / core DualCFGGuider <= 1.35 (a fourth prediction should add ~0.4 of a CFG step, no more).
Also shown for scale: the stock KSampler's CFG step and a single prediction (CFG scale 1).
"""

import os
import statistics
import time

from harness import compare, full_sd15_model, ksampler_run, report, text_conditioning

STEPS = 3
REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "5"))
WARMUP = 1


def with_cpu_time(variants: dict, cpu: dict) -> dict:
    """Also record the process CPU time of each run: on a machine shared with other jobs it is far
    less disturbed than wall time (the harness's figure), so both are reported."""

    def timed(name, run):
        def call():
            started = time.process_time()
            run()
            cpu.setdefault(name, []).append((time.process_time() - started) / STEPS)

        return call

    return {name: timed(name, run) for name, run in variants.items()}


def main():
    import torch

    model = full_sd15_model()  # boots ComfyUI first

    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import Guider_DualCFG
    from exemplar_dev.host import pack_submodule

    glue = pack_submodule("nodes.guidance.guiders")
    p, m, s, n = (text_conditioning(seed) for seed in (1, 2, 3, 4))
    latent = torch.zeros(1, 4, 32, 32)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", STEPS)
    sampler = comfy.samplers.sampler_object("euler")

    core = Guider_DualCFG(model)
    core.set_conds(p, m, n)
    core.set_cfg(3.0, 1.5)
    guiders = {
        "core DualCFGGuider (regular, 3 preds)": core,
        "ours dual regular (3 preds)": glue.make_guider(
            model,
            "dual_regular",
            {"cond1": p, "cond2": m, "negative": n},
            {"cfg_conds": 3.0, "cfg_cond2_negative": 1.5},
        ),
        "ours dreaminpainter (3 preds)": glue.make_guider(
            model,
            "dreaminpainter",
            {"reference_text": p, "reference": m, "negative": n},
            {"text_scale": 5.0, "reference_scale": 1.0},
        ),
        "ours style_context official (4 preds)": glue.make_guider(
            model,
            "style_context_official",
            {"full": p, "context": m, "style": s, "negative": n},
            {"neg_scale": 5.0, "style_scale": 0.5, "context_scale": 3.0},
        ),
    }

    def run(guider):
        return lambda: guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=0)

    variants = {name: run(g) for name, g in guiders.items()}
    variants["stock KSampler CFG (2 preds)"] = lambda: ksampler_run(model, p, n, latent, STEPS)
    variants["stock KSampler cfg 1 (1 pred)"] = lambda: ksampler_run(model, p, n, latent, STEPS, cfg=1.0)
    cpu: dict = {}
    per_step = compare(with_cpu_time(variants, cpu), steps=STEPS, repeats=REPEATS, warmup=WARMUP)
    baseline = "core DualCFGGuider (regular, 3 preds)"
    wall = report(
        "multi-prediction guidance (full-size SD1.5 UNet, 32x32 latent, CPU), wall time, ratio to core DualCFGGuider",
        per_step,
        baseline,
    )
    cpu_per_step = {name: statistics.median(values[WARMUP:]) for name, values in cpu.items()}
    return wall + "\n" + report("same runs, process CPU time", cpu_per_step, baseline)


if __name__ == "__main__":
    main()
