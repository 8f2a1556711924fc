"""Reference tokens appended to self-attention keys/values, with a weight (pure math, no ComfyUI).

A weight w acts as the multiplicity of the reference tokens inside the softmax: every reference
logit gets + log(w). w = 1 is plain concatenation ([x; r] as keys and values); w = 2 counts each
reference token twice; w -> 0 fades them out, and w = 0 is handled by not appending anything, so
the result is the unpatched attention exactly.
"""

from __future__ import annotations

import math

import torch


def reference_logit_bias(
    self_length: int, reference_lengths: list[int], weights: list[float], device=None, dtype=None
) -> torch.Tensor:
    """Additive attention bias [1, 1, self_length + sum(reference_lengths)].

    0 on the block's own keys, log(w) on each reference set's keys."""
    if len(reference_lengths) != len(weights):
        raise ValueError("one weight per reference set is needed")
    parts = [torch.zeros(self_length)]
    for length, weight in zip(reference_lengths, weights):
        if weight <= 0:
            raise ValueError(f"a reference weight must be positive here, got {weight}")
        parts.append(torch.full((length,), math.log(weight)))
    return torch.cat(parts).to(device=device, dtype=dtype).reshape(1, 1, -1)


def tile_reference(tokens: torch.Tensor, per_chunk: int, chunks: int) -> torch.Tensor:
    """Reference tokens [Br, K, D] for a batch of `chunks` x `per_chunk` rows (Br = 1 or per_chunk)."""
    if tokens.shape[0] == 1:
        return tokens.expand(per_chunk * chunks, -1, -1)
    if tokens.shape[0] != per_chunk:
        raise ValueError(
            f"the reference tokens have batch {tokens.shape[0]}; the latent batch is {per_chunk} (use 1 or "
            f"{per_chunk} references)"
        )
    return tokens.repeat(chunks, 1, 1)
