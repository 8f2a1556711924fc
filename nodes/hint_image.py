"""Diffuse to Choose hint image builder."""

from __future__ import annotations

from comfy_api.latest import io

from ..models.hint_image import FIT_MODES, build_hint_images


class HintImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarHintImage",
            display_name="Hint Image (Diffuse to Choose)",
            category="exemplar/diffuse_to_choose",
            description=(
                "Builds the Diffuse to Choose hint: a black image the size of the source with the reference "
                "resized into the largest axis-aligned rectangle that fits inside the mask."
            ),
            inputs=[
                io.Image.Input("image", tooltip="Source image; only its size is used."),
                io.Mask.Input("mask", tooltip="White = the region the reference goes into (any resolution; thresholded at 0.5)."),
                io.Image.Input("reference", tooltip="The reference (e.g. a product or garment photo)."),
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
            ],
            outputs=[
                io.Image.Output(display_name="hint"),
                io.Mask.Output(display_name="rectangle"),
            ],
        )

    @classmethod
    def execute(cls, image, mask, reference, fit, min_side) -> io.NodeOutput:
        hints, rectangles = build_hint_images(reference, mask, tuple(image.shape[1:3]), fit, min_side)
        return io.NodeOutput(hints, rectangles)


NODES = [HintImage]
