"""DreamInpainter training: a folder of pairs -> Train DreamInpainter Tokens (projection + learned scorer, decoupling
regularisation; loss, previews, checkpoints) -> the model's own UNet features of the reference -> top-K by the
learned scorer -> appended to the prompt through the learned projection -> inpaint sampling -> pasted back.

Sized for the tiny assets (64 px pairs, a few steps); for SD1.5 use 512 px, K = 24 and many thousands of steps
(docs/training.md).
"""

from __future__ import annotations

from ..tiny_models import TINY_SD15_NAME
from ._training import pairs_node, preview_node, run_widgets, schedule_widgets, source_and_reference

TITLE = "DreamInpainter training: learn the token projection and scorer from pairs"
DESCRIPTION = (
    "A folder of image/reference pairs trains DreamInpainter's token projection and learned top-K scorer (with "
    "decoupling regularisation), then inpaints with them; experimental: no public weights exist."
)

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    pairs_node(2),
    {
        "id": 3,
        "type": "ExemplarDreamInpainterTrain",
        "widgets": {
            "name": "dreaminpainter/tiny_demo",
            **run_widgets(steps=4, learning_rate=1e-3),
            "reference_resolution": 64,
            "block": "auto",
            "timestep": 0,
            "k": 4,
            "trainable": "projection+scorer",
            "lora_rank": 16,
            "lora_alpha": 16.0,
            "selection_noise": 1.0,
            "selection_temperature": 1.0,
            "decoupling_probability": 0.5,
            "subject_caption": "",
            "mask_mode": "mixed",
            "fine_probability": 0.5,
            "flip_probability": 0.5,
            **schedule_widgets(checkpoint_every=2, preview_every=2),
        },
        "links": {"model": (1, 0), "vae": (1, 2), "clip": (1, 1), "dataset": (2, 0)},
    },
    preview_node(4, "Masked source | reference | predicted x0", (3, 4)),
    *source_and_reference(5, "Reference"),
    {
        "id": 7,
        "type": "ExemplarReferenceEncodeUNet",
        "widgets": {"block": "auto", "timestep": 0, "resolution": 64, "crop": "center", "blank_background": False},
        "links": {"model": (1, 0), "vae": (1, 2), "reference": (6, 0)},
    },
    {
        "id": 8,
        "type": "ExemplarTokenSelectTopK",
        "widgets": {"k": 4, "criterion": "learned", "selection": "top_k", "candidate_pool": 96, "mask_threshold": 0.5},
        "links": {"tokens": (7, 0), "scorer": (3, 0)},
    },
    {
        "id": 9,
        "type": "CLIPTextEncode",
        "title": "Positive",
        "widgets": {"text": "a striped patch on a grey wall"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 10,
        "type": "CLIPTextEncode",
        "title": "Negative",
        "widgets": {"text": "blurry, low quality"},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 11,
        "type": "ExemplarReferenceCrossAttention",
        "widgets": {"mode": "append", "weight": 1.0},
        "links": {"conditioning": (9, 0), "tokens": (8, 0), "projection": (3, 1)},
    },
    {"id": 12, "type": "VAEEncode", "links": {"pixels": (5, 0), "vae": (1, 2)}},
    {"id": 13, "type": "SetLatentNoiseMask", "links": {"samples": (12, 0), "mask": (5, 1)}},
    {
        "id": 14,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "links": {"model": (1, 0), "positive": (11, 0), "negative": (10, 0), "latent_image": (13, 0)},
    },
    {"id": 15, "type": "VAEDecode", "links": {"samples": (14, 0), "vae": (1, 2)}},
    {
        "id": 16,
        "type": "ImageCompositeMasked",
        "title": "Keep the background",
        "widgets": {"x": 0, "y": 0, "resize_source": False},
        "links": {"destination": (5, 0), "source": (15, 0), "mask": (5, 1)},
    },
    {
        "id": 17,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreaminpainter_train"},
        "links": {"images": (16, 0)},
    },
]
