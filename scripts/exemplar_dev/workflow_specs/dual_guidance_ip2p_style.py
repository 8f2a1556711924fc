"""Two-condition (InstructPix2Pix-form) guidance on an img2img edit: the positive adds a style to the
middle (content-only) prompt, so text_scale sets how much style and middle_scale how much content.
Top: the KSampler-shaped node; bottom: the same guidance as a GUIDER for SamplerCustomAdvanced."""

from __future__ import annotations

from ..assets import SOURCE_IMAGE
from ..tiny_models import TINY_SD15_NAME

TITLE = "Dual guidance: two-condition CFG"
DESCRIPTION = (
    "Image and text guidance with separate scales (InstructPix2Pix form), as a KSampler-shaped node "
    "and as a GUIDER."
)

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "LoadImage", "title": "Source", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 3, "type": "VAEEncode", "links": {"pixels": (2, 0), "vae": (1, 2)}},
    {
        "id": 4,
        "type": "CLIPTextEncode",
        "title": "Positive (content + style)",
        "widgets": {"text": "a red cup on a wooden table, watercolor painting"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 5,
        "type": "CLIPTextEncode",
        "title": "Middle (content only)",
        "widgets": {"text": "a red cup on a wooden table"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 6,
        "type": "CLIPTextEncode",
        "title": "Negative",
        "widgets": {"text": "blurry, low quality"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 7,
        "type": "ExemplarDualGuidanceKSampler",
        "widgets": {
            "seed": 0,
            "steps": 20,
            "text_scale": 5.0,
            "middle_scale": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 0.75,
            "guidance": "regular",
        },
        "links": {"model": (1, 0), "positive": (4, 0), "middle": (5, 0), "negative": (6, 0), "latent_image": (3, 0)},
    },
    {"id": 8, "type": "VAEDecode", "links": {"samples": (7, 0), "vae": (1, 2)}},
    {
        "id": 9,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dual_guidance_ksampler"},
        "links": {"images": (8, 0)},
    },
    {
        "id": 10,
        "type": "ExemplarDualCFGGuider",
        "widgets": {"cfg_conds": 5.0, "cfg_cond2_negative": 7.0, "style": "nested"},
        "links": {"model": (1, 0), "cond1": (4, 0), "cond2": (5, 0), "negative": (6, 0)},
    },
    {"id": 11, "type": "RandomNoise", "widgets": {"noise_seed": 0}},
    {"id": 12, "type": "KSamplerSelect", "widgets": {"sampler_name": "euler"}},
    {
        "id": 13,
        "type": "BasicScheduler",
        "widgets": {"scheduler": "normal", "steps": 20, "denoise": 0.75},
        "links": {"model": (1, 0)},
    },
    {
        "id": 14,
        "type": "SamplerCustomAdvanced",
        "links": {"noise": (11, 0), "guider": (10, 0), "sampler": (12, 0), "sigmas": (13, 0), "latent_image": (3, 0)},
    },
    {"id": 15, "type": "VAEDecode", "links": {"samples": (14, 0), "vae": (1, 2)}},
    {
        "id": 16,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dual_guidance_guider"},
        "links": {"images": (15, 0)},
    },
]
