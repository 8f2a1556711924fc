"""Paste Back Source: the last node of an inpainting graph, keeping the background exactly."""

from __future__ import annotations

import comfy.model_management
from comfy_api.latest import io

from ...models.compositing.paste_back import paste_back
from ..common.choices import require_choice

COLOR_MATCH = ("off", "mean_std")


class PasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarPasteBack",
            display_name="Paste Back Source (keep background)",
            category="exemplar/compositing",
            description=(
                "Puts the untouched source back everywhere outside the mask, so the background is exactly the "
                "source's (the VAE and the sampler change it slightly otherwise), blending the generated region in "
                "over a feathered edge inside the mask; optionally matches the generated region's colours to the "
                "source's surroundings (per-channel mean and standard deviation in a ring around the mask)."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The generated (decoded) images."),
                io.Image.Input(
                    "source", tooltip="The image that was inpainted, at the same size (a batch of 1 serves all)."
                ),
                io.Mask.Input(
                    "mask",
                    tooltip="The inpainting mask (white = regenerated); resized to the images, binarised at 0.5.",
                ),
                io.Int.Input(
                    "feather",
                    default=8,
                    min=0,
                    max=256,
                    tooltip=(
                        "Width in pixels of the blend just inside the mask's edge (0 = hard edge); outside the "
                        "mask every pixel is the source's."
                    ),
                ),
                io.Combo.Input(
                    "color_match",
                    options=list(COLOR_MATCH),
                    default="off",
                    tooltip=(
                        "mean_std: shift and scale each channel of the generated region so that, in a ring around "
                        "the mask, the generated image has the source's mean and standard deviation."
                    ),
                ),
                io.Int.Input(
                    "ring",
                    default=16,
                    min=1,
                    max=512,
                    tooltip="Width in pixels of the ring around the mask that the colour match measures.",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The source with the generated region pasted in."),
                io.Mask.Output(
                    display_name="blend_mask", tooltip="The generated image's weight per pixel (1 = fully generated)."
                ),
            ],
        )

    @classmethod
    def execute(cls, image, source, mask, feather, color_match, ring) -> io.NodeOutput:
        require_choice("color_match", color_match, COLOR_MATCH)
        out, weight = paste_back(image, source, mask, feather, color_match == "mean_std", ring)
        device = comfy.model_management.intermediate_device()
        return io.NodeOutput(out.to(device), weight.to(device))


NODES = [PasteBack]
