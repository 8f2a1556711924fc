"""DreamBooth LoRA training from the command line: the same trainer as the ComfyUI node, outside the UI.

One process:
    python scripts/dreambooth_train.py --checkpoint sd15.safetensors --instance-dir photos/ \
        --instance-prompt "a sks dog" --class-dir class_dog/ --class-prompt "a dog" \
        --num-class-images 200 --output loras/sks_dog.safetensors

Several GPUs (or CPU processes, gloo) through torchrun; every rank draws its own images/noise and
the gradients are averaged before each step, so all ranks end with the same weights:
    torchrun --standalone --nproc_per_node 4 scripts/dreambooth_train.py ...same arguments...

The checkpoint is an SD1.x, SD2.x or SDXL text-to-image checkpoint; on SDXL the LoRA covers the UNet and both text
encoders (CLIP-L and bigG) and every image carries SDXL's size conditioning.

ComfyUI itself is imported from --comfyui (default: $COMFYUI_DIR, else the ComfyUI this pack is
installed in, i.e. two folders above the pack). Images are centre-cropped to a square and resized
to --resolution with antialiased bicubic interpolation, exactly as the node's folder input does
(models/common/image_folder.py); generated class images and the rank reports are written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cli_boot


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="DreamBooth LoRA with prior preservation (comfyui-exemplar).")
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI folder (holds comfy/)")
    p.add_argument("--checkpoint", required=True, help="SD1.x / SD2.x / SDXL checkpoint (single file)")
    p.add_argument("--instance-dir", required=True, help="folder of subject photos")
    p.add_argument("--instance-prompt", required=True, help="'a [identifier] [class noun]'")
    p.add_argument("--class-dir", help="folder of class images (missing ones are generated into it)")
    p.add_argument("--class-prompt", default="", help="'a [class noun]'")
    p.add_argument(
        "--num-class-images", type=int, default=0, help="generate class images until the folder holds this many"
    )
    p.add_argument("--class-steps", type=int, default=25, help="sampling steps per generated class image")
    p.add_argument("--class-cfg", type=float, default=7.0)
    p.add_argument("--output", required=True, help="LoRA file to write (.safetensors)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--alpha", type=float, default=4.0)
    p.add_argument("--prior-loss-weight", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1, help="instance images per micro-batch and rank")
    p.add_argument("--grad-accumulation", type=int, default=1)
    p.add_argument("--train-text-encoder", action="store_true")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also write <output>_stepNNNNNN every N steps")
    p.add_argument("--resume", help="a checkpoint written by this trainer (node or CLI)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (gloo backend under torchrun)")
    p.add_argument("--rank-report-dir", help="each rank writes rank<N>.json (weights digest, losses) here")
    return p.parse_args(argv)


def boot(comfyui: str | None, cpu: bool):
    """ComfyUI's libraries (no server, no custom nodes) and the pack's DreamBooth trainer."""
    cli_boot.one_gpu_per_rank(cpu)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(comfyui), cpu)
    return cli_boot.pack_module("nodes.dreambooth.trainer")


def save_images(images, folder: Path, start: int):
    import numpy as np
    from PIL import Image

    atomic_write = cli_boot.pack_module("models.common.atomic_file").atomic_write
    for i, image in enumerate(images):
        pixels = Image.fromarray((image.clamp(0, 1).numpy() * 255).round().astype(np.uint8))
        atomic_write(folder / f"class_{start + i:05d}.png", lambda tmp: pixels.save(tmp, format="PNG"))


def main(argv=None) -> int:
    opts = parse_args(argv)
    trainer = boot(opts.comfyui, opts.cpu)
    image_folder = cli_boot.pack_module("models.common.image_folder")  # the node's loading and resampling
    import torch
    import torch.distributed as dist

    import cli_checkpoint

    import comfy.model_management

    train_loop = cli_boot.pack_module("models.common.train_loop")
    rank, world = train_loop.init_distributed(opts.cpu)

    def log(message):
        if rank == 0:
            print(message, flush=True)

    settings = trainer.DreamBoothSettings(
        rank=opts.rank,
        alpha=opts.alpha,
        learning_rate=opts.learning_rate,
        steps=opts.steps,
        batch_size=opts.batch_size,
        grad_accumulation=opts.grad_accumulation,
        prior_loss_weight=opts.prior_loss_weight,
        train_text_encoder=opts.train_text_encoder,
        seed=opts.seed,
        dtype=opts.dtype,
        checkpoint_every=opts.checkpoint_every,
        gradient_checkpointing=opts.gradient_checkpointing,
    )
    settings.validate()
    with torch.inference_mode(False):
        model, clip, vae, family = cli_checkpoint.load(opts.checkpoint, "DreamBooth", cli_checkpoint.TEXT_TO_IMAGE)
        log(f"{family} model")
        files = image_folder.image_files(opts.instance_dir)
        if not files:
            raise SystemExit(
                f"--instance-dir {opts.instance_dir}: no images ({', '.join(image_folder.IMAGE_SUFFIXES)})"
            )
        instance_images = image_folder.load_images(files, opts.resolution, opts.resolution)
        class_images = None
        if opts.class_dir and opts.prior_loss_weight > 0:
            class_dir = Path(opts.class_dir)
            have = image_folder.image_files(class_dir) if class_dir.is_dir() else []
            missing = opts.num_class_images - len(have)
            if missing > 0 and rank == 0:
                if not opts.class_prompt:
                    raise SystemExit("--class-prompt is needed to generate class images")
                log(f"generating {missing} class images of {opts.class_prompt!r}")
                generated = trainer.generate_class_images(
                    model,
                    clip,
                    vae,
                    opts.class_prompt,
                    missing,
                    opts.resolution,
                    opts.resolution,
                    opts.class_steps,
                    opts.class_cfg,
                    "euler",
                    "normal",
                    opts.seed + len(have),
                    4,
                    on_step=lambda done, total: log(f"  class images: {done}/{total} sampling steps")
                    if done % max(total // 10, 1) == 0
                    else None,
                )
                save_images(generated, class_dir, len(have))
            if dist.is_initialized():
                dist.barrier()
            class_images = (
                image_folder.load_image_folder(class_dir, opts.resolution, opts.resolution)
                if class_dir.is_dir()
                else None
            )
            if class_images is None:
                raise SystemExit(
                    f"--class-dir {opts.class_dir}: no class images; pass --num-class-images to generate some"
                )
        instance_latents = trainer.encode_images(vae, instance_images, opts.resolution)
        class_latents = trainer.encode_images(vae, class_images, opts.resolution) if class_images is not None else None
        log(
            f"{len(files)} instance images, {0 if class_latents is None else class_latents.shape[0]} class "
            f"images, world size {world}"
        )

        output = Path(opts.output)

        def checkpoint(result, optimizer_state):
            path = trainer.save_checkpoint(train_loop.checkpoint_path(output, result.step), result, optimizer_state)
            log(f"checkpoint {path}")

        def on_step(step, total, losses):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if step == total or step % max(total // 20, 1) == 0:
                log(
                    f"step {step}/{total} loss {losses['loss']:.4f} (instance {losses['instance']:.4f}, prior "
                    f"{losses['prior']:.4f})"
                )

        result = trainer.train_dreambooth(
            model,
            instance_latents,
            trainer.PromptSet(opts.instance_prompt, opts.class_prompt),
            settings,
            clip=clip,
            class_latents=class_latents,
            resume_from=opts.resume,
            checkpoint=checkpoint,
            on_step=on_step,
            extra_metadata={"resolution": opts.resolution, "trainer": "cli"},
        )
        if rank == 0:
            trainer.save_checkpoint(output, result, result.optimizer_state)
            log(f"wrote {output}")
        if opts.rank_report_dir:
            train_loop.write_rank_report(opts.rank_report_dir, result.state_dict, result.losses)
    train_loop.finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
