"""DreamStyler and DreamBooth on an SDXL-shaped UNet (random weights, CPU, fp32), ratios measured in one run:

(1) a sampling step with a staged conditioning (T = 6 entries, one active per step) against the same step with a
    plain single-entry conditioning (issue target <= 1.02);
(2) DreamBooth trainer steps per second (1 instance + 1 class image per step, LoRA on the attention projections, SDXL
    size conditioning) against core TrainLoraNode (1 image per step) on the same model (target >= 1.0).

EXEMPLAR_BENCH_SDXL_DEPTH picks the UNet: "full" is SDXL base (320 ch, mult 1-2-4, transformer depths 0-2-10, 2.6 B
parameters, ~10 GB of fp32 weights; training needs about twice that), "reduced" (default) the same widths with at most
two transformer blocks per attention layer (the 10-block level cut to 2), for a machine whose RAM is shared.
Latent 32x32 (256 px), conditioning random: context [1, 77, 2048], pooled [1, 1280].
"""

import gc
import os

import torch
from harness import compare, ksampler_run, report

from exemplar_dev import host

STAGES = 6
STEPS = int(os.environ.get("EXEMPLAR_BENCH_SDXL_STEPS", "3"))
TRAIN_STEPS = 2
REPEATS = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))
DEPTH = os.environ.get("EXEMPLAR_BENCH_SDXL_DEPTH", "reduced")

FULL_SDXL_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
    "context_dim": 2048,
    "adm_in_channels": 2816,
    "num_classes": "sequential",
    "num_head_channels": 64,
    "num_heads": -1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "use_temporal_attention": False,
    "legacy": False,
}
REDUCED_SDXL_UNET = {
    **FULL_SDXL_UNET,
    "transformer_depth": [0, 0, 2, 2, 2, 2],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 2, 2, 2],
    "transformer_depth_middle": 2,
}


def sdxl_model(inference: bool = False):
    """A ModelPatcher of ComfyUI's SDXL model class around the chosen UNet (random weights, fp32)."""
    host.boot()
    import comfy.model_patcher
    import comfy.supported_models

    from exemplar_dev.tiny_models import random_state_dict

    unet = dict(FULL_SDXL_UNET if DEPTH == "full" else REDUCED_SDXL_UNET)
    config = comfy.supported_models.SDXL(unet)
    config.set_inference_dtype(torch.float32, None)
    with torch.inference_mode(inference):
        model = config.get_model({})
        missing, unexpected = model.diffusion_model.load_state_dict(
            random_state_dict(model.diffusion_model, "", seed=0)
        )
    assert not missing and not unexpected, (missing, unexpected)
    cpu = torch.device("cpu")
    params = sum(p.numel() for p in model.diffusion_model.parameters()) / 1e9
    print(f"SDXL-shaped UNet ({DEPTH} depth): {params:.2f} B parameters", flush=True)
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def conditioning(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 77, 2048, generator=g), {"pooled_output": torch.randn(1, 1280, generator=g)}]]


def staged_ratio(model):
    glue = host.pack_submodule("nodes.dreamstyler.staged_encoding")
    bounds = glue.stage_bounds(model.get_model_object("model_sampling"), STAGES)
    staged = []
    for k in range(STAGES):
        cond, options = conditioning(10 + k)[0]
        staged.append([cond, glue.gate(options, k, STAGES, bounds)])
    plain, negative = conditioning(1), conditioning(100)
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
        f"DreamStyler staged vs plain conditioning ({DEPTH}-depth SDXL UNet, 32x32 latent, CPU)",
        per_step,
        "plain conditioning (cfg 7.5)",
    )


def trainer_ratio(model):
    from comfy_extras.nodes_train import TrainLoraNode

    glue = host.pack_submodule("nodes.dreambooth.trainer")
    g = torch.Generator().manual_seed(0)
    instance = torch.randn(1, 4, 32, 32, generator=g)
    classes = torch.randn(2, 4, 32, 32, generator=g)
    instance_cond, class_cond = conditioning(1), conditioning(2)

    def core():
        TrainLoraNode.execute(
            model=[model],
            latents=[{"samples": instance}, {"samples": instance.flip(-1)}],
            positive=[instance_cond],
            batch_size=[1],
            steps=[TRAIN_STEPS],
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
        gc.collect()

    def dreambooth():
        settings = glue.DreamBoothSettings(
            steps=TRAIN_STEPS, rank=4, alpha=4.0, learning_rate=1e-4, batch_size=1, prior_loss_weight=1.0
        )
        prompts = glue.PromptSet(instance_conditioning=instance_cond, class_conditioning=class_cond)
        glue.train_dreambooth(model, instance, prompts, settings, class_latents=classes)
        gc.collect()

    per_step = compare(
        {"core TrainLoraNode (1 image/step)": core, "DreamBooth SDXL, prior preservation (2 images/step)": dreambooth},
        steps=TRAIN_STEPS,
        repeats=max(1, REPEATS - 1),
    )
    text = report(
        f"DreamBooth SDXL trainer vs TrainLoraNode ({DEPTH}-depth SDXL UNet, 32x32 latent, CPU, fp32, rank 4)",
        per_step,
        "core TrainLoraNode (1 image/step)",
    )
    core_step = per_step["core TrainLoraNode (1 image/step)"]
    ratio = core_step / per_step["DreamBooth SDXL, prior preservation (2 images/step)"]
    line = f"  DreamBooth steps/s relative to TrainLoraNode: {ratio:.3f} (target >= 1.0 with the class pass)"
    print(line, flush=True)
    return text + "\n" + line


def main():
    sampling = staged_ratio(sdxl_model())
    gc.collect()
    with torch.inference_mode():  # as in a ComfyUI run: the loader creates inference tensors
        model = sdxl_model(inference=True)
    return sampling + "\n" + trainer_ratio(model)


if __name__ == "__main__":
    main()
