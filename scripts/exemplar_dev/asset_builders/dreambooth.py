"""DreamBooth sample assets: two synthetic subject photos and a LoRA trained on them by the pack's trainer.

The shipped workflow `dreambooth_train_and_sample` trains into `loras/dreambooth/sks_dog.safetensors`
and loads that name with the stock Load LoRA node, whose widget must name an existing file when
the prompt is validated; so the builder trains the tiny model once (a few real steps) to create it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SUBJECT_IMAGES = ("exemplar_dreambooth_subject_1.png", "exemplar_dreambooth_subject_2.png")
WORKFLOW_LORA = "dreambooth/sks_dog.safetensors"


def subject_image(index: int, size: int = 256) -> Image.Image:
    """A toy 'subject': an orange round body with two dark ears and eyes, placed and lit per index."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:size, 0:size] / size
    background = (
        np.stack([0.55 + 0.3 * yy, 0.7 - 0.2 * xx, 0.45 + 0.35 * xx * yy], -1)
        if index % 2
        else np.full((size, size, 3), 0.88)
    )
    rgb = background.copy()
    cx, cy = 0.45 + 0.1 * rng.random(), 0.5 + 0.1 * rng.random()
    body = ((xx - cx) / 0.28) ** 2 + ((yy - cy) / 0.24) ** 2 <= 1
    rgb[body] = (0.9, 0.5, 0.15)
    for side in (-1, 1):
        ear = ((xx - cx - side * 0.17) / 0.07) ** 2 + ((yy - cy + 0.24) / 0.1) ** 2 <= 1
        eye = ((xx - cx - side * 0.09) / 0.03) ** 2 + ((yy - cy + 0.05) / 0.03) ** 2 <= 1
        rgb[ear | eye] = (0.2, 0.12, 0.08)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def prepare(base_dir: Path) -> None:
    input_dir = base_dir / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(SUBJECT_IMAGES):
        if not (input_dir / name).is_file():
            subject_image(index).save(input_dir / name)
    lora = base_dir / "models" / "loras" / WORKFLOW_LORA
    if not lora.is_file():
        _train_workflow_lora(input_dir, lora)


def _train_workflow_lora(input_dir: Path, target: Path, checkpoint: str | None = None) -> None:
    """Train the subject images (in `input_dir`) on `checkpoint` (default: the tiny SD1.5 model) into `target`."""
    import torch

    from ..host import boot, pack_submodule
    from ..tiny_models import TINY_SD15_NAME

    nodes = boot().nodes
    glue = pack_submodule("nodes.dreambooth.trainer")
    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(checkpoint or TINY_SD15_NAME)[:3]
    images = torch.cat([nodes.LoadImage().load_image(name)[0] for name in SUBJECT_IMAGES])
    latents = glue.encode_images(vae, images, 64)
    settings = glue.DreamBoothSettings(steps=2, prior_loss_weight=0.0, seed=0)
    result = glue.train_dreambooth(model, latents, glue.PromptSet("a sks dog", "a dog"), settings, clip=clip)
    glue.save_checkpoint(target, result)
