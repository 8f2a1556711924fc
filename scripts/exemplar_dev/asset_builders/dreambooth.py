"""DreamBooth sample assets: two synthetic subject photos.

The shipped workflow `dreambooth_train_and_sample` trains into `loras/dreambooth/sks_dog.safetensors`
and samples from the trainer's own MODEL/CLIP outputs, so no file has to exist before it is queued.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .. import model_files

SUBJECT_IMAGES = model_files.SUBJECT_IMAGES
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
