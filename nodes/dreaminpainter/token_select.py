"""Top-K reference-token selector (DreamInpainter) and the learned token-scorer loader."""

from __future__ import annotations

from comfy_api.latest import io

from ..common.exemplar_files import files_of_kind, load_exemplar_file
from ...models.dreaminpainter.token_scorer import SCORER_KIND, SCORER_VERSION, TokenScorer
from ...models.dreaminpainter.token_selector import CRITERIA, SELECTIONS, select_top_k
from ..common.types import ExemplarTokenScorerType, ExemplarTokensType
from ..common.finite import require_finite


class TokenSelectTopK(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarTokenSelectTopK",
            display_name="Select Top-K Reference Tokens",
            category="exemplar/dreaminpainter",
            is_experimental=True,
            description=(
                "Keeps the K most useful of the N reference tokens (DreamInpainter: all N tokens make the model "
                "copy-paste the reference; K = 24 in the paper). Scores by subject saliency, feature norm or a "
                "learned scorer, restricted to the subject mask, optionally spread out by farthest-point sampling. "
                "Token positions are kept; the result is deterministic."
            ),
            inputs=[
                ExemplarTokensType.Input("tokens", tooltip="Reference tokens from any Reference Encode node."),
                io.Int.Input(
                    "k",
                    default=24,
                    min=1,
                    max=65536,
                    tooltip="How many tokens to keep (the paper uses 24). Must not exceed the number of tokens N.",
                ),
                io.Combo.Input(
                    "criterion",
                    options=list(CRITERIA),
                    default="saliency",
                    tooltip=(
                        "saliency: cosine similarity to the subject's CLS token or mask-weighted mean feature; "
                        "norm: feature L2 norm; learned: the connected token scorer."
                    ),
                ),
                io.Combo.Input(
                    "selection",
                    options=list(SELECTIONS),
                    default="top_k",
                    tooltip=(
                        "top_k: the K best scores; farthest_point: greedy farthest-point sampling among the best "
                        "candidates (more diverse)."
                    ),
                ),
                io.Int.Input(
                    "candidate_pool",
                    default=96,
                    min=1,
                    max=65536,
                    tooltip=(
                        "farthest_point only: how many best-scoring tokens the diverse picks are drawn from (at "
                        "least K are used)."
                    ),
                ),
                io.Float.Input(
                    "mask_threshold",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip=(
                        "Tokens whose subject-mask coverage is below this are taken only when fewer than K lie inside."
                    ),
                ),
                ExemplarTokenScorerType.Input(
                    "scorer", optional=True, tooltip="A learned scorer from Load Token Scorer (criterion 'learned')."
                ),
            ],
            outputs=[ExemplarTokensType.Output(display_name="tokens")],
        )

    @classmethod
    def execute(cls, tokens, k, criterion, selection, candidate_pool, mask_threshold, scorer=None) -> io.NodeOutput:
        require_finite(mask_threshold=mask_threshold)
        if scorer is not None:
            scorer = scorer.to(tokens.tokens.device)
        return io.NodeOutput(select_top_k(tokens, k, criterion, selection, candidate_pool, mask_threshold, scorer))


class LoadTokenScorer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarLoadTokenScorer",
            display_name="Load Token Scorer",
            category="exemplar/dreaminpainter",
            is_experimental=True,
            description=(
                "Loads a learned per-token scorer (safetensors, layout in docs/dreaminpainter.md) from models/exemplar "
                "for the top-K selector's 'learned' criterion."
            ),
            inputs=[
                io.Combo.Input(
                    "scorer_name",
                    options=files_of_kind(SCORER_KIND),
                    tooltip="A token scorer file in models/exemplar (exemplar.kind = token_scorer).",
                ),
            ],
            outputs=[ExemplarTokenScorerType.Output(display_name="scorer")],
        )

    @classmethod
    def execute(cls, scorer_name) -> io.NodeOutput:
        state_dict = load_exemplar_file(scorer_name, SCORER_KIND, SCORER_VERSION)
        return io.NodeOutput(TokenScorer.from_state_dict(state_dict))


NODES = [TokenSelectTopK, LoadTokenScorer]
