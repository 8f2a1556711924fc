"""DreamInpainter on SDXL, training-free: the dreaminpainter_reference_inpaint workflow on an SDXL inpainting
checkpoint. The reference pass of the model's own UNet gets SDXL's vector conditioning (pooled output + sizes) from
an empty-prompt CLIP Text Encode (SDXL); InpaintModelConditioning gives the 9-channel model its masked source; the
DreamInpainter guidance takes (ref,text) = the prompt, (ref,∅) = the empty prompt and (∅,∅) = the same empty prompt
without the reference (cond_only leaves the negative pass plain)."""

from __future__ import annotations

import copy

from ..tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME
from .diffuse_to_choose_sdxl_tryon import SDXL_SIZES
from .dreaminpainter_reference_inpaint import SPEC as SD15_SPEC

TITLE = "DreamInpainter on SDXL: inpaint a subject from a reference, training-free"
DESCRIPTION = (
    "The reference's own UNet features (top-24 tokens) injected into self-attention of an SDXL inpainting"
    " model, with DreamInpainter's text + reference guidance; the background is kept exactly."
)

PROMPT = "a red cup on a wooden table, photo"


def _sdxl(spec: list) -> list:
    nodes = {node["id"]: node for node in copy.deepcopy(spec)}
    nodes[1].update(title="SDXL inpainting model", widgets={"ckpt_name": TINY_SDXL_INPAINT_NAME})
    nodes[6] = {
        "id": 6,
        "type": "CLIPTextEncodeSDXL",
        "title": "Positive",
        "widgets": {**SDXL_SIZES, "text_g": PROMPT, "text_l": PROMPT},
        "links": {"clip": (1, 1)},
    }
    nodes[18] = {
        "id": 18,
        "type": "CLIPTextEncodeSDXL",
        "title": "Empty prompt (reference only, and the negative)",
        "widgets": {**SDXL_SIZES, "text_g": "", "text_l": ""},
        "links": {"clip": (1, 1)},
    }
    del nodes[7]  # the negative is the empty prompt without the reference
    nodes[8]["links"]["conditioning"] = (18, 0)
    nodes[11] = {
        "id": 11,
        "type": "InpaintModelConditioning",
        "widgets": {"noise_mask": True},
        "links": {"positive": (6, 0), "negative": (18, 0), "vae": (1, 2), "pixels": (2, 0), "mask": (2, 1)},
    }
    del nodes[12]
    nodes[13]["links"].update(positive=(11, 0), middle=(11, 1), negative=(11, 1), latent_image=(11, 2))
    nodes[16]["widgets"]["filename_prefix"] = "exemplar/dreaminpainter_sdxl_reference_inpaint"
    return list(nodes.values())


SPEC = _sdxl(SD15_SPEC)
