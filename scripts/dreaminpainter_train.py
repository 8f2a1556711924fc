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
    p.add_argument("--checkpoint", required=True, help="single-file SD1.x checkpoint (.safetensors / .ckpt)")
    p.add_argument("--output", required=True, help="path stem: <stem>_projection / _scorer .safetensors are written")
    p.add_argument("--lora-output", help="LoRA file to write when the LoRA trains (also read when resuming)")
    p.add_argument("--resume-lora", help="with --resume: the LoRA file written with that checkpoint")
    p.add_argument("--reference-resolution", type=int, default=512)
    p.add_argument("--block", default="auto")
    p.add_argument("--timestep", type=int, default=0)
    p.add_argument("--k", type=int, default=24)
    p.add_argument(
        "--trainable",
        default="projection+scorer",
        choices=["projection+scorer", "projection", "projection+scorer+lora"],
    )
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--selection-noise", type=float, default=1.0)
    p.add_argument("--selection-temperature", type=float, default=1.0)
    p.add_argument("--decoupling-probability", type=float, default=0.5)
    p.add_argument("--subject-caption", default="")
    p.add_argument("--mask-mode", default="mixed", choices=["mixed", "given", "box", "irregular"])
    p.add_argument("--fine-probability", type=float, default=0.5)
    p.add_argument("--flip-probability", type=float, default=0.5)
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    cli_boot.one_gpu_per_rank(opts.cpu)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(opts.comfyui), opts.cpu)
    trainer = cli_boot.pack_module("nodes.dreaminpainter.trainer")
    datasets = cli_boot.pack_module("models.common.datasets")
    train_loop = cli_boot.pack_module("models.common.train_loop")
    import torch

    import comfy.sd

    rank, world = train_loop.init_distributed(opts.cpu)
    log, on_step, on_preview = train_cli.progress(rank, opts.preview_dir, ("loss", "decoupled"))
    settings = trainer.DISettings.from_values(vars(opts))
    settings.validate()
    with torch.inference_mode(False):
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(opts.checkpoint, output_vae=True, output_clip=True)[:3]
        dataset = datasets.scan_pairs(opts.dataset, opts.layout)
        log(dataset.report())
        log(f"{len(dataset)} pairs, world size {world}, training {settings.trainable} for {settings.steps} steps")
        stem = Path(opts.output)
        stem = stem.with_name(stem.name.removesuffix(".safetensors").removesuffix("_projection"))
        lora = Path(opts.lora_output) if opts.lora_output else None

        def files(step=None):  # (projection file, LoRA file) of the final run or of a step checkpoint
            name = stem.name if step is None else f"{stem.name}_step{step:06d}"
            lora_file = None if lora is None else (lora if step is None else train_loop.checkpoint_path(lora, step))
            return stem.with_name(f"{name}_projection.safetensors"), lora_file

        def checkpoint(result):
            projection_file, lora_file = files(result.step)
            paths = trainer.save_checkpoint(projection_file, result, lora_file)
            log(f"checkpoint {paths['projection']}")

        result = trainer.train_dreaminpainter(
            model,
            vae,
            clip,
            dataset,
            settings,
            resume_from=opts.resume,
            resume_lora=opts.resume_lora,
            checkpoint=checkpoint,
            on_step=on_step,
            on_preview=on_preview,
            extra_metadata={"trainer": "cli"},
        )
        if rank == 0:
            projection_file, lora_file = files()
            paths = trainer.save_checkpoint(projection_file, result, lora_file)
            log("wrote " + ", ".join(str(p) for p in paths.values()))
        if opts.rank_report_dir:
            state = {f"projection.{k}": v for k, v in result.projection.state_dict().items()}
            state.update({f"scorer.{k}": v for k, v in result.scorer.state_dict().items()})
            train_loop.write_rank_report(opts.rank_report_dir, state, result.losses)
    train_loop.finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
