"""Paint by Example: source with a drawn mask + reference -> PbE encode + inpaint conditioning -> stock KSampler
(cfg 5) -> the source pasted back outside the mask."""

from __future__ import annotations

from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE
from ..tiny_pbe import TINY_PBE_NAME

TITLE = "Paint by Example: put a reference object into a masked region"
DESCRIPTION = (
    "Draw a mask on the source, give a reference photo: the object appears in the mask, blended in; the "
    "background is kept exactly."
)

SPEC = [
    {"id": 1, "type": "ExemplarPbECheckpointLoader", "widgets": {"ckpt_name": TINY_PBE_NAME}},
    {"id": 2, "type": "LoadImage", "title": "Source (draw the mask here)", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Reference (exemplar)", "widgets": {"image": REFERENCE_IMAGE}},
    {
        "id": 4,
        "type": "ExemplarPbEEncode",
        "widgets": {"crop": "squash"},
        "links": {"exemplar_encoder": (1, 2), "reference": (3, 0)},
    },
    {
        "id": 5,
        "type": "ExemplarPbEInpaintConditioning",
        "widgets": {"mask_threshold": 0.5, "noise_mask": True},
        "links": {"positive": (4, 0), "negative": (4, 1), "vae": (1, 1), "pixels": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 6,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 30, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "links": {"model": (1, 0), "positive": (5, 0), "negative": (5, 1), "latent_image": (5, 2)},
    },
    {"id": 7, "type": "VAEDecode", "links": {"samples": (6, 0), "vae": (1, 1)}},
    {
        "id": 9,
        "type": "ExemplarPasteBack",
        "title": "Keep the background",
        "widgets": {"feather": 8, "color_match": "off", "ring": 16},
        "links": {"image": (7, 0), "source": (2, 0), "mask": (2, 1)},
    },
    {
        "id": 8,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/paint_by_example"},
        "links": {"images": (9, 0)},
    },
]
