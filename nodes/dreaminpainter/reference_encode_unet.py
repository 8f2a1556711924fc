"""Reference encoder from the diffusion UNet itself (DreamInpainter): image -> EXEMPLAR_TOKENS."""

from __future__ import annotations

import comfy.model_management
from comfy_api.latest import io

from .unet_features import encode_reference, valid_blocks
from ..common.types import ExemplarTokensType
from ..common.choices import CROP_CHOICES, require_choice


class ReferenceEncodeUNet(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarReferenceEncodeUNet",
            display_name="Reference Encode (UNet features)",
            category="exemplar/dreaminpainter",
            description=(
                "DreamInpainter's reference encoder: runs the loaded model's own UNet once on the reference latent at "
                "timestep 0 and returns the dense features of one block (default: the end of the 2nd down-sampling "
                "stage) as EXEMPLAR_TOKENS, N = h*w tokens of the block's channel dim. The given MODEL is not changed."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip=(
                        "The SD1.x / SD2.x / SDXL model whose UNet encodes the reference (usually the one you sample "
                        "with)."
                    ),
                ),
                io.Vae.Input("vae", tooltip="The VAE that turns the reference into a latent."),
                io.Image.Input("reference", tooltip="Reference image(s); a batch gives a batch of token sets."),
                io.String.Input(
                    "block",
                    default="auto",
                    tooltip=(
                        "Whose output to take: auto (end of the 2nd down-sampling stage, input.5 on SD1.x/SDXL), "
                        "input.<i>, middle.0 or output.<i>. The 'blocks' output lists the valid names for the model."
                    ),
                ),
                io.Int.Input(
                    "timestep",
                    default=0,
                    min=0,
                    max=999,
                    tooltip="Discrete timestep of the pass (0 = clean, as in the paper); no noise is added.",
                ),
                io.Int.Input(
                    "resolution",
                    default=512,
                    min=64,
                    max=4096,
                    step=64,
                    tooltip=(
                        "The reference is resized to this square size first (512 on SD1.x gives a 32x32 token grid "
                        "at the default block)."
                    ),
                ),
                io.Combo.Input(
                    "crop",
                    options=list(CROP_CHOICES),
                    default="center",
                    tooltip="center: crop the short side's square; none: squash the whole image.",
                ),
                io.Mask.Input(
                    "subject_mask",
                    optional=True,
                    tooltip="White = the subject. Stored per token (fraction of each cell covered) for the selector.",
                ),
                io.Boolean.Input(
                    "blank_background",
                    default=False,
                    optional=True,
                    tooltip="Paint everything outside subject_mask white before encoding.",
                ),
                io.Conditioning.Input(
                    "conditioning",
                    optional=True,
                    tooltip=(
                        "Text context of the reference pass (e.g. an empty prompt). Without it a zero context is "
                        "used; SDXL needs one (pooled output)."
                    ),
                ),
            ],
            outputs=[
                ExemplarTokensType.Output(display_name="tokens"),
                io.String.Output(display_name="blocks"),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        vae,
        reference,
        block,
        timestep,
        resolution,
        crop,
        subject_mask=None,
        blank_background=False,
        conditioning=None,
    ) -> io.NodeOutput:
        require_choice("crop", crop, CROP_CHOICES)
        result = encode_reference(
            model,
            vae,
            reference,
            block,
            timestep,
            resolution,
            crop == "center",
            subject_mask,
            blank_background,
            conditioning,
        )
        listing = ", ".join(["auto"] + valid_blocks(model))
        comfy.model_management.throw_exception_if_processing_interrupted()
        return io.NodeOutput(result, listing)


NODES = [ReferenceEncodeUNet]
