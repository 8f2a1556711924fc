"""What the training workflows share (diffuse_to_choose_train, paint_by_example_finetune, dreaminpainter_train): the
tiny pairs folder, a trainer's run-size and schedule widgets, the preview of its previews output, the source and
reference images the trained result is tried on."""

from __future__ import annotations

from ..asset_builders.dtc_training import PAIRS_FOLDER
from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE


def pairs_node(node_id: int) -> dict:
    return {"id": node_id, "type": "ExemplarDtCPairDataset", "widgets": {"folder": PAIRS_FOLDER, "layout": "auto"}}


def run_widgets(steps: int, learning_rate: float, resolution: int = 64) -> dict:
    """steps .. resolution of a trainer, one pair per step (the tiny assets' 64 px)."""
    return {
        "steps": steps,
        "learning_rate": learning_rate,
        "batch_size": 1,
        "grad_accumulation": 1,
        "resolution": resolution,
    }


def schedule_widgets(checkpoint_every: int, preview_every: int) -> dict:
    """Seed, precision, checkpoints, previews, no resume, no gradient checkpointing."""
    return {
        "training_seed": 0,
        "training_dtype": "fp32",
        "checkpoint_every": checkpoint_every,
        "preview_every": preview_every,
        "resume_from": "none",
        "gradient_checkpointing": False,
    }


def preview_node(node_id: int, title: str, images: tuple[int, int]) -> dict:
    return {"id": node_id, "type": "PreviewImage", "title": title, "links": {"images": images}}


def source_and_reference(first_id: int, reference_title: str) -> list[dict]:
    """The source to inpaint (its mask drawn in the image) and the reference, as two LoadImage nodes."""
    source = {"image": SOURCE_IMAGE}
    return [
        {"id": first_id, "type": "LoadImage", "title": "Source (draw the mask here)", "widgets": source},
        {"id": first_id + 1, "type": "LoadImage", "title": reference_title, "widgets": {"image": REFERENCE_IMAGE}},
    ]
