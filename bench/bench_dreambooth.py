"""DreamBooth trainer vs ComfyUI's own TrainLoraNode: optimizer steps per second on the same model.

Full-size SD1.5-shaped UNet (random weights), 32x32 latents, CPU, fp32, rank 4, lr 1e-4,
batch 1, no gradient checkpointing, the same number of steps. TrainLoraNode trains 1 image per
step (LoRA on every weight and a diff on every bias, as it always does); the DreamBooth trainer
trains 1 instance + 1 class image per step (prior preservation) with LoRA on the attention
projections. The model is loaded under torch.inference_mode, as ComfyUI's executor loads it. Each timed call is a
whole training run (set-up included), divided by its steps.
Issue target: DreamBooth steps/s >= 0.9 x TrainLoraNode's, i.e. per image at least as fast.
"""

import gc
import os

import torch
from harness import compare, core_train_lora, full_sd15_model, report, text_conditioning

STEPS = 2
# "full" (default, the harness's SD1.5-shaped UNet; needs ~8 GB RAM for TrainLoraNode's all-layer LoRA)
# or "tiny" (the test model's two-level UNet: a quick check on a loaded machine).
UNET = os.environ.get("EXEMPLAR_BENCH_DREAMBOOTH_UNET", "full")


def bench_model():
    if UNET == "full":
        return full_sd15_model()
    import comfy.sd

    from exemplar_dev.tiny_models import TINY_SD15_UNET, random_state_dict, tiny_unet

    return comfy.sd.load_diffusion_model_state_dict(random_state_dict(tiny_unet(TINY_SD15_UNET), "", seed=0))


def dreambooth_run(glue, model, instance, classes, instance_cond, class_cond, steps: int, prior: bool = True):
    """One whole DreamBooth training run (rank 4, lr 1e-4, batch 1) on fixed conditionings."""
    settings = glue.DreamBoothSettings(
        steps=steps, rank=4, alpha=4.0, learning_rate=1e-4, batch_size=1, prior_loss_weight=1.0 if prior else 0.0
    )
    prompts = glue.PromptSet(instance_conditioning=instance_cond, class_conditioning=class_cond)
    glue.train_dreambooth(model, instance, prompts, settings, class_latents=classes if prior else None)
    gc.collect()


def compare_trainers(model, conditioning, label: str, repeats: int, target: str = ">= 0.9 per step") -> str:
    """TrainLoraNode vs DreamBooth with and without class images on `model`, one interleaved run."""
    from exemplar_dev.host import pack_submodule

    glue = pack_submodule("nodes.dreambooth.trainer")
    g = torch.Generator().manual_seed(0)
    instance = torch.randn(1, 4, 32, 32, generator=g)
    classes = torch.randn(4, 4, 32, 32, generator=g)
    instance_cond, class_cond = conditioning(1), conditioning(2)

    def core():
        core_train_lora(model, instance, instance_cond, STEPS)
        gc.collect()

    def dreambooth(prior=True):
        dreambooth_run(glue, model, instance, classes, instance_cond, class_cond, STEPS, prior)

    per_step = compare(
        {
            "core TrainLoraNode (1 image/step)": core,
            "DreamBooth, prior preservation (2 images/step)": dreambooth,
            "DreamBooth, no class images (1 image/step)": lambda: dreambooth(False),
        },
        steps=STEPS,
        repeats=repeats,
    )
    text = report(
        f"DreamBooth trainer vs TrainLoraNode ({label}, 32x32 latent, CPU, fp32, rank 4)",
        per_step,
        "core TrainLoraNode (1 image/step)",
    )
    base = per_step["core TrainLoraNode (1 image/step)"]
    ratio = base / per_step["DreamBooth, prior preservation (2 images/step)"]
    line = f"  steps/s relative to TrainLoraNode: {ratio:.3f}  (per image: {2 * ratio:.3f}; target {target})"
    print(line, flush=True)
    return text + "\n" + line


def main(repeats: int = 2):
    from exemplar_dev.host import pack_submodule

    pack_submodule("nodes.dreambooth.trainer")  # boots ComfyUI first
    with torch.inference_mode():  # as in a ComfyUI run: the loader creates inference tensors
        model = bench_model()
    return compare_trainers(model, text_conditioning, f"{UNET} SD1.5-shaped UNet", repeats)


if __name__ == "__main__":
    main()
