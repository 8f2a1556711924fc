"""Reference-token injectors (DreamInpainter): into self-attention (patched MODEL clone) or as
cross-attention context (new CONDITIONING), plus the learned token-projection loader."""

from __future__ import annotations

from comfy_api.latest import io

from .reference_attention import BLOCK_SCOPES, TOKEN_SPACES, patch_reference_attention
from ..common.exemplar_files import files_of_kind, load_exemplar_file
from ...models.dreaminpainter.token_projection import (
    PROJECTION_KIND,
    PROJECTION_VERSION,
    TokenProjection,
    inject_context,
)
from ..common.types import ExemplarTokenProjectionType, ExemplarTokensType
from ..common.finite import require_finite


class ReferenceSelfAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarReferenceSelfAttention",
            display_name="Reference Self-Attention Injection",
            category="exemplar/dreaminpainter",
            description=(
                "Training-free reference injection: the reference tokens are appended to the keys and values of "
                "self-attention in every UNet transformer block of the same width (or only the block they came from). "
                "Returns a patched copy of the model; the input model is not changed. Weight 0 leaves the output "
                "unchanged."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with (SD1.x, SD2.x, SDXL)."),
                ExemplarTokensType.Input(
                    "tokens",
                    tooltip=(
                        "Reference tokens whose dim equals a self-attention width of this model (e.g. UNet features "
                        "of this model, top-K selected)."
                    ),
                ),
                io.Float.Input(
                    "weight",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.05,
                    tooltip=(
                        "How many times each reference token counts in the attention softmax (1 = plain append, 0 = "
                        "off)."
                    ),
                ),
                io.Float.Input(
                    "start_percent",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Sampling progress at which the injection starts.",
                ),
                io.Float.Input(
                    "end_percent",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Sampling progress at which the injection stops.",
                ),
                io.Boolean.Input(
                    "cond_only",
                    default=False,
                    tooltip=(
                        "Leave the unconditional (negative) pass plain; every other prediction gets the reference. "
                        "With the DreamInpainter guidance this gives (ref, text), (ref, ∅) and a reference-free (∅, "
                        "∅)."
                    ),
                ),
                io.Combo.Input(
                    "token_space",
                    options=list(TOKEN_SPACES),
                    default="block_norm",
                    tooltip=(
                        "block_norm: pass the tokens through each block's own pre-attention LayerNorm first; raw: "
                        "use them as they are."
                    ),
                ),
                io.Combo.Input(
                    "blocks",
                    options=list(BLOCK_SCOPES),
                    default="matching_dim",
                    tooltip=(
                        "matching_dim: every self-attention of the tokens' width (encoder and decoder); "
                        "source_block: only the block the UNet tokens came from."
                    ),
                ),
            ],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(
        cls, model, tokens, weight, start_percent, end_percent, cond_only, token_space, blocks
    ) -> io.NodeOutput:
        require_finite(weight=weight, start_percent=start_percent, end_percent=end_percent)
        patched = patch_reference_attention(
            model,
            tokens.tokens,
            weight,
            start_percent,
            end_percent,
            cond_only,
            token_space,
            blocks,
            tokens.source.get("block") if tokens.source.get("encoder") == "unet" else None,
        )
        return io.NodeOutput(patched)


class ReferenceCrossAttention(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarReferenceCrossAttention",
            display_name="Reference Cross-Attention Tokens",
            category="exemplar/dreaminpainter",
            description=(
                "Puts reference tokens into the text conditioning: appended after the prompt's tokens, or "
                "replacing them. "
                "Tokens of another width go through a learned token projection; a zero weight or an untrained "
                "projection "
                "(gate 0) returns the conditioning unchanged."
            ),
            inputs=[
                io.Conditioning.Input(
                    "conditioning", tooltip="The text conditioning to extend (usually the positive prompt)."
                ),
                ExemplarTokensType.Input(
                    "tokens", tooltip="Reference tokens (any encoder; top-K selected is typical)."
                ),
                io.Combo.Input(
                    "mode",
                    options=["append", "replace"],
                    default="append",
                    tooltip="append: prompt tokens then reference tokens; replace: reference tokens only.",
                ),
                io.Float.Input(
                    "weight",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.05,
                    tooltip="Scale of the projected reference tokens; 0 = leave the conditioning unchanged.",
                ),
                ExemplarTokenProjectionType.Input(
                    "projection",
                    optional=True,
                    tooltip=(
                        "Learned projection to the model's context width (Load Token Projection); not needed when "
                        "the widths already match."
                    ),
                ),
            ],
            outputs=[io.Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, conditioning, tokens, mode, weight, projection=None) -> io.NodeOutput:
        require_finite(weight=weight)
        if not conditioning:
            raise ValueError("conditioning is empty")
        context_dim = conditioning[0][0].shape[-1]
        if projection is None:
            if tokens.dim != context_dim:
                raise ValueError(
                    f"the reference tokens have dim {tokens.dim} and the conditioning has dim {context_dim}: "
                    "connect a token projection (Load Token Projection)"
                )
            projected, silent = tokens.tokens, False
        else:
            if projection.out_dim != context_dim:
                raise ValueError(
                    f"the token projection outputs dim {projection.out_dim}, the conditioning has dim {context_dim}"
                )
            projection = projection.to(tokens.tokens.device)
            projected, silent = projection(tokens.tokens).detach(), projection.is_silent
        if weight == 0 or silent:
            return io.NodeOutput([[context, dict(extra)] for context, extra in conditioning])
        result = []
        for context, extra in conditioning:
            result.append([inject_context(context, projected.to(context.device), mode, weight), dict(extra)])
        return io.NodeOutput(result)


class LoadTokenProjection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarLoadTokenProjection",
            display_name="Load Token Projection",
            category="exemplar/dreaminpainter",
            is_experimental=True,
            description=(
                "Loads a learned projection of reference tokens into the text-context width (safetensors, layout in "
                "docs/dreaminpainter.md) from models/exemplar, for Reference Cross-Attention Tokens."
            ),
            inputs=[
                io.Combo.Input(
                    "projection_name",
                    options=files_of_kind(PROJECTION_KIND),
                    tooltip="A token projection file in models/exemplar (exemplar.kind = token_projection).",
                ),
            ],
            outputs=[ExemplarTokenProjectionType.Output(display_name="projection")],
        )

    @classmethod
    def execute(cls, projection_name) -> io.NodeOutput:
        return io.NodeOutput(
            TokenProjection.from_state_dict(load_exemplar_file(projection_name, PROJECTION_KIND, PROJECTION_VERSION))
        )


NODES = [ReferenceSelfAttention, ReferenceCrossAttention, LoadTokenProjection]
