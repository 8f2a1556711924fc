"""Diffuse to Choose on SDXL: person (garment area masked) + garment photo -> DINOv2 image conditioning carrying the
SDXL vector conditioning (pooled output + sizes) of a CLIP Text Encode (SDXL), DtC hint adapter + FiLM (10 on SDXL)
on an SDXL inpainting model -> DDIM 40 steps, guidance 5. The adapter here is created untrained (the exact identity):
train one with Train DtC Adapter (text_conditioning input) and load it instead."""

from __future__ import annotations

from ..asset_builders.diffuse_to_choose import DINOV2_NAME, GARMENT_IMAGE, PERSON_IMAGE
from ..tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME

SPEC = [
    {
        "id": 1,
        "type": "CheckpointLoaderSimple",
        "title": "SDXL inpainting model",
        "widgets": {"ckpt_name": TINY_SDXL_INPAINT_NAME},
    },
    {"id": 2, "type": "LoadImage", "title": "Person (mask the garment area)", "widgets": {"image": PERSON_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Garment", "widgets": {"image": GARMENT_IMAGE}},
    {
        "id": 4,
        "type": "CLIPVisionLoader",
        "title": "DINOv2 (giant in the paper)",
        "widgets": {"clip_name": DINOV2_NAME},
    },
    {
        "id": 5,
        "type": "ExemplarDtCAdapterCreate",
        "title": "DtC adapter (untrained: load a trained one here)",
        "widgets": {"image_dim": 1024, "seed": 0},
        "links": {"model": (1, 0)},
    },
    {
        "id": 6,
        "type": "CLIPTextEncodeSDXL",
        "title": "SDXL vector conditioning (pooled output + sizes)",
        "widgets": {
            "width": 1024,
            "height": 1024,
            "crop_w": 0,
            "crop_h": 0,
            "target_width": 1024,
            "target_height": 1024,
            "text_g": "a person wearing a striped t-shirt",
            "text_l": "a person wearing a striped t-shirt",
        },
        "links": {"clip": (1, 1)},
    },
    {
        "id": 7,
        "type": "ExemplarDtCImageConditioning",
        "widgets": {"resolution": 224, "crop": "center"},
        "links": {"clip_vision": (4, 0), "reference": (3, 0), "adapter": (5, 0), "text_conditioning": (6, 0)},
    },
    {
        "id": 8,
        "type": "InpaintModelConditioning",
        "widgets": {"noise_mask": True},
        "links": {"positive": (7, 0), "negative": (7, 1), "vae": (1, 2), "pixels": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 9,
        "type": "ExemplarDtCHint",
        "widgets": {"fit": "stretch", "min_side": 8},
        "links": {"image": (2, 0), "mask": (2, 1), "reference": (3, 0)},
    },
    {
        "id": 10,
        "type": "ExemplarDtCApply",
        "widgets": {"strength": 1.0},
        "links": {"model": (1, 0), "adapter": (5, 0), "hint": (9, 0)},
    },
    {
        "id": 11,
        "type": "KSampler",
        "widgets": {
            "seed": 0,
            "steps": 40,
            "cfg": 5.0,
            "sampler_name": "ddim",
            "scheduler": "ddim_uniform",
            "denoise": 1.0,
        },
        "links": {"model": (10, 0), "positive": (8, 0), "negative": (8, 1), "latent_image": (8, 2)},
    },
    {"id": 12, "type": "VAEDecode", "links": {"samples": (11, 0), "vae": (1, 2)}},
    {
        "id": 13,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/diffuse_to_choose_sdxl_tryon"},
        "links": {"images": (12, 0)},
    },
    {"id": 14, "type": "PreviewImage", "title": "Hint", "links": {"images": (9, 1)}},
]
