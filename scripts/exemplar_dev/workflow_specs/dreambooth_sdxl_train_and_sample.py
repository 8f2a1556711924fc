"""DreamBooth on SDXL: `dreambooth_train_and_sample` on the SDXL checkpoint. Class images from the frozen model (with
SDXL's size conditioning) -> a LoRA on the SDXL UNet (with train_text_encoder, on both text encoders) with prior
preservation -> sample from the trainer's outputs (the LoRA applied), one queue. Sized for the tiny test model
(128 px, a handful of steps); with the real SDXL base use 1024 px, about 200 class images and 800 training steps."""

from __future__ import annotations

from ..asset_builders.dreambooth import WORKFLOW_LORA
from ..tiny_models import TINY_SD15_NAME
from ..tiny_sdxl_base import TINY_SDXL_NAME, WORKFLOW_SDXL_LORA, retargeted
from .dreambooth_train_and_sample import SPEC as SD15_SPEC

TITLE = "DreamBooth on SDXL: teach a subject from a few photos, then sample it"
DESCRIPTION = (
    "Class images, a LoRA on the SDXL UNet and both text encoders with prior preservation, and a sample "
    "from the trained model, in one queue."
)

SPEC = retargeted(
    SD15_SPEC,
    {
        TINY_SD15_NAME: TINY_SDXL_NAME,
        WORKFLOW_LORA: WORKFLOW_SDXL_LORA,
        WORKFLOW_LORA.removesuffix(".safetensors"): WORKFLOW_SDXL_LORA.removesuffix(".safetensors"),
        "exemplar/dreambooth": "exemplar/dreambooth_sdxl",
    },
)
