"""Inputs the training nodes share (Diffuse to Choose, Paint by Example, DreamInpainter)."""

from __future__ import annotations

from comfy_api.latest import io

from ...models.common.train_loop import TRAIN_DTYPES


def probability_input(name: str, default: float, tooltip: str):
    """A FLOAT input in [0, 1] (the trainers' probabilities)."""
    return io.Float.Input(name, default=default, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


def schedule_inputs(seeded: str, checkpoint_tooltip: str, preview_tooltip: str) -> list:
    """training_seed, training_dtype, checkpoint_every, preview_every: the trainers' run-schedule inputs."""
    return [
        io.Int.Input(
            "training_seed",
            default=0,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            tooltip=f"Seeds {seeded} (fixed: a re-queue does not retrain).",
        ),
        io.Combo.Input("training_dtype", options=list(TRAIN_DTYPES), default="fp32", tooltip="Compute precision."),
        io.Int.Input("checkpoint_every", default=0, min=0, max=1_000_000, tooltip=checkpoint_tooltip),
        io.Int.Input("preview_every", default=0, min=0, max=1_000_000, tooltip=preview_tooltip),
    ]
