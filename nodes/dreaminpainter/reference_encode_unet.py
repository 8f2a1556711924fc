"""Reference encoder from the diffusion UNet itself (DreamInpainter): image -> EXEMPLAR_TOKENS."""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from .unet_features import diffusion_unet, resolve_block, unet_features, valid_blocks
from ...models.dreaminpainter.reference_tokens import blank_outside_mask, mask_to_grid
from ...models.dreaminpainter.tokens import ExemplarTokens, spatial_positions
from ..common.types import ExemplarTokensType


def resize_reference(image: torch.Tensor, size: int, crop: bool) -> torch.Tensor:
    """[B, H, W, C] -> [B, size, size, C] (centre crop of the short side, or squash)."""
    pixels = comfy.utils.common_upscale(image.movedim(-1, 1), size, size, "bicubic", "center" if crop else "disabled")
    return pixels.movedim(1, -1).clamp(0, 1)


class ReferenceEncodeUNet(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarReferenceEncodeUNet",
            display_name="Reference Encode (UNet features)",
            category="exemplar/reference",
            description=(
                "DreamInpainter's reference encoder: runs the loaded model's own UNet once on the reference latent at "
                "timestep 0 and returns the dense features of one block (default: the end of the 2nd down-sampling "
                "stage) as EXEMPLAR_TOKENS, N = h*w tokens of the block's channel dim. The given MODEL is not changed."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SD1.x / SD2.x / SDXL model whose UNet encodes the reference (usually the one you sample with)."),
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
                io.Int.Input("timestep", default=0, min=0, max=999, tooltip="Discrete timestep of the pass (0 = clean, as in the paper); the latent is fed without noise."),
                io.Int.Input(
                    "resolution",
                    default=512,
                    min=64,
                    max=4096,
                    step=64,
                    tooltip="The reference is resized to this square size first (512 on SD1.x gives a 32x32 token grid at the default block).",
                ),
                io.Combo.Input("crop", options=["center", "none"], default="center", tooltip="center: crop the short side's square; none: squash the whole image."),
                io.Mask.Input("subject_mask", optional=True, tooltip="White = the subject. Stored per token (fraction of each cell covered) for the selector."),
                io.Boolean.Input("blank_background", default=False, optional=True, tooltip="Paint everything outside subject_mask white before encoding."),
                io.Conditioning.Input(
                    "conditioning",
                    optional=True,
                    tooltip="Text context of the reference pass (e.g. an empty prompt). Without it a zero context is used; SDXL needs one (pooled output).",
                ),
            ],
            outputs=[
                ExemplarTokensType.Output(display_name="tokens"),
                io.String.Output(display_name="blocks"),
            ],
        )

    @classmethod
    def execute(cls, model, vae, reference, block, timestep, resolution, crop, subject_mask=None, blank_background=False, conditioning=None) -> io.NodeOutput:
        unet = diffusion_unet(model)
        block = resolve_block(model, block)
        if subject_mask is not None and subject_mask.shape[0] not in (1, reference.shape[0]):
            raise ValueError(f"subject_mask has batch {subject_mask.shape[0]}; expected 1 or the reference batch {reference.shape[0]}")
        if subject_mask is not None and blank_background:
            reference = blank_outside_mask(reference, subject_mask)
        pixels = resize_reference(reference[..., :3], resolution, crop == "center")
        latent = vae.encode(pixels)

        extra = {}
        if conditioning is not None:
            if len(conditioning) == 0:
                raise ValueError("conditioning is empty")
            context = conditioning[0][0]
            if "pooled_output" in conditioning[0][1]:
                extra["pooled_output"] = conditioning[0][1]["pooled_output"]
        else:
            if unet.num_classes is not None:
                raise ValueError("this model needs a text conditioning for the reference pass (e.g. an empty-prompt CLIP Text Encode)")
            context_dim = model.model.model_config.unet_config.get("context_dim")
            context = torch.zeros(1, 77, context_dim)
        if context.shape[0] not in (1, latent.shape[0]):
            raise ValueError(f"conditioning has batch {context.shape[0]}; expected 1 or the reference batch {latent.shape[0]}")

        features = unet_features(model, latent, block, timestep, context, extra)
        batch, channels, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2).contiguous()
        mask = None
        if subject_mask is not None:
            square = comfy.utils.common_upscale(subject_mask[:, None].float(), resolution, resolution, "bilinear", "center" if crop == "center" else "disabled")
            mask = mask_to_grid(square[:, 0], (height, width)).to(tokens.device).expand(batch, -1)
        source = {"encoder": "unet", "block": block, "timestep": timestep, "dim": channels, "resolution": resolution}
        result = ExemplarTokens(tokens, spatial_positions(batch, height, width, tokens.device), (height, width), mask, source)
        listing = ", ".join(["auto"] + valid_blocks(model))
        comfy.model_management.throw_exception_if_processing_interrupted()
        return io.NodeOutput(result, listing)


NODES = [ReferenceEncodeUNet]
