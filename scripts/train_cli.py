"""What the pair-dataset training CLIs share (dtc_train.py, pbe_train.py, dreaminpainter_train.py): the common
options, the start-up (ComfyUI, torchrun, progress), the dataset, the progress log and the preview files. Each CLI
adds its method's options and calls its trainer."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import SimpleNamespace

import cli_boot


def common_parser(description: str, learning_rate: float) -> argparse.ArgumentParser:
    """The options every pair-dataset trainer takes, named as its settings (--learning-rate = learning_rate)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI folder (holds comfy/)")
    p.add_argument("--dataset", required=True, help="dataset folder (pack layout or VITON-HD, docs/training.md)")
    p.add_argument("--layout", default="auto", choices=["auto", "pairs", "viton_hd"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--learning-rate", type=float, default=learning_rate)
    p.add_argument("--batch-size", type=int, default=1, help="pairs per micro-batch and rank")
    p.add_argument("--grad-accumulation", type=int, default=1)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--checkpoint-every", type=int, default=0, help="also write <output>_stepNNNNNN every N steps")
    p.add_argument("--preview-every", type=int, default=0, help="write a preview PNG every N steps (--preview-dir)")
    p.add_argument("--preview-dir", help="folder for preview_stepNNNNNN.png")
    p.add_argument("--resume", help="a checkpoint written by this trainer (node or CLI)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--cpu", action="store_true", help="run on the CPU (gloo backend under torchrun)")
    p.add_argument("--rank-report-dir", help="each rank writes rank<N>.json (weights digest, losses) here")
    return p


def add_options(p: argparse.ArgumentParser, kind: type, **defaults) -> None:
    """One `--name-with-dashes` option of type `kind` per keyword (the settings' field name), with its default."""
    for name, default in defaults.items():
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=default)


def lora_options(p: argparse.ArgumentParser) -> None:
    add_options(p, int, lora_rank=16)
    add_options(p, float, lora_alpha=16.0)


def mask_mode_option(p: argparse.ArgumentParser, choices: list[str]) -> None:
    """--mask-mode: `choices` are the mask modes, the trainer's default first."""
    p.add_argument("--mask-mode", default=choices[0], choices=choices)


def start(opts, fields: tuple[str, ...] = ("loss",)) -> SimpleNamespace:
    """Boot ComfyUI (one GPU per torchrun rank), join the process group; the run's train_loop module, rank, world
    size, (log, on_step, on_preview) of `progress`, and `hooks`: the trainer's keyword arguments a CLI always passes."""
    cli_boot.one_gpu_per_rank(opts.cpu)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(opts.comfyui), opts.cpu)
    train_loop = cli_boot.pack_module("models.common.train_loop")
    rank, world = train_loop.init_distributed(opts.cpu)
    log, on_step, on_preview = progress(rank, opts.preview_dir, fields)
    hooks = {"on_step": on_step, "on_preview": on_preview, "extra_metadata": {"trainer": "cli"}}
    return SimpleNamespace(train_loop=train_loop, rank=rank, world=world, log=log, hooks=hooks)


def settings_of(opts, settings_class):
    """The trainer's settings from the options (named as its fields), checked."""
    settings = settings_class.from_values(vars(opts))
    settings.validate()
    return settings


def pairs(opts, run: SimpleNamespace, settings):
    """The dataset of --dataset / --layout, its report and the run's summary logged."""
    dataset = cli_boot.pack_module("models.common.datasets").scan_pairs(opts.dataset, opts.layout)
    run.log(dataset.report())
    run.log(f"{len(dataset)} pairs, world size {run.world}, training {settings.trainable} for {settings.steps} steps")
    return dataset


def finish(opts, run: SimpleNamespace, result, state_of) -> int:
    """Each rank's report (weights digest of `state_of(result)`, losses) with --rank-report-dir; leave the group."""
    if opts.rank_report_dir:
        run.train_loop.write_rank_report(opts.rank_report_dir, state_of(result), result.losses)
    run.train_loop.finish_distributed()
    return 0


def progress(rank: int, preview_dir: str | None, fields: tuple[str, ...] = ("loss",)):
    """(log, on_step, on_preview) for a trainer: rank 0 prints every 5 % of the steps and writes the previews."""
    import numpy as np
    from PIL import Image

    import comfy.model_management

    def log(message):
        if rank == 0:
            print(message, flush=True)

    def on_step(step, total, losses):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if step == total or step % max(total // 20, 1) == 0:
            log(f"step {step}/{total} " + ", ".join(f"{name} {losses[name]:.4f}" for name in fields))

    def on_preview(step, image):
        if rank == 0 and preview_dir:
            pixels = Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))
            target = Path(preview_dir) / f"preview_step{step:06d}.png"
            atomic_write = cli_boot.pack_module("models.common.atomic_file").atomic_write
            atomic_write(target, lambda tmp: pixels.save(tmp, format="PNG"))

    return log, on_step, on_preview
