"""SDXL assets: the tiny SDXL checkpoint (named like the official base model), an SDXL DreamStyler staged embedding
(CLIP-L + bigG vectors per stage) and the DreamBooth subject images, which the SDXL workflows name (the DreamBooth
workflow trains its LoRA in the same queue)."""

from __future__ import annotations

from pathlib import Path

from ..tiny_models import is_current
from ..tiny_sdxl_base import (
    TINY_SDXL_STAGED_EMBEDDING_NAME,
    tiny_sdxl_staged_embedding,
    write_tiny_sdxl_checkpoint,
)


def prepare(base_dir: Path) -> None:
    write_tiny_sdxl_checkpoint(base_dir / "models" / "checkpoints")
    embedding = tiny_sdxl_staged_embedding()
    path = base_dir / "models" / "embeddings" / TINY_SDXL_STAGED_EMBEDDING_NAME
    if not is_current(path, embedding.header()):
        from ..host import pack_submodule

        pack_submodule("models.dreamstyler.staged_embedding").save_safetensors(embedding, path)
    from .dreambooth import SUBJECT_IMAGES, subject_image

    input_dir = base_dir / "input"
    input_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(SUBJECT_IMAGES):
        if not (input_dir / name).is_file():
            subject_image(index).save(input_dir / name)
