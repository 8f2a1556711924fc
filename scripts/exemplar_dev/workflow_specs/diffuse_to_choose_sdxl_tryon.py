"""Diffuse to Choose on SDXL: the try-on workflow (diffuse_to_choose_tryon) on an SDXL inpainting model. The DINOv2
image conditioning carries the SDXL vector conditioning (pooled output + sizes) of a CLIP Text Encode (SDXL); the
adapter (10 FiLM on SDXL) is created untrained here, the exact identity: train one with Train DtC Adapter (its
text_conditioning input) and load it instead. DDIM 40 steps, guidance 5."""

from __future__ import annotations

import copy

from ..tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME
from .diffuse_to_choose_tryon import SPEC as SD15_SPEC

TITLE = "Diffuse to Choose on SDXL: virtual try-on with an SDXL inpainting model"
DESCRIPTION = (
    "Person + garment mask + garment photo on SDXL inpainting: the hint path (10 FiLM) and DINOv2 "
    "conditioning carry the garment, CLIP Text Encode (SDXL) gives the pooled output and sizes; "
    "experimental until you train an adapter."
)

SDXL_SIZES = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
PROMPT = "a person wearing a striped t-shirt"


def _sdxl(spec: list) -> list:
    nodes = {node["id"]: node for node in copy.deepcopy(spec)}
    nodes[1].update(title="SDXL inpainting model", widgets={"ckpt_name": TINY_SDXL_INPAINT_NAME})
    nodes[5] = {
        "id": 5,
        "type": "ExemplarDtCAdapterCreate",
        "title": "DtC adapter (untrained: load a trained one here)",
        "widgets": {"image_dim": 1024, "seed": 0},
        "links": {"model": (1, 0)},
    }
    nodes[6]["links"]["text_conditioning"] = (15, 0)
    nodes[12]["widgets"]["filename_prefix"] = "exemplar/diffuse_to_choose_sdxl_tryon"
    nodes[15] = {
        "id": 15,
        "type": "CLIPTextEncodeSDXL",
        "title": "SDXL vector conditioning (pooled output + sizes)",
        "widgets": {**SDXL_SIZES, "text_g": PROMPT, "text_l": PROMPT},
        "links": {"clip": (1, 1)},
    }
    return list(nodes.values())


SPEC = _sdxl(SD15_SPEC)
