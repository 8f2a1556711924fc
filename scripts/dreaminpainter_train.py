"""DreamInpainter token projection + scorer (+ UNet LoRA) training from the command line: the same trainer as the
Train DreamInpainter Tokens node.

One process:
    python scripts/dreaminpainter_train.py --checkpoint models/checkpoints/sd15.safetensors --dataset my_pairs \
        --output models/exemplar/dreaminpainter/my_subject

writes my_subject_projection.safetensors and my_subject_scorer.safetensors (and, with --lora-output and a trainable
LoRA, the LoRA). Several GPUs (or CPU processes, gloo) through torchrun, as the other training CLIs:
    torchrun --standalone --nproc_per_node 8 scripts/dreaminpainter_train.py ...same arguments...

ComfyUI is imported from --comfyui (default: $COMFYUI_DIR, else the ComfyUI this pack is installed in).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cli_boot
import train_cli


def parse_args(argv=None):
    p = train_cli.common_parser("Train DreamInpainter's token projection and scorer (comfyui-exemplar).", 1e-4)
    p.add_argument(
        "--checkpoint", required=True,
        help="single-file SD1.x / SD2.x checkpoint, text-to-image or inpainting (.safetensors / .ckpt)",
    )
    p.add_argument("--output", required=True, help="path stem: <stem>_projection / _scorer .safetensors are written")
    p.add_argument("--lora-output", help="LoRA file to write when the LoRA trains (also read when resuming)")
    p.add_argument("--resume-lora", help="with --resume: the LoRA file written with that checkpoint")
    train_cli.add_options(p, int, reference_resolution=512)
    p.add_argument("--block", default="auto")
    train_cli.add_options(p, int, timestep=0, k=24)
    p.add_argument(
        "--trainable",
        default="projection+scorer",
        choices=["projection+scorer", "projection", "projection+scorer+lora"],
    )
    train_cli.lora_options(p)
    train_cli.add_options(p, float, selection_noise=1.0, selection_temperature=1.0, decoupling_probability=0.5)
    p.add_argument("--subject-caption", default="")
    train_cli.mask_mode_option(p, ["mixed", "given", "box", "irregular"])
    train_cli.add_options(p, float, fine_probability=0.5, flip_probability=0.5)
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    run = train_cli.start(opts, ("loss", "decoupled"))
    trainer = cli_boot.pack_module("nodes.dreaminpainter.trainer")
    import torch

    import comfy.sd

    settings = train_cli.settings_of(opts, trainer.DISettings)
    with torch.inference_mode(False):
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(opts.checkpoint, output_vae=True, output_clip=True)[:3]
        dataset = train_cli.pairs(opts, run, settings)
        stem = Path(opts.output)
        stem = stem.with_name(stem.name.removesuffix(".safetensors").removesuffix("_projection"))
        lora = Path(opts.lora_output) if opts.lora_output else None

        def files(step=None):  # (projection file, LoRA file) of the final run or of a step checkpoint
            name = stem.name if step is None else f"{stem.name}_step{step:06d}"
            lora_file = None if lora is None else (lora if step is None else run.train_loop.checkpoint_path(lora, step))
            return stem.with_name(f"{name}_projection.safetensors"), lora_file

        def checkpoint(result):
            projection_file, lora_file = files(result.step)
            paths = trainer.save_checkpoint(projection_file, result, lora_file)
            run.log(f"checkpoint {paths['projection']}")

        result = trainer.train_dreaminpainter(
            model,
            vae,
            clip,
            dataset,
            settings,
            resume_from=opts.resume,
            resume_lora=opts.resume_lora,
            checkpoint=checkpoint,
            **run.hooks,
        )
        if run.rank == 0:
            projection_file, lora_file = files()
            paths = trainer.save_checkpoint(projection_file, result, lora_file)
            run.log("wrote " + ", ".join(str(p) for p in paths.values()))
    return train_cli.finish(opts, run, result, parts_state)


def parts_state(result) -> dict:
    """The trained projection and scorer weights, as one state (the rank report's digest)."""
    state = {f"projection.{k}": v for k, v in result.projection.state_dict().items()}
    state.update({f"scorer.{k}": v for k, v in result.scorer.state_dict().items()})
    return state


if __name__ == "__main__":
    sys.exit(main())
