"""Reference encoder over a stock CLIP_VISION model (CLIP ViT, SigLIP, DINOv2): image -> EXEMPLAR_TOKENS."""

from __future__ import annotations

import comfy.model_management
from comfy_api.latest import io

from ...models.common.masks import blank_outside_mask
from ...models.dreaminpainter.reference_tokens import TOKEN_MODES, preprocess_mask, vision_tokens
from ..common.types import ExemplarTokensType
from ..common.choices import CROP_CHOICES, require_choice


class ReferenceEncodeCLIPVision(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarReferenceEncodeCLIPVision",
            display_name="Reference Encode (CLIP Vision)",
            category="exemplar/dreaminpainter",
            description=(
                "Encodes reference images with any CLIP_VISION model (CLIP ViT, SigLIP, DINOv2) into "
                "EXEMPLAR_TOKENS for the top-K selector and the token injectors. Swap the encoder by "
                "rewiring the clip_vision input."
            ),
            inputs=[
                io.ClipVision.Input("clip_vision", tooltip="Any model from Load CLIP Vision (DINOv2 loads here too)."),
                io.Image.Input("reference", tooltip="Reference image(s); a batch gives a batch of token sets."),
                io.Combo.Input(
                    "tokens",
                    options=list(TOKEN_MODES),
                    default="patches",
                    tooltip=(
                        "patches: every patch token with its grid position; cls: the CLS token; "
                        "cls+patches: both; image_embeds: the projected pooled embedding (one token)."
                    ),
                ),
                io.Combo.Input(
                    "crop",
                    options=list(CROP_CHOICES),
                    default="center",
                    tooltip="center: resize the short side and centre-crop; none: squash the whole image.",
                ),
                io.Mask.Input(
                    "subject_mask",
                    optional=True,
                    tooltip="White = the subject. Stored per token (fraction of each patch covered) for the selector.",
                ),
                io.Boolean.Input(
                    "blank_background",
                    default=False,
                    optional=True,
                    tooltip="Paint everything outside subject_mask white before encoding.",
                ),
            ],
            outputs=[ExemplarTokensType.Output(display_name="tokens")],
        )

    @classmethod
    def execute(cls, clip_vision, reference, tokens, crop, subject_mask=None, blank_background=False) -> io.NodeOutput:
        require_choice("tokens", tokens, TOKEN_MODES)
        require_choice("crop", crop, CROP_CHOICES)
        if subject_mask is not None and subject_mask.shape[0] not in (1, reference.shape[0]):
            raise ValueError(
                f"subject_mask has batch {subject_mask.shape[0]}; expected 1 or the reference batch "
                f"{reference.shape[0]}"
            )
        crop_center = crop == "center"
        if subject_mask is not None and blank_background:
            reference = blank_outside_mask(reference, subject_mask)
        output = clip_vision.encode_image(reference, crop=crop_center)
        processed_mask = None
        if subject_mask is not None:
            processed_mask = preprocess_mask(subject_mask, clip_vision.image_size, crop_center)
        source = {"encoder": "clip_vision", "layer": "last_hidden_state", "image_size": clip_vision.image_size}
        result = vision_tokens(
            output["last_hidden_state"].to(comfy.model_management.intermediate_device()),
            getattr(output, "image_embeds", None),
            tokens,
            processed_mask,
            source,
        )
        return io.NodeOutput(result)


NODES = [ReferenceEncodeCLIPVision]
