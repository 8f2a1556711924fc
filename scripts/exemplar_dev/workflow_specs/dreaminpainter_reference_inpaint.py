"""DreamInpainter, training-free: source + mask + reference + prompt -> the model's own UNet features of the
reference -> top-K tokens -> self-attention reference injection (all but the negative pass) -> inpaint
sampling with DreamInpainter guidance, (ref,∅) + s_text·((ref,text) − (ref,∅)) + s_ref·((ref,∅) − (∅,∅)):
the positive prompt is (ref,text), an empty prompt (ref,∅), the negative prompt without reference (∅,∅)
-> pasted back outside the mask."""

from __future__ import annotations

from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE
from ..tiny_models import TINY_SD15_NAME

TITLE = "DreamInpainter: inpaint from a reference and a prompt (training-free)"
DESCRIPTION = (
    "The reference's own UNet features, top-K tokens, injected into self-attention, with DreamInpainter's"
    " text-and-reference guidance; background kept exactly."
)

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
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
        "type": "CLIPTextEncode",
        "title": "Positive",
        "widgets": {"text": "a red cup on a wooden table, photo"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 7,
        "type": "CLIPTextEncode",
        "title": "Negative",
        "widgets": {"text": "blurry, low quality"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 8,
        "type": "ExemplarReferenceEncodeUNet",
        "widgets": {"block": "auto", "timestep": 0, "resolution": 512, "crop": "center", "blank_background": False},
        "links": {"model": (1, 0), "vae": (1, 2), "reference": (3, 0), "subject_mask": (5, 0)},
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
    {"id": 11, "type": "VAEEncode", "links": {"pixels": (2, 0), "vae": (1, 2)}},
    {"id": 12, "type": "SetLatentNoiseMask", "links": {"samples": (11, 0), "mask": (2, 1)}},
    {
        "id": 13,
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
        "links": {"model": (10, 0), "positive": (6, 0), "middle": (18, 0), "negative": (7, 0), "latent_image": (12, 0)},
    },
    {"id": 14, "type": "VAEDecode", "links": {"samples": (13, 0), "vae": (1, 2)}},
    {
        "id": 15,
        "type": "ExemplarPasteBack",
        "title": "Keep the background",
        "widgets": {"feather": 8, "color_match": "off", "ring": 16},
        "links": {"image": (14, 0), "source": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 16,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreaminpainter_reference_inpaint"},
        "links": {"images": (15, 0)},
    },
    {"id": 17, "type": "PreviewImage", "title": "Raw sample", "links": {"images": (14, 0)}},
    {
        "id": 18,
        "type": "CLIPTextEncode",
        "title": "Reference only (empty prompt)",
        "widgets": {"text": ""},
        "links": {"clip": (1, 1)},
    },
]
