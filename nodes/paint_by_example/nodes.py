"""Paint by Example as native ComfyUI nodes: loaders, exemplar encoding, inpaint conditioning, conversion."""

from __future__ import annotations

import os

import comfy.latent_formats
import comfy.model_management
import torch
import node_helpers
from comfy_api.latest import io

from . import loader
from ...models.paint_by_example.checkpoint import convert_to_safetensors
from ...models.common.masks import blank_outside_mask, resize_mask
from ...models.paint_by_example.inputs import CROP_MODES, inpaint_inputs, reference_pixels
from ..common.model_folders import model_file
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
        return io.NodeOutput(*loader.load_checkpoint(model_file("checkpoints", ckpt_name, "ckpt_name")))


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
                "PbE MODEL. Also outputs the source latent with a noise mask so the background stays. As in the "
                "official code the mask is thresholded at 0.5 in pixels, then resized bilinearly to the latent (soft "
                "on edges off the 8-pixel grid). One reference serves a batch of sources and one source a batch of "
                "references."
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
        batch = _common_batch(pixels.shape[0], positive, negative)
        prepared = inpaint_inputs(pixels, mask, mask_threshold)
        masked_latent = _to_batch(vae.encode(prepared.masked), batch)
        source_latent = _to_batch(vae.encode(prepared.pixels), batch)
        # as the official code: the binary pixel keep-mask resized bilinearly to the latent, soft on edges that do
        # not follow the 8-pixel grid. ComfyUI rounds concat_mask, so the UNet's concat input goes as noise_concat
        # (which replaces what the concat keys build); concat_mask / concat_latent_image stay for other readers.
        hole_latent = _to_batch(resize_mask(prepared.hole, tuple(masked_latent.shape[-2:])), batch)[:, None]
        unet_concat = torch.cat([comfy.latent_formats.SD15().process_in(masked_latent), 1.0 - hole_latent], dim=1)
        values = {"concat_latent_image": masked_latent, "concat_mask": hole_latent, "noise_concat": unet_concat}
        latent = {"samples": source_latent}
        if noise_mask:
            hole = _to_batch(prepared.hole, batch)[:, None]
            latent["noise_mask"] = hole.to(comfy.model_management.intermediate_device())
        return io.NodeOutput(
            node_helpers.conditioning_set_values(positive, values),
            node_helpers.conditioning_set_values(negative, values),
            latent,
        )


def _common_batch(pixels_batch: int, positive, negative) -> int:
    """The batch of the result: one source serves every reference, one reference every source; else an error."""
    batch = max([pixels_batch] + [c[0].shape[0] for c in positive + negative])
    for name, conditioning in (("positive", positive), ("negative", negative)):
        for tensor, _ in conditioning:
            if tensor.shape[0] not in (1, batch):
                raise ValueError(
                    f"{name} holds {tensor.shape[0]} references but pixels has batch {pixels_batch}: give one "
                    "reference for every source image, one source image for every reference, or equal batches"
                )
    if pixels_batch not in (1, batch):
        raise ValueError(f"pixels has batch {pixels_batch} but positive holds {batch} references: give 1 or equal")
    return batch


def _to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    return tensor if tensor.shape[0] == batch else tensor.expand(batch, *tensor.shape[1:]).contiguous()


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
        source = model_file("checkpoints", ckpt_name, "ckpt_name")
        target = os.path.splitext(source)[0] + ".safetensors"
        try:
            convert_to_safetensors(source, target, overwrite=overwrite)
        except FileExistsError as error:
            raise ValueError(f"ckpt_name: {error}") from error
        return io.NodeOutput(os.path.splitext(ckpt_name)[0] + ".safetensors")


NODES = [PbECheckpointLoader, PbEDiffusersLoader, PbEEncode, PbEInpaintConditioning, PbEConvertCheckpoint]
