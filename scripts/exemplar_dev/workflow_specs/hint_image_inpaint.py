"""Source with a drawn mask + reference -> DtC hint image pasted into the hole -> inpaint-blend (stock KSampler)
-> the source pasted back outside the mask."""

from __future__ import annotations

from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE
from ..tiny_models import TINY_SD15_NAME

TITLE = "Hint image inpainting"
DESCRIPTION = (
    "The reference pasted into the largest rectangle inside the mask, then blended in by a stock "
    "inpainting sampler; background kept exactly."
)

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "LoadImage", "title": "Source (draw the mask here)", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Reference", "widgets": {"image": REFERENCE_IMAGE}},
    {"id": 4, "type": "ExemplarDtCHint", "links": {"image": (2, 0), "mask": (2, 1), "reference": (3, 0)}},
    {
        "id": 5,
        "type": "ImageCompositeMasked",
        "widgets": {"x": 0, "y": 0, "resize_source": False},
        "links": {"destination": (2, 0), "source": (4, 1), "mask": (4, 3)},
    },
    {"id": 6, "type": "VAEEncode", "links": {"pixels": (5, 0), "vae": (1, 2)}},
    {"id": 7, "type": "SetLatentNoiseMask", "links": {"samples": (6, 0), "mask": (2, 1)}},
    {
        "id": 8,
        "type": "CLIPTextEncode",
        "title": "Positive",
        "widgets": {"text": "a red cup on a wooden table, photo"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 9,
        "type": "CLIPTextEncode",
        "title": "Negative",
        "widgets": {"text": "blurry, low quality"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 10,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.6},
        "links": {"model": (1, 0), "positive": (8, 0), "negative": (9, 0), "latent_image": (7, 0)},
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
        "widgets": {"filename_prefix": "exemplar/hint_image_inpaint"},
        "links": {"images": (14, 0)},
    },
    {"id": 13, "type": "PreviewImage", "title": "Hint", "links": {"images": (4, 1)}},
]
