"""DreamStyler text-to-image: a staged embedding (one token vector per timestep stage) in the prompt, stock KSampler."""

from __future__ import annotations

from ..tiny_dreamstyler import TINY_STAGED_EMBEDDING_NAME, TOKEN
from ..tiny_models import TINY_SD15_NAME

NEGATIVE = "low resolution, poorly drawn, worst quality, low quality, normal quality, blurry image, artifact"

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "ExemplarLoadDreamStylerEmbedding", "widgets": {"embedding_name": TINY_STAGED_EMBEDDING_NAME}},
    {
        "id": 3,
        "type": "ExemplarDreamStylerTextEncode",
        "title": "Positive (staged)",
        "widgets": {"text": f"A painting of a dog in the style of {TOKEN}"},
        "links": {"clip": (1, 1), "staged_embedding": (2, 0)},
    },
    {"id": 4, "type": "CLIPTextEncode", "title": "Negative", "widgets": {"text": NEGATIVE}, "links": {"clip": (1, 1)}},
    {"id": 5, "type": "EmptyLatentImage", "widgets": {"width": 512, "height": 512, "batch_size": 1}},
    {
        "id": 6,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0},
        "links": {"model": (1, 0), "positive": (3, 0), "negative": (4, 0), "latent_image": (5, 0)},
    },
    {"id": 7, "type": "VAEDecode", "links": {"samples": (6, 0), "vae": (1, 2)}},
    {"id": 8, "type": "SaveImage", "widgets": {"filename_prefix": "exemplar/dreamstyler_txt2img"}, "links": {"images": (7, 0)}},
]
