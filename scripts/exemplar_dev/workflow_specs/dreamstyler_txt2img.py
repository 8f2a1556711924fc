"""DreamStyler text-to-image: a staged embedding (one token vector per timestep stage) in context-aware
prompts, sampled with the four-prediction style-and-context guidance (full, context-only, style-only,
negative) at the official scales."""

from __future__ import annotations

from ..tiny_dreamstyler import TINY_STAGED_EMBEDDING_NAME
from ..tiny_models import TINY_SD15_NAME

TITLE = "DreamStyler: text-to-image in a learned style"
DESCRIPTION = "A staged DreamStyler embedding in context-aware prompts, sampled with style-and-context guidance."

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "ExemplarLoadDreamStylerEmbedding", "widgets": {"embedding_name": TINY_STAGED_EMBEDDING_NAME}},
    {
        "id": 3,
        "type": "ExemplarDreamStylerStyleContextEncode",
        "widgets": {"caption": "a dog"},
        "links": {"clip": (1, 1), "staged_embedding": (2, 0)},
    },
    {"id": 4, "type": "EmptyLatentImage", "widgets": {"width": 512, "height": 512, "batch_size": 1}},
    {
        "id": 5,
        "type": "ExemplarStyleContextKSampler",
        "widgets": {
            "seed": 0,
            "steps": 25,
            "sampler_name": "dpmpp_2m",
            "scheduler": "sgm_uniform",
            "denoise": 1.0,
            "neg_scale": 5.0,
            "style_scale": 0.5,
            "context_scale": 3.0,
            "form": "official",
        },
        "links": {
            "model": (1, 0),
            "positive": (3, 0),
            "context": (3, 1),
            "style": (3, 2),
            "negative": (3, 3),
            "latent_image": (4, 0),
        },
    },
    {"id": 6, "type": "VAEDecode", "links": {"samples": (5, 0), "vae": (1, 2)}},
    {
        "id": 7,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreamstyler_txt2img"},
        "links": {"images": (6, 0)},
    },
]
