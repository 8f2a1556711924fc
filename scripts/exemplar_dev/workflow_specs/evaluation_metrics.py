"""Inpaint two samples, then measure them: DINO identity against the reference, background preservation
(PSNR / SSIM / MSE / Delta E outside and inside the mask), the VGG Gram style score, and one figure of it all."""

from __future__ import annotations

from ..asset_builders.diffuse_to_choose import DINOV2_NAME
from ..assets import REFERENCE_IMAGE, SOURCE_IMAGE
from ..tiny_evaluation import RANDOM_VGG16_NAME
from ..tiny_models import TINY_SD15_NAME

TITLE = "Evaluation: the papers' metrics"
DESCRIPTION = (
    "CLIP-I, CLIP-T and DINO similarity, background PSNR/SSIM/Delta E and the style score, shown on the "
    "nodes and plotted."
)

SPEC = [
    {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": TINY_SD15_NAME}},
    {"id": 2, "type": "LoadImage", "title": "Source (draw the mask here)", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 3, "type": "LoadImage", "title": "Reference", "widgets": {"image": REFERENCE_IMAGE}},
    {"id": 4, "type": "VAEEncode", "links": {"pixels": (2, 0), "vae": (1, 2)}},
    {"id": 5, "type": "SetLatentNoiseMask", "links": {"samples": (4, 0), "mask": (2, 1)}},
    {"id": 6, "type": "RepeatLatentBatch", "widgets": {"amount": 2}, "links": {"samples": (5, 0)}},
    {
        "id": 7,
        "type": "CLIPTextEncode",
        "title": "Positive",
        "widgets": {"text": "a red cup on a wooden table, photo"},
        "links": {"clip": (1, 1)},
    },
    {"id": 8, "type": "CLIPTextEncode", "title": "Negative", "widgets": {"text": "blurry"}, "links": {"clip": (1, 1)}},
    {
        "id": 9,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 20, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "links": {"model": (1, 0), "positive": (7, 0), "negative": (8, 0), "latent_image": (6, 0)},
    },
    {"id": 10, "type": "VAEDecode", "links": {"samples": (9, 0), "vae": (1, 2)}},
    {"id": 11, "type": "CLIPVisionLoader", "title": "DINOv2 (or a CLIP vision model for CLIP-I)",
     "widgets": {"clip_name": DINOV2_NAME}},
    {
        "id": 12,
        "type": "ExemplarImageSimilarity",
        "widgets": {"pairing": "all_pairs", "score": "cosine", "crop": "center", "resolution": 224},
        "links": {"clip_vision": (11, 0), "images": (10, 0), "references": (3, 0)},
    },
    {
        "id": 13,
        "type": "ExemplarBackgroundPreservation",
        "links": {"source": (2, 0), "result": (10, 0), "mask": (2, 1)},
    },
    {
        "id": 14, "type": "ExemplarStyleScore",
        "widgets": {"vgg_name": RANDOM_VGG16_NAME, "patch_fraction": 0.5, "patch_size": 112},
        "links": {"images": (10, 0), "style_image": (3, 0)},
    },
    {
        "id": 15, "type": "ExemplarPlotMetrics",
        "widgets": {"x_label": "sample", "x_values": ""},
        "links": {"metrics_1": (12, 1), "metrics_2": (13, 8), "metrics_3": (14, 1), "images": (10, 0)},
    },
    {
        "id": 16,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/evaluation"},
        "links": {"images": (15, 0)},
    },
]
