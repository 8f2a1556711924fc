"""Self-attention reference injection: selected reference tokens appended to the keys/values of
self-attention (attn1) in the UNet's transformer blocks whose width matches the tokens.

Implemented as ComfyUI attn1 *replace* patches on a clone of the MODEL: the replacement gets the
block's projected q/k/v, projects the reference tokens with the same block's norm1 (optional),
to_k and to_v, and attends over [own keys; reference keys] with log(weight) added to the reference
logits (models/reference_attention.py). Outside the start/end range, at weight 0, and for the
unconditional (negative) pass when `cond_only` is set, it calls ComfyUI's own attention function exactly as
the unpatched block does, so the output is bit-identical there.

Applying the injection again on the patched model adds a second reference set to the same
replacement; a replacement installed by another node on the same block is refused (it would be
silently overwritten otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from comfy.ldm.modules import attention
from comfy.ldm.modules.attention import BasicTransformerBlock, SpatialTransformer

from ...models.dreaminpainter.reference_attention import reference_logit_bias, tile_reference
from .unet_features import diffusion_unet

# calc_cond_batch tags each batch chunk with its index in the guider's conds: 0 positive,
# 1 negative (the unconditional pass), 2+ further predictions of multi-prediction guiders
UNCOND = 1

TOKEN_SPACES = ("block_norm", "raw")
BLOCK_SCOPES = ("matching_dim", "source_block")


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    tokens: torch.Tensor  # [Br, K, D], float32, on the intermediate device
    weight: float
    sigma_start: float  # active while sigma_end <= sigma <= sigma_start
    sigma_end: float
    cond_only: bool
    token_space: str

    def active(self, sigma: float) -> bool:
        return self.weight != 0 and self.sigma_end <= sigma <= self.sigma_start


class ReferenceAttn1:
    """attn1 replacement for one transformer block, holding one or more reference sets."""

    def __init__(self, block: BasicTransformerBlock, sets: tuple[ReferenceSet, ...]):
        self.block = block
        self.sets = sets

    def __deepcopy__(self, memo):  # ModelPatcher.clone deep-copies model_options; share the block and tokens
        return self

    def with_set(self, reference: ReferenceSet) -> "ReferenceAttn1":
        return ReferenceAttn1(self.block, self.sets + (reference,))

    def reference_kv(self, reference: ReferenceSet, like: torch.Tensor):
        tokens = reference.tokens.to(like.device, like.dtype)
        if reference.token_space == "block_norm":
            tokens = self.block.norm1(tokens)
        return self.block.attn1.to_k(tokens), self.block.attn1.to_v(tokens)

    def __call__(self, q, k, v, extra_options):
        heads = extra_options["n_heads"]
        precision = extra_options.get("attn_precision")
        sigmas = extra_options.get("sigmas")
        sigma = float(sigmas.reshape(-1)[0]) if sigmas is not None else 0.0
        live = [s for s in self.sets if s.active(sigma)]
        if not live:
            return attention.optimized_attention(q, k, v, heads, attn_precision=precision, transformer_options=extra_options)
        chunks = list(extra_options.get("cond_or_uncond") or [0])
        per = q.shape[0] // len(chunks)
        # consecutive chunks that see the same reference sets are computed together
        groups: list[tuple[tuple[ReferenceSet, ...], int, int]] = []
        for index, kind in enumerate(chunks):
            sets = tuple(s for s in live if kind != UNCOND or not s.cond_only)
            if groups and groups[-1][0] == sets:
                groups[-1] = (sets, groups[-1][1], index + 1)
            else:
                groups.append((sets, index, index + 1))
        outputs = []
        for sets, first, last in groups:
            rows = slice(first * per, last * per)
            outputs.append(self._attend(q[rows], k[rows], v[rows], sets, per, last - first, heads, precision, extra_options))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)

    def _attend(self, q, k, v, sets, per, chunks, heads, precision, options):
        if not sets:
            return attention.optimized_attention(q, k, v, heads, attn_precision=precision, transformer_options=options)
        keys, values, lengths = [k], [v], []
        for reference in sets:
            k_ref, v_ref = self.reference_kv(reference, q)
            keys.append(tile_reference(k_ref, per, chunks))
            values.append(tile_reference(v_ref, per, chunks))
            lengths.append(k_ref.shape[1])
        keys, values = torch.cat(keys, dim=1), torch.cat(values, dim=1)
        weights = [s.weight for s in sets]
        if all(w == 1 for w in weights):
            return attention.optimized_attention(q, keys, values, heads, attn_precision=precision, transformer_options=options)
        bias = reference_logit_bias(k.shape[1], lengths, weights, device=q.device, dtype=q.dtype)
        return attention.optimized_attention_masked(q, keys, values, heads, bias, attn_precision=precision, transformer_options=options)


def transformer_blocks(model) -> list[tuple[tuple[str, int, int], BasicTransformerBlock]]:
    """Every transformer block of the UNet with its attn1 patch key (block_name, number, transformer_index)."""
    unet = diffusion_unet(model)
    found = []
    groups = [("input", unet.input_blocks), ("middle", [unet.middle_block] if unet.middle_block is not None else []), ("output", unet.output_blocks)]
    for name, blocks in groups:
        for number, block in enumerate(blocks):
            for layer in block:
                if isinstance(layer, SpatialTransformer):
                    for index, transformer in enumerate(layer.transformer_blocks):
                        found.append(((name, number, index), transformer))
    return found


def block_dim(transformer: BasicTransformerBlock) -> int:
    return transformer.attn1.to_k.in_features


def target_blocks(model, dim: int, scope: str, source_block: str | None) -> list[tuple[tuple[str, int, int], BasicTransformerBlock]]:
    if scope not in BLOCK_SCOPES:
        raise ValueError(f"unknown blocks choice {scope!r}; expected one of {BLOCK_SCOPES}")
    blocks = transformer_blocks(model)
    dims = sorted({block_dim(t) for _, t in blocks})
    chosen = [(key, t) for key, t in blocks if block_dim(t) == dim]
    if scope == "source_block":
        if not source_block:
            raise ValueError("blocks = source_block needs tokens from Reference Encode (UNet features), which record their block")
        name, number = source_block.split(".")
        chosen = [(key, t) for key, t in chosen if key[:2] == (name, int(number))]
        if not chosen:
            raise ValueError(f"the tokens' source block {source_block} has no self-attention of dim {dim} in this model")
    if not chosen:
        raise ValueError(f"the reference tokens have dim {dim}, but this model's self-attention blocks have dims {dims}")
    return chosen


def patch_reference_attention(
    model,
    tokens: torch.Tensor,
    weight: float,
    start_percent: float,
    end_percent: float,
    cond_only: bool,
    token_space: str = "block_norm",
    scope: str = "matching_dim",
    source_block: str | None = None,
):
    """A clone of `model` whose matching self-attention blocks also attend to `tokens` ([Br, K, D])."""
    if token_space not in TOKEN_SPACES:
        raise ValueError(f"unknown token_space {token_space!r}; expected one of {TOKEN_SPACES}")
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise ValueError(f"need 0 <= start_percent <= end_percent <= 1, got {start_percent} and {end_percent}")
    sampling = model.get_model_object("model_sampling")
    reference = ReferenceSet(
        tokens=tokens.detach().float(),
        weight=float(weight),
        sigma_start=sampling.percent_to_sigma(start_percent),
        sigma_end=sampling.percent_to_sigma(end_percent),
        cond_only=bool(cond_only),
        token_space=token_space,
    )
    patched = model.clone()
    existing = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn1", {})
    for key, transformer in target_blocks(model, tokens.shape[-1], scope, source_block):
        current = existing.get(key, existing.get(key[:2]))
        if current is not None and not isinstance(current, ReferenceAttn1):
            raise ValueError(
                f"self-attention of block {key} is already replaced by another node ({type(current).__name__}); "
                "apply the reference injection before it"
            )
        replacement = current.with_set(reference) if current is not None else ReferenceAttn1(transformer, (reference,))
        patched.set_model_attn1_replace(replacement, *key)
    return patched
