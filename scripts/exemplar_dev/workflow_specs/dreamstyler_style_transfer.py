"""DreamStyler style transfer: img2img of a content image with a depth ControlNet; the staged conditioning
(one entry per timestep stage) goes through the ControlNet, so the ControlNet also sees each stage's prompt."""

from __future__ import annotations

from ..tiny_dreamstyler import CONTENT_IMAGE, DEPTH_IMAGE, TINY_CONTROLNET_NAME, TINY_STAGED_EMBEDDING_NAME, TOKEN
from ..tiny_models import TINY_SD15_NAME

# the official code's
NEGATIVE = "low resolution, poorly drawn, worst quality, low quality, normal quality, blurry image, artifact"

TITLE = "DreamStyler: style transfer with a depth ControlNet"
DESCRIPTION = "Image-to-image of a content picture in a learned style, its layout held by a depth ControlNet."

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "ExemplarLoadDreamStylerEmbedding", "widgets": {"embedding_name": TINY_STAGED_EMBEDDING_NAME}},
    {
        "id": 3,
        "type": "ExemplarDreamStylerTextEncode",
        "title": "Positive (staged)",
        "widgets": {"text": f"A painting of a house in the style of {TOKEN}"},
        "links": {"clip": (1, 1), "staged_embedding": (2, 0)},
    },
    {"id": 4, "type": "CLIPTextEncode", "title": "Negative", "widgets": {"text": NEGATIVE}, "links": {"clip": (1, 1)}},
    {"id": 5, "type": "LoadImage", "title": "Content image", "widgets": {"image": CONTENT_IMAGE}},
    {"id": 6, "type": "LoadImage", "title": "Depth map of the content", "widgets": {"image": DEPTH_IMAGE}},
    {
        "id": 7,
        "type": "ControlNetLoader",
        "title": "Depth ControlNet",
        "widgets": {"control_net_name": TINY_CONTROLNET_NAME},
    },
    {
        "id": 8,
        "type": "ControlNetApplyAdvanced",
        "widgets": {"strength": 0.8, "start_percent": 0.0, "end_percent": 1.0},
        "links": {"positive": (3, 0), "negative": (4, 0), "control_net": (7, 0), "image": (6, 0), "vae": (1, 2)},
    },
    {"id": 9, "type": "VAEEncode", "links": {"pixels": (5, 0), "vae": (1, 2)}},
    {
        "id": 10,
        "type": "KSampler",
        "widgets": {
            "seed": 0,
            "steps": 30,
            "cfg": 7.5,
            "sampler_name": "uni_pc",
            "scheduler": "normal",
            "denoise": 0.8,
        },
        "links": {"model": (1, 0), "positive": (8, 0), "negative": (8, 1), "latent_image": (9, 0)},
    },
    {"id": 11, "type": "VAEDecode", "links": {"samples": (10, 0), "vae": (1, 2)}},
    {
        "id": 12,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreamstyler_style_transfer"},
        "links": {"images": (11, 0)},
    },
]
