"""Diffuse to Choose: adapter create / load / save, hint, injector, DINOv2 image conditioning."""

from __future__ import annotations

import os

import torch

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from . import adapter_patch
from ..common.model_folders import EXEMPLAR_FOLDER, model_file
from ..common.output_names import check_output_name
from .vision_tokens import encode_tokens
from ...models.diffuse_to_choose.adapter import KIND as ADAPTER_KIND, DtCAdapter, save_adapter
from ..common.exemplar_files import files_of_kind
from ...models.diffuse_to_choose.hint import DtCHint, build_hint
from ...models.diffuse_to_choose.hint_image import FIT_MODES, build_hint_images
from ..common.types import ExemplarAdapterType, ExemplarHintType
from ..common.finite import require_finite
from ..common.choices import CROP_CHOICES, require_choice
from ..common.vector_conditioning import with_vector_entries

CATEGORY = "exemplar/diffuse_to_choose"
SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _require_adapter(adapter, name: str = "adapter") -> DtCAdapter:
    if not isinstance(adapter, DtCAdapter):
        raise ValueError(
            f"{name} must be a Diffuse to Choose adapter (from the Diffuse to Choose adapter loader or create node), "
            f"got "
            f"{type(adapter).__name__}"
        )
    return adapter


class DtCAdapterCreate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCAdapterCreate",
            display_name="Create Diffuse to Choose Adapter (untrained)",
            category=CATEGORY,
            is_experimental=True,
            description=(
                "Creates a fresh Diffuse to Choose adapter for a model: the hint encoder is a copy of the model's "
                "UNet encoder (its current weights), FiLM modules and the hint adapter's last layer start at zero "
                "(so the adapter changes nothing until trained), the image projection is seeded random."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="The base model (SD1.x inpainting for the paper's setup; SDXL works too)."
                ),
                io.Int.Input(
                    "image_dim",
                    default=1536,
                    min=1,
                    max=8192,
                    tooltip="Width of the image tokens: 1536 for DINOv2 giant (paper), 1024 for DINOv2 large.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFF,
                    tooltip="Seed of the random initial weights (hint adapter, image projection).",
                ),
            ],
            outputs=[ExemplarAdapterType.Output(display_name="adapter")],
        )

    @classmethod
    def execute(cls, model, image_dim, seed) -> io.NodeOutput:
        return io.NodeOutput(adapter_patch.create_adapter(model, image_dim=image_dim, seed=seed))


class DtCAdapterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCAdapterLoader",
            display_name="Load Diffuse to Choose Adapter",
            category=CATEGORY,
            is_experimental=True,
            description=(
                "Loads a Diffuse to Choose adapter file (safetensors with a dtc_adapter header) from models/exemplar/."
            ),
            inputs=[
                io.Combo.Input(
                    "adapter_name",
                    options=files_of_kind(ADAPTER_KIND),
                    tooltip=(
                        "A Diffuse to Choose adapter in models/exemplar/ (written by Save Diffuse to Choose Adapter "
                        "or a training run); only adapter files are listed."
                    ),
                ),
            ],
            outputs=[ExemplarAdapterType.Output(display_name="adapter")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        return io.NodeOutput(
            adapter_patch.load_adapter(model_file(EXEMPLAR_FOLDER, adapter_name, "adapter_name"))
        )


class DtCAdapterSave(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCAdapterSave",
            display_name="Save Diffuse to Choose Adapter",
            category=CATEGORY,
            is_experimental=True,
            description=(
                "Saves a Diffuse to Choose adapter as safetensors (documented key layout, metadata header) into the "
                "output folder; move it to models/exemplar/ to load it."
            ),
            inputs=[
                ExemplarAdapterType.Input("adapter", tooltip="The adapter to save."),
                io.String.Input(
                    "filename_prefix",
                    default="exemplar/dtc_adapter",
                    tooltip="Path and name prefix inside the output folder.",
                ),
                io.Combo.Input(
                    "dtype", options=list(SAVE_DTYPES), default="fp16", tooltip="Precision of the saved tensors."
                ),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, adapter, filename_prefix, dtype) -> io.NodeOutput:
        filename_prefix = check_output_name(filename_prefix, "filename_prefix", "exemplar/dtc_adapter")
        require_choice("dtype", dtype, SAVE_DTYPES)
        _require_adapter(adapter)
        folder, name, counter, _subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory()
        )
        path = save_adapter(adapter, os.path.join(folder, f"{name}_{counter:05}_.safetensors"), SAVE_DTYPES[dtype])
        return io.NodeOutput(ui={"text": [str(path)]})


def hint_inputs() -> list:
    """The inputs of Diffuse to Choose Hint, and of the deprecated Hint Image node it replaces (same names and
    meaning)."""
    return [
        io.Image.Input("image", tooltip="The source image (e.g. the person photo)."),
        io.Mask.Input(
            "mask",
            tooltip="White = the region to regenerate (e.g. the garment area); any resolution, thresholded at 0.5.",
        ),
        io.Image.Input("reference", tooltip="The item to put there (e.g. a garment product photo)."),
        io.Combo.Input(
            "fit",
            options=list(FIT_MODES),
            default="stretch",
            tooltip="stretch: fill the rectangle; fit: keep the reference's aspect ratio, centred in it.",
        ),
        io.Int.Input(
            "min_side",
            default=8,
            min=1,
            max=4096,
            tooltip="Smallest rectangle side (px) accepted; a smaller rectangle is an error.",
        ),
    ]


class BuildDtCHint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCHint",
            display_name="Diffuse to Choose Hint",
            category=CATEGORY,
            description=(
                "Builds the Diffuse to Choose hint: the reference resized into the largest axis-aligned rectangle "
                "inside the mask on a black image the size of the source, plus the masked source it belongs to."
            ),
            inputs=hint_inputs(),
            outputs=[
                ExemplarHintType.Output(display_name="hint"),
                io.Image.Output(display_name="hint_image"),
                io.Image.Output(display_name="masked_source"),
                io.Mask.Output(
                    display_name="rectangle", tooltip="White = the rectangle the reference was pasted into."
                ),
            ],
        )

    @classmethod
    def execute(cls, image, mask, reference, fit, min_side) -> io.NodeOutput:
        hint = build_hint(image, mask, reference, fit, min_side)
        return io.NodeOutput(hint, hint.hint_image, hint.masked_source, hint.rectangle)


class DtCApply(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCApply",
            display_name="Apply Diffuse to Choose Adapter",
            category=CATEGORY,
            is_experimental=True,
            description=(
                "Patches a copy of the model with the Diffuse to Choose hint path: at every step the hint encoder "
                "(UNet-encoder copy) sees the model input with the adapted hint added to the masked-source latent, "
                "and FiLM modules modulate the UNet's skip features with its features."
            ),
            inputs=[
                io.Model.Input(
                    "model", tooltip="The model the adapter was made for (an inpainting model for the paper's setup)."
                ),
                ExemplarAdapterType.Input(
                    "adapter", tooltip="From Load Diffuse to Choose Adapter or Create Diffuse to Choose Adapter."
                ),
                ExemplarHintType.Input("hint", tooltip="From Diffuse to Choose Hint."),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Scales the FiLM modulation (gamma and beta); 0 leaves the model unchanged.",
                ),
                io.Vae.Input(
                    "vae",
                    optional=True,
                    tooltip="Needed only for a non-inpainting model: encodes the masked source the hint is added to.",
                ),
            ],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, adapter, hint, strength, vae=None) -> io.NodeOutput:
        require_finite(strength=strength)
        _require_adapter(adapter)
        if not isinstance(hint, DtCHint):
            raise ValueError(f"hint must come from the Diffuse to Choose Hint node, got {type(hint).__name__}")
        patched, _ = adapter_patch.apply_hint(model, adapter, hint, strength, vae)
        return io.NodeOutput(patched)


class DtCImageConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDtCImageConditioning",
            display_name="Diffuse to Choose Image Conditioning (DINOv2)",
            category=CATEGORY,
            is_experimental=True,
            description=(
                "Encodes the reference with DINOv2 (a CLIP_VISION) and projects every token (CLS + patches) with "
                "the adapter's image projection into cross-attention conditioning for the main UNet. The negative "
                "is the projection of all-zero tokens."
            ),
            inputs=[
                io.ClipVision.Input(
                    "clip_vision",
                    tooltip="DINOv2 giant (paper) or large from Load CLIP Vision; its width must match the adapter.",
                ),
                io.Image.Input("reference", tooltip="The item image (e.g. the garment)."),
                ExemplarAdapterType.Input("adapter", tooltip="Holds the image projection."),
                io.Int.Input(
                    "resolution",
                    default=224,
                    min=0,
                    max=2048,
                    step=14,
                    tooltip=(
                        "Encoder input size: 224 gives the paper's 257 tokens; 0 = the encoder's own size (518 for "
                        "DINOv2 in ComfyUI)."
                    ),
                ),
                io.Combo.Input(
                    "crop",
                    options=list(CROP_CHOICES),
                    default="center",
                    tooltip="center: resize the short side and centre-crop; none: squash.",
                ),
                io.Conditioning.Input(
                    "text_conditioning",
                    optional=True,
                    tooltip=(
                        "Needed on SDXL: a CLIP Text Encode (SDXL) conditioning whose pooled output and size values "
                        "are copied onto both outputs (SDXL's vector conditioning); its text tokens are not used."
                    ),
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
            ],
        )

    @classmethod
    def execute(cls, clip_vision, reference, adapter, resolution, crop, text_conditioning=None) -> io.NodeOutput:
        require_choice("crop", crop, CROP_CHOICES)
        _require_adapter(adapter)
        tokens = encode_tokens(clip_vision, reference, resolution, crop == "center")
        device = comfy.model_management.intermediate_device()
        with torch.no_grad():
            positive = adapter.project_image(tokens.to(adapter.image_projection.weight.device)).to(
                device, torch.float32
            )
            negative = adapter.project_image(
                torch.zeros_like(tokens[:1]).to(adapter.image_projection.weight.device)
            ).to(device, torch.float32)
        if text_conditioning is not None and not text_conditioning:
            raise ValueError("text_conditioning is empty")
        positive, negative = [[positive, {}]], [[negative, {}]]
        if text_conditioning is not None:
            positive = with_vector_entries(positive, text_conditioning)
            negative = with_vector_entries(negative, text_conditioning)
        return io.NodeOutput(positive, negative)


class HintImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarHintImage",
            display_name="Hint Image (Diffuse to Choose, deprecated)",
            category="exemplar/diffuse_to_choose",
            description=(
                "Deprecated: use Diffuse to Choose Hint, whose hint_image and rectangle outputs are the same two "
                "images. "
                "Builds the Diffuse to Choose hint: a black image the size of the source with the reference "
                "resized into the largest axis-aligned rectangle that fits inside the mask."
            ),
            is_deprecated=True,
            inputs=hint_inputs(),
            outputs=[
                io.Image.Output(display_name="hint"),
                io.Mask.Output(display_name="rectangle"),
            ],
        )

    @classmethod
    def execute(cls, image, mask, reference, fit, min_side) -> io.NodeOutput:
        hints, rectangles = build_hint_images(reference, mask, tuple(image.shape[1:3]), fit, min_side)
        return io.NodeOutput(hints, rectangles)


NODES = [DtCAdapterCreate, DtCAdapterLoader, DtCAdapterSave, BuildDtCHint, DtCApply, DtCImageConditioning, HintImage]
