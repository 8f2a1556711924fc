"""DreamInpainter on SDXL, training-free: an SDXL inpainting checkpoint; the reference pass of the model's own UNet
gets SDXL's vector conditioning (pooled output + sizes) from an empty-prompt CLIP Text Encode (SDXL) -> top-K tokens
-> self-attention injection on all but the negative pass -> DreamInpainter guidance with (ref,text) = the prompt,
(ref,∅) = the empty prompt and (∅,∅) = the same empty prompt without the reference -> pasted back outside the mask."""

from __future__ import annotations

from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE
from ..tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME

SIZES = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}

SPEC = [
    {
        "id": 1,
        "type": "CheckpointLoaderSimple",
        "title": "SDXL inpainting model",
        "widgets": {"ckpt_name": TINY_SDXL_INPAINT_NAME},
    },
    {"id": 2, "type": "LoadImage", "title": "Source (draw the mask here)", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Reference", "widgets": {"image": REFERENCE_IMAGE}},
    {
        "id": 4,
        "type": "ImageColorToMask",
        "title": "White background",
        "widgets": {"color": 0xFFFFFF},
        "links": {"image": (3, 0)},
    },
    {"id": 5, "type": "InvertMask", "title": "Subject mask", "links": {"mask": (4, 0)}},
    {
        "id": 6,
        "type": "CLIPTextEncodeSDXL",
        "title": "Positive",
        "widgets": {**SIZES, "text_g": "a red cup on a wooden table, photo", "text_l": "a red cup on a wooden table"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 7,
        "type": "CLIPTextEncodeSDXL",
        "title": "Empty prompt (reference only, and the negative)",
        "widgets": {**SIZES, "text_g": "", "text_l": ""},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 8,
        "type": "ExemplarReferenceEncodeUNet",
        "widgets": {"block": "auto", "timestep": 0, "resolution": 512, "crop": "center", "blank_background": False},
        "links": {"model": (1, 0), "vae": (1, 2), "reference": (3, 0), "subject_mask": (5, 0), "conditioning": (7, 0)},
    },
    {
        "id": 9,
        "type": "ExemplarTokenSelectTopK",
        "widgets": {
            "k": 24,
            "criterion": "saliency",
            "selection": "top_k",
            "candidate_pool": 96,
            "mask_threshold": 0.5,
        },
        "links": {"tokens": (8, 0)},
    },
    {
        "id": 10,
        "type": "ExemplarReferenceSelfAttention",
        "widgets": {
            "weight": 1.0,
            "start_percent": 0.0,
            "end_percent": 1.0,
            "cond_only": True,
            "token_space": "block_norm",
            "blocks": "matching_dim",
        },
        "links": {"model": (1, 0), "tokens": (9, 0)},
    },
    {
        "id": 11,
        "type": "InpaintModelConditioning",
        "widgets": {"noise_mask": True},
        "links": {"positive": (6, 0), "negative": (7, 0), "vae": (1, 2), "pixels": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 12,
        "type": "ExemplarDualGuidanceKSampler",
        "widgets": {
            "seed": 0,
            "steps": 20,
            "text_scale": 5.0,
            "middle_scale": 1.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "guidance": "dreaminpainter",
        },
        "links": {
            "model": (10, 0),
            "positive": (11, 0),
            "middle": (11, 1),
            "negative": (11, 1),
            "latent_image": (11, 2),
        },
    },
    {"id": 13, "type": "VAEDecode", "links": {"samples": (12, 0), "vae": (1, 2)}},
    {
        "id": 14,
        "type": "ImageCompositeMasked",
        "title": "Keep the background",
        "widgets": {"x": 0, "y": 0, "resize_source": False},
        "links": {"destination": (2, 0), "source": (13, 0), "mask": (2, 1)},
    },
    {
        "id": 15,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreaminpainter_sdxl_reference_inpaint"},
        "links": {"images": (14, 0)},
    },
    {"id": 16, "type": "PreviewImage", "title": "Raw sample", "links": {"images": (13, 0)}},
]
