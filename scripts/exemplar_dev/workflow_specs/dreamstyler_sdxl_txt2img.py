"""DreamStyler text-to-image on SDXL: `dreamstyler_txt2img` on the SDXL checkpoint with an SDXL staged embedding
(a CLIP-L and a bigG vector per timestep stage), style-and-context guidance at the official scales. Sized for the
tiny test model (512 px); with the real SDXL base use 1024 px."""

from __future__ import annotations

from ..tiny_dreamstyler import TINY_STAGED_EMBEDDING_NAME
from ..tiny_models import TINY_SD15_NAME
from ..tiny_sdxl_base import TINY_SDXL_NAME, TINY_SDXL_STAGED_EMBEDDING_NAME, retargeted
from .dreamstyler_txt2img import SPEC as SD15_SPEC

TITLE = "DreamStyler on SDXL: text to image in a trained style"
DESCRIPTION = (
    "An SDXL staged style embedding (a CLIP-L and a bigG vector per timestep stage) with style-and-"
    "context guidance."
)

SPEC = retargeted(
    SD15_SPEC,
    {
        TINY_SD15_NAME: TINY_SDXL_NAME,
        TINY_STAGED_EMBEDDING_NAME: TINY_SDXL_STAGED_EMBEDDING_NAME,
        "exemplar/dreamstyler_txt2img": "exemplar/dreamstyler_sdxl_txt2img",
    },
)
