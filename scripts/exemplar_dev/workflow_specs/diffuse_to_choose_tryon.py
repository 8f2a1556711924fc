"""Diffuse to Choose virtual try-on: person (garment area masked) + garment photo -> DINOv2 image conditioning,
DtC hint adapter + FiLM on a 9-channel inpainting model -> DDIM 40 steps, guidance 5 (the paper's inference)
-> the person photo pasted back outside the mask."""

from __future__ import annotations

from ..asset_builders.diffuse_to_choose import DINOV2_NAME, GARMENT_IMAGE, PERSON_IMAGE
from ..tiny_dtc import TINY_DTC_ADAPTER_NAME, TINY_SD15_INPAINT_NAME

TITLE = "Diffuse to Choose: virtual try-on"
DESCRIPTION = (
    "A garment photo placed into the masked area of a person photo: hint image, adapter with FiLM, DINOv2"
    " conditioning, DDIM 40 steps; the person outside the mask is kept. Needs an adapter you train."
)

SPEC = [
    {
        "id": 1,
        "type": "CheckpointLoaderSimple",
        "title": "Inpainting model (9-channel SD1.5)",
        "widgets": {"ckpt_name": TINY_SD15_INPAINT_NAME},
    },
    {"id": 2, "type": "LoadImage", "title": "Person (mask the garment area)", "widgets": {"image": PERSON_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Garment", "widgets": {"image": GARMENT_IMAGE}},
    {
        "id": 4,
        "type": "CLIPVisionLoader",
        "title": "DINOv2 (giant in the paper)",
        "widgets": {"clip_name": DINOV2_NAME},
    },
    {"id": 5, "type": "ExemplarDtCAdapterLoader", "widgets": {"adapter_name": TINY_DTC_ADAPTER_NAME}},
    {
        "id": 6,
        "type": "ExemplarDtCImageConditioning",
        "widgets": {"resolution": 224, "crop": "center"},
        "links": {"clip_vision": (4, 0), "reference": (3, 0), "adapter": (5, 0)},
    },
    {
        "id": 7,
        "type": "InpaintModelConditioning",
        "widgets": {"noise_mask": True},
        "links": {"positive": (6, 0), "negative": (6, 1), "vae": (1, 2), "pixels": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 8,
        "type": "ExemplarDtCHint",
        "widgets": {"fit": "stretch", "min_side": 8},
        "links": {"image": (2, 0), "mask": (2, 1), "reference": (3, 0)},
    },
    {
        "id": 9,
        "type": "ExemplarDtCApply",
        "widgets": {"strength": 1.0},
        "links": {"model": (1, 0), "adapter": (5, 0), "hint": (8, 0)},
    },
    {
        "id": 10,
        "type": "KSampler",
        "widgets": {
            "seed": 0,
            "steps": 40,
            "cfg": 5.0,
            "sampler_name": "ddim",
            "scheduler": "ddim_uniform",
            "denoise": 1.0,
        },
        "links": {"model": (9, 0), "positive": (7, 0), "negative": (7, 1), "latent_image": (7, 2)},
    },
    {"id": 11, "type": "VAEDecode", "links": {"samples": (10, 0), "vae": (1, 2)}},
    {
        "id": 14,
        "type": "ExemplarPasteBack",
        "title": "Keep the background",
        "widgets": {"feather": 8, "color_match": "off", "ring": 16},
        "links": {"image": (11, 0), "source": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 12,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/diffuse_to_choose_tryon"},
        "links": {"images": (14, 0)},
    },
    {"id": 13, "type": "PreviewImage", "title": "Hint", "links": {"images": (8, 1)}},
]
