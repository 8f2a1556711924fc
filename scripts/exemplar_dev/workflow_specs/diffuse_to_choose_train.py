"""Diffuse to Choose training: a folder of pairs -> Train DtC Adapter (loss, previews, checkpoints) -> the trained
adapter straight into a try-on (DINOv2 conditioning, hint, Apply DtC Adapter, DDIM 40 steps, guidance 5).

Sized for the tiny assets (64 px pairs, a few steps); for SD1.5 inpainting use 512 px, DINOv2 giant at 224 px,
lr 1e-5 and tens of thousands of steps (docs/training.md).
"""

from __future__ import annotations

from ..asset_builders.diffuse_to_choose import DINOV2_NAME, GARMENT_IMAGE, PERSON_IMAGE
from ..model_files import VGG16
from ..tiny_dtc import TINY_SD15_INPAINT_NAME
from ._training import pairs_node, preview_node, run_widgets, schedule_widgets

TITLE = "Diffuse to Choose: train an adapter"
DESCRIPTION = (
    "Train the Diffuse-to-Choose hint adapter on a folder of image pairs (loss, previews, checkpoints), "
    "then try it on."
)

SPEC = [
    {
        "id": 1,
        "type": "CheckpointLoaderSimple",
        "title": "Inpainting model (9-channel SD1.5)",
        "widgets": {"ckpt_name": TINY_SD15_INPAINT_NAME},
    },
    {
        "id": 2,
        "type": "CLIPVisionLoader",
        "title": "DINOv2 (giant in the paper)",
        "widgets": {"clip_name": DINOV2_NAME},
    },
    {
        "id": 3,
        "type": "ExemplarDtCAdapterCreate",
        "widgets": {"image_dim": 1024, "seed": 0},
        "links": {"model": (1, 0)},
    },
    pairs_node(4),
    {
        "id": 5,
        "type": "ExemplarDtCTrain",
        "widgets": {
            "adapter_name": "dtc/tiny_demo",
            **run_widgets(steps=20, learning_rate=1e-4),
            "reference_size": 112,
            "trainable": "all",
            "mask_mode": "mixed",
            "fine_probability": 0.5,
            "flip_probability": 0.5,
            "rotation_degrees": 10.0,
            "condition_dropout": 0.1,
            "perceptual_weight": 0.1,
            "vgg16": VGG16.name,
            **schedule_widgets(checkpoint_every=10, preview_every=5),
        },
        "links": {"model": (1, 0), "vae": (1, 2), "clip_vision": (2, 0), "adapter": (3, 0), "dataset": (4, 0)},
    },
    preview_node(6, "Source | hint | predicted x0", (5, 3)),
    {"id": 7, "type": "LoadImage", "title": "Person (mask the garment area)", "widgets": {"image": PERSON_IMAGE}},
    {"id": 8, "type": "LoadImage", "title": "Garment", "widgets": {"image": GARMENT_IMAGE}},
    {
        "id": 9,
        "type": "ExemplarDtCImageConditioning",
        "widgets": {"resolution": 112, "crop": "center"},
        "links": {"clip_vision": (2, 0), "reference": (8, 0), "adapter": (5, 0)},
    },
    {
        "id": 10,
        "type": "InpaintModelConditioning",
        "widgets": {"noise_mask": True},
        "links": {"positive": (9, 0), "negative": (9, 1), "vae": (1, 2), "pixels": (7, 0), "mask": (7, 1)},
    },
    {
        "id": 11,
        "type": "ExemplarDtCHint",
        "widgets": {"fit": "stretch", "min_side": 8},
        "links": {"image": (7, 0), "mask": (7, 1), "reference": (8, 0)},
    },
    {
        "id": 12,
        "type": "ExemplarDtCApply",
        "widgets": {"strength": 1.0},
        "links": {"model": (1, 0), "adapter": (5, 0), "hint": (11, 0)},
    },
    {
        "id": 13,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 40, "cfg": 5.0, "sampler_name": "ddim", "scheduler": "ddim_uniform",
                    "denoise": 1.0},
        "links": {"model": (12, 0), "positive": (10, 0), "negative": (10, 1), "latent_image": (10, 2)},
    },
    {"id": 14, "type": "VAEDecode", "links": {"samples": (13, 0), "vae": (1, 2)}},
    {
        "id": 15,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/diffuse_to_choose_train"},
        "links": {"images": (14, 0)},
    },
]
