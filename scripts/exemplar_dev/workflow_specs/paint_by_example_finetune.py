"""Paint by Example fine-tuning: a folder of pairs -> Fine-tune Paint by Example (LoRA + encoder head + learnable
vector; loss, previews, checkpoints) -> the fine-tuned model and encoder straight into a PbE inpaint (cfg 5).

Sized for the tiny assets (64 px pairs, a few steps); for the official checkpoint use 512 px, lr 1e-5 and many
thousands of steps (docs/training.md).
"""

from __future__ import annotations

from ..tiny_pbe import TINY_PBE_NAME
from ._training import pairs_node, preview_node, run_widgets, schedule_widgets, source_and_reference

TITLE = "Paint by Example fine-tuning: adapt PbE to your objects"
DESCRIPTION = (
    "A folder of image/reference pairs fine-tunes Paint by Example (a LoRA on the UNet, the encoder head and the "
    "learnable vector) with the official augmentations and masks, then inpaints with the result."
)

SPEC = [
    {"id": 1, "type": "ExemplarPbECheckpointLoader", "widgets": {"ckpt_name": TINY_PBE_NAME}},
    pairs_node(2),
    {
        "id": 3,
        "type": "ExemplarPbETrain",
        "widgets": {
            "ckpt_name": "pbe/tiny_finetune",
            **run_widgets(steps=4, learning_rate=1e-4),
            "trainable": "lora+head+vector",
            "lora_rank": 4,
            "lora_alpha": 4.0,
            "mask_mode": "irregular",
            "reference_source": "reference",
            "reference_dropout": 0.2,
            "flip_probability": 0.5,
            "rotation_degrees": 20.0,
            "blur_probability": 0.3,
            "elastic_probability": 0.3,
            **schedule_widgets(checkpoint_every=2, preview_every=2),
        },
        "links": {"model": (1, 0), "vae": (1, 1), "exemplar_encoder": (1, 2), "dataset": (2, 0)},
    },
    preview_node(4, "Masked source | reference | predicted x0", (3, 4)),
    *source_and_reference(5, "Reference (exemplar)"),
    {
        "id": 7,
        "type": "ExemplarPbEEncode",
        "widgets": {"crop": "squash"},
        "links": {"exemplar_encoder": (3, 1), "reference": (6, 0)},
    },
    {
        "id": 8,
        "type": "ExemplarPbEInpaintConditioning",
        "widgets": {"mask_threshold": 0.5, "noise_mask": True},
        "links": {"positive": (7, 0), "negative": (7, 1), "vae": (1, 1), "pixels": (5, 0), "mask": (5, 1)},
    },
    {
        "id": 9,
        "type": "KSampler",
        "widgets": {"seed": 0, "steps": 30, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "links": {"model": (3, 0), "positive": (8, 0), "negative": (8, 1), "latent_image": (8, 2)},
    },
    {"id": 10, "type": "VAEDecode", "links": {"samples": (9, 0), "vae": (1, 1)}},
    {
        "id": 11,
        "type": "SaveImage",
        "widgets": {"filename_prefix": "exemplar/paint_by_example_finetune"},
        "links": {"images": (10, 0)},
    },
]
