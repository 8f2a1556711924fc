"""DreamBooth on SDXL: class images from the frozen model -> train a LoRA with prior preservation -> stock Load LoRA
-> sample.

LoRA on the SDXL UNet (and, with train_text_encoder, on both text encoders); class images carry SDXL's size
conditioning. Sized for the tiny test model (128 px, a handful of steps); with the real SDXL base use 1024 px, about 200
class images and 800 training steps.
"""

from __future__ import annotations

from ..asset_builders.dreambooth import SUBJECT_IMAGES
from ..tiny_sdxl_base import TINY_SDXL_NAME, WORKFLOW_SDXL_LORA as WORKFLOW_LORA

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SDXL_NAME}},
    {"id": 2, "type": "LoadImage", "title": "Subject photo 1", "widgets": {"image": SUBJECT_IMAGES[0]}},
    {"id": 3, "type": "LoadImage", "title": "Subject photo 2", "widgets": {"image": SUBJECT_IMAGES[1]}},
    {"id": 4, "type": "ImageBatch", "links": {"image1": (2, 0), "image2": (3, 0)}},
    {
        "id": 5,
        "type": "ExemplarDreamBoothIdentifier",
        "widgets": {"identifier": "sks", "count": 10, "min_rank": 40000},
        "links": {"clip": (1, 1)},
    },
    {
        "id": 6,
        "type": "StringConcatenate",
        "title": "'a' + identifier",
        "widgets": {"string_a": "a", "string_b": "sks", "delimiter": " "},
        "links": {"string_b": (5, 0)},
    },
    {
        "id": 18,
        "type": "StringConcatenate",
        "title": "Instance prompt",
        "widgets": {"string_a": "a sks", "string_b": "dog", "delimiter": " "},
        "links": {"string_a": (6, 0)},
    },
    {
        "id": 7,
        "type": "ExemplarDreamBoothClassImages",
        "widgets": {
            "class_noun": "dog",
            "count": 4,
            "width": 128,
            "height": 128,
            "steps": 4,
            "cfg": 5.0,
            "seed": 0,
            "batch_size": 2,
        },
        "links": {"model": (1, 0), "clip": (1, 1), "vae": (1, 2)},
    },
    {"id": 8, "type": "PreviewImage", "title": "Class images", "links": {"images": (7, 0)}},
    {
        "id": 9,
        "type": "ExemplarDreamBoothTrain",
        "widgets": {
            "instance_prompt": "a sks dog",
            "lora_name": WORKFLOW_LORA.removesuffix(".safetensors"),
            "steps": 8,
            "learning_rate": 1e-4,
            "rank": 4,
            "alpha": 4.0,
            "prior_loss_weight": 1.0,
            "resolution": 128,
            "training_seed": 0,
            "overwrite": True,
        },
        "links": {
            "model": (1, 0),
            "clip": (1, 1),
            "vae": (1, 2),
            "instance_images": (4, 0),
            "class_images": (7, 0),
            "class_prompt": (7, 1),
            "instance_prompt": (18, 0),
        },
    },
    {
        "id": 10,
        "type": "LoraLoader",
        "widgets": {"lora_name": WORKFLOW_LORA, "strength_model": 1.0, "strength_clip": 1.0},
        "links": {"model": (9, 0), "clip": (9, 1)},
    },
    {
        "id": 19,
        "type": "StringConcatenate",
        "title": "Sampling prompt",
        "widgets": {"string_a": "a sks dog", "string_b": "on a beach, photo", "delimiter": " "},
        "links": {"string_a": (18, 0)},
    },
    {
        "id": 11,
        "type": "CLIPTextEncode",
        "title": "Positive (identifier prompt)",
        "widgets": {"text": "a sks dog on a beach, photo"},
        "links": {"clip": (10, 1), "text": (19, 0)},
    },
    {
        "id": 12,
        "type": "CLIPTextEncode",
        "title": "Negative",
        "widgets": {"text": "blurry, low quality"},
        "links": {"clip": (10, 1)},
    },
    {"id": 13, "type": "EmptyLatentImage", "widgets": {"width": 128, "height": 128, "batch_size": 1}},
    {
        "id": 14,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "links": {"model": (10, 0), "positive": (11, 0), "negative": (12, 0), "latent_image": (13, 0)},
    },
    {"id": 15, "type": "VAEDecode", "links": {"samples": (14, 0), "vae": (1, 2)}},
    {
        "id": 16,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/dreambooth_sdxl"},
        "links": {"images": (15, 0)},
    },
]
