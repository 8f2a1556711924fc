"""Paint by Example as native ComfyUI nodes: loaders, exemplar encoding, inpaint conditioning, conversion."""

from __future__ import annotations

import os

import comfy.model_management
import folder_paths
import node_helpers
from comfy_api.latest import io

from . import loader
from ...models.paint_by_example.checkpoint import convert_to_safetensors
from ...models.common.masks import binary_mask, blank_outside_mask
from ...models.paint_by_example.inputs import CROP_MODES, inpaint_inputs, reference_pixels
from ..common.types import ExemplarEncoderType
from ..common.output_names import check_output_name
from ..common.finite import require_finite

_OUTPUTS = [
    io.Model.Output(display_name="MODEL"),
    io.Vae.Output(display_name="VAE"),
    ExemplarEncoderType.Output(display_name="exemplar_encoder"),
]


class PbECheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbECheckpointLoader",
            display_name="Load Paint-by-Example Checkpoint",
            category="exemplar/paint_by_example",
            description=(
                "Loads the official Paint-by-Example single-file checkpoint (.ckpt read with weights_only=True, "
                "or .safetensors) from models/checkpoints: a ComfyUI MODEL whose 9-channel input is "
                "[x_t, masked-image latent, keep-mask], its VAE, and the exemplar encoder (CLIP ViT-L/14 + mapper "
                "+ projection + learned unconditional vector). A plain SD checkpoint is refused with what was found."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=loader.pbe_checkpoints(),
                    tooltip=(
                        "The Paint-by-Example checkpoint in models/checkpoints (model.ckpt or its .safetensors "
                        "conversion); only Paint-by-Example files are listed (told from their headers)."
                    ),
                ),
            ],
            outputs=list(_OUTPUTS),
        )

    @classmethod
    def execute(cls, ckpt_name) -> io.NodeOutput:
        return io.NodeOutput(*loader.load_checkpoint(folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)))


class PbEDiffusersLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbEDiffusersLoader",
            display_name="Load Paint-by-Example (diffusers folder)",
            category="exemplar/paint_by_example",
            description=(
                "Loads a diffusers PaintByExamplePipeline folder (unet/, vae/, image_encoder/) from models/diffusers "
                "as native ComfyUI objects: MODEL, VAE and the exemplar encoder (no diffusers code at run time)."
            ),
            inputs=[
                io.Combo.Input(
                    "folder",
                    options=loader.list_diffusers_folders(),
                    tooltip=(
                        "A folder in models/diffusers holding unet/, vae/ and image_encoder/ (e.g. "
                        "Fantasy-Studio/Paint-by-Example)."
                    ),
                ),
            ],
            outputs=list(_OUTPUTS),
        )

    @classmethod
    def execute(cls, folder) -> io.NodeOutput:
        return io.NodeOutput(*loader.load_diffusers_folder(loader.diffusers_folder_path(folder)))


class PbEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbEEncode",
            display_name="Paint-by-Example Encode Reference",
            category="exemplar/paint_by_example",
            description=(
                "Encodes reference image(s) with the Paint-by-Example exemplar encoder: positive CONDITIONING is one "
                "768-d token per reference (B x 1 x 768), negative holds the learned unconditional vector (PbE's "
                "classifier-free guidance uses it instead of an empty prompt). No text is involved."
            ),
            inputs=[
                ExemplarEncoderType.Input(
                    "exemplar_encoder", tooltip="From Load Paint-by-Example Checkpoint / diffusers folder."
                ),
                io.Image.Input(
                    "reference", tooltip="The exemplar object; a batch gives a batch of conditionings (one per image)."
                ),
                io.Combo.Input(
                    "crop",
                    options=list(CROP_MODES),
                    default="squash",
                    tooltip=(
                        "squash: resize the whole image to 224x224 (official PbE code); center: short side to 224 "
                        "and centre crop (diffusers)."
                    ),
                ),
                io.Mask.Input(
                    "reference_mask",
                    optional=True,
                    tooltip=(
                        "Optional, white = the object: everything outside is painted white before encoding (blanks "
                        "the background)."
                    ),
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
            ],
        )

    @classmethod
    def execute(cls, exemplar_encoder, reference, crop, reference_mask=None) -> io.NodeOutput:
        if not isinstance(exemplar_encoder, loader.PbEExemplarEncoder):
            raise ValueError(
                f"exemplar_encoder is a {type(exemplar_encoder).__name__}; expected the Paint-by-Example encoder "
                "from Load Paint-by-Example Checkpoint"
            )
        if reference_mask is not None:
            if reference_mask.shape[0] not in (1, reference.shape[0]):
                raise ValueError(
                    f"reference_mask has batch {reference_mask.shape[0]}; expected 1 or the reference batch "
                    f"{reference.shape[0]}"
                )
            reference = blank_outside_mask(reference, reference_mask)
        pixels = reference_pixels(reference, exemplar_encoder.image_size, crop)
        context = exemplar_encoder.encode(pixels)
        uncond = exemplar_encoder.unconditional(context.shape[0])
        return io.NodeOutput([[context, {}]], [[uncond, {}]])


class PbEInpaintConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbEInpaintConditioning",
            display_name="Paint-by-Example Inpaint Conditioning",
            category="exemplar/paint_by_example",
            description=(
                "Attaches the source image and mask to both conditionings the way Paint by Example expects: the VAE "
                "latent of the masked source (hole = grey) and the keep-mask (1 = keep), concatenated after x_t by the "
                "PbE MODEL. Also outputs the source latent with a noise mask so the background stays. Soft masks are "
                "thresholded at 0.5 as in the official code."
            ),
            inputs=[
                io.Conditioning.Input("positive", tooltip="From Paint-by-Example Encode Reference (positive)."),
                io.Conditioning.Input(
                    "negative", tooltip="From Paint-by-Example Encode Reference (negative: the learned vector)."
                ),
                io.Vae.Input("vae", tooltip="The VAE of the Paint-by-Example checkpoint."),
                io.Image.Input("pixels", tooltip="The source image to paint into."),
                io.Mask.Input(
                    "mask", tooltip="White = the region to fill with the exemplar (ComfyUI convention); any resolution."
                ),
                io.Float.Input(
                    "mask_threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="keep = (1 - mask >= threshold); 0.5 is the official binarisation of soft masks.",
                ),
                io.Boolean.Input(
                    "noise_mask",
                    default=True,
                    tooltip="Set the hole as the latent's noise mask, so the sampler keeps the background exactly.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Latent.Output(display_name="latent"),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, vae, pixels, mask, mask_threshold=0.5, noise_mask=True) -> io.NodeOutput:
        require_finite(mask_threshold=mask_threshold)
        prepared = inpaint_inputs(pixels, mask, mask_threshold)
        masked_latent = vae.encode(prepared.masked)
        source_latent = vae.encode(prepared.pixels)
        # latent cells are 8x8 pixel blocks, so bilinear weights are exact halves and the hole at latent
        # size is exactly 1 - the official keep-mask resized and binarised at 0.5
        hole_latent = binary_mask(prepared.hole, tuple(masked_latent.shape[-2:]))
        values = {"concat_latent_image": masked_latent, "concat_mask": hole_latent[:, None]}
        latent = {"samples": source_latent}
        if noise_mask:
            latent["noise_mask"] = prepared.hole[:, None].to(comfy.model_management.intermediate_device())
        return io.NodeOutput(
            node_helpers.conditioning_set_values(positive, values),
            node_helpers.conditioning_set_values(negative, values),
            latent,
        )


class PbEConvertCheckpoint(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPbEConvertCheckpoint",
            display_name="Convert Paint-by-Example .ckpt to .safetensors",
            category="exemplar/paint_by_example",
            description=(
                "Rewrites an official Paint-by-Example .ckpt from models/checkpoints as <name>.safetensors next to it "
                "(read with weights_only=True, checked to be PbE, written atomically). Safetensors loads faster and "
                "can never run code."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=loader.pbe_checkpoints(pickles_only=True),
                    tooltip="A Paint-by-Example pickle checkpoint in models/checkpoints (.ckpt/.pt/.pth/.bin).",
                ),
                io.Boolean.Input(
                    "overwrite", default=False, tooltip="Replace an existing .safetensors of the same name."
                ),
            ],
            outputs=[io.String.Output(display_name="safetensors_name")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, ckpt_name, overwrite=False) -> io.NodeOutput:
        check_output_name(os.path.splitext(ckpt_name)[0] + ".safetensors", "ckpt_name", "pbe/model.ckpt")
        source = folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        target = os.path.splitext(source)[0] + ".safetensors"
        try:
            convert_to_safetensors(source, target, overwrite=overwrite)
        except FileExistsError as error:
            raise ValueError(f"ckpt_name: {error}") from error
        return io.NodeOutput(os.path.splitext(ckpt_name)[0] + ".safetensors")


NODES = [PbECheckpointLoader, PbEDiffusersLoader, PbEEncode, PbEInpaintConditioning, PbEConvertCheckpoint]
