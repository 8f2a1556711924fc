"""What the pair-dataset training nodes share (Diffuse to Choose, Paint by Example, DreamInpainter): their common
inputs, each with the trainer's own tooltip where they differ, and the glue of `execute` around the trainer."""

from __future__ import annotations

import torch

import comfy.model_management
from comfy_api.latest import io

from ...models.common.datasets import PairDataset
from ...models.common.train_loop import TRAIN_DTYPES
from .progress import TrainingProgress

NONE = "none"
PAIRS_PER_RANK = "Pairs per micro-batch (and rank)."
CHECKPOINTING = "Recompute activations in backward: less memory."


def probability_input(name: str, default: float, tooltip: str):
    """A FLOAT input in [0, 1] (the trainers' probabilities)."""
    return io.Float.Input(name, default=default, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


def run_inputs(
    learning_rate: float,
    learning_rate_tooltip: str,
    resolution_tooltip: str,
    steps_tooltip: str = "Optimizer steps (the total).",
    batch_tooltip: str = PAIRS_PER_RANK,
) -> list:
    """steps, learning_rate, batch_size, grad_accumulation, resolution: the size of a training run."""
    return [
        io.Int.Input("steps", default=1000, min=1, max=10_000_000, tooltip=steps_tooltip),
        io.Float.Input(
            "learning_rate", default=learning_rate, min=1e-8, max=1.0, step=1e-6, tooltip=learning_rate_tooltip
        ),
        io.Int.Input("batch_size", default=1, min=1, max=256, tooltip=batch_tooltip),
        io.Int.Input("grad_accumulation", default=1, min=1, max=1024, tooltip="Micro-batches per optimizer step."),
        io.Int.Input("resolution", default=512, min=64, max=2048, step=8, tooltip=resolution_tooltip),
    ]


def choice_input(name: str, options, default: str, tooltip: str):
    """A combo of the trainer's own options (trainable, mask_mode, reference_source)."""
    return io.Combo.Input(name, options=list(options), default=default, tooltip=tooltip)


def lora_inputs() -> list:
    """lora_rank, lora_alpha: the UNet LoRA the trainers can train."""
    return [
        io.Int.Input("lora_rank", default=16, min=1, max=1024, tooltip="Rank of the UNet LoRA."),
        io.Float.Input(
            "lora_alpha", default=16.0, min=0.01, max=4096.0, step=0.5, tooltip="LoRA scale = alpha / rank."
        ),
    ]


def schedule_inputs(
    seeded: str, checkpoint_tooltip: str, preview_tooltip: str, dtype_tooltip: str = "Compute precision."
) -> list:
    """training_seed, training_dtype, checkpoint_every, preview_every: the trainers' run-schedule inputs."""
    return [
        io.Int.Input(
            "training_seed",
            default=0,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            tooltip=f"Seeds {seeded} (fixed: a re-queue does not retrain).",
        ),
        io.Combo.Input("training_dtype", options=list(TRAIN_DTYPES), default="fp32", tooltip=dtype_tooltip),
        io.Int.Input("checkpoint_every", default=0, min=0, max=1_000_000, tooltip=checkpoint_tooltip),
        io.Int.Input("preview_every", default=0, min=0, max=1_000_000, tooltip=preview_tooltip),
    ]


def resume_inputs(files: list[str], tooltip: str, checkpointing_tooltip: str = CHECKPOINTING) -> list:
    """resume_from (NONE or one of `files`), gradient_checkpointing."""
    return [
        io.Combo.Input("resume_from", options=[NONE] + files, default=NONE, tooltip=tooltip),
        io.Boolean.Input("gradient_checkpointing", default=False, tooltip=checkpointing_tooltip),
    ]


def node_settings(settings_class, values: dict):
    """The trainer's settings from the node's inputs (training_seed / training_dtype are its seed / dtype), checked."""
    settings = settings_class.from_values(dict(values, seed=values["training_seed"], dtype=values["training_dtype"]))
    settings.validate()
    return settings


def node_hooks(title: str, settings, model, checkpoint, loading: str | None = None) -> dict:
    """The trainer's keyword arguments a node passes: `checkpoint(result)` (it writes a step's files and returns
    where, for the progress's save on cancel), the TrainingProgress titled `title` (its status line `loading` before
    the trainer starts), previews collected into the result for the node's output, the node as the trainer."""
    progress = TrainingProgress(title, settings.steps, save_partial=checkpoint, model=model)
    if loading:
        progress.status(loading)
    return {
        "checkpoint": checkpoint,
        "on_preview": lambda step, image: None,
        "extra_metadata": {"trainer": "node"},
        "progress": progress,
    }


def require_pairs(dataset, node: str = "DtC Training Pairs") -> PairDataset:
    if not isinstance(dataset, PairDataset):
        raise ValueError(f"dataset must come from {node}, got {type(dataset).__name__}")
    return dataset


def previews_output(result) -> torch.Tensor:
    """The previews a run drew, one row each, as the node's IMAGE output."""
    return torch.cat(result.previews).to(comfy.model_management.intermediate_device())


def losses_csv(losses: list[dict], decimals: dict[str, int]) -> str:
    """The per-step terms as CSV: a `step` column, then one per term of `decimals` (name -> decimals)."""
    rows = [",".join([str(r["step"])] + [f"{r[name]:.{places}f}" for name, places in decimals.items()]) for r in losses]
    return "step," + ",".join(decimals) + "\n" + "\n".join(rows)


def last_loss(losses: list[dict]) -> float:
    return losses[-1]["loss"] if losses else float("nan")
