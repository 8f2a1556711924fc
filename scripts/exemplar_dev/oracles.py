"""Independent formulas the tests compare the pack against (written plainly, not used by the pack)."""

from __future__ import annotations

import math

import torch


def attention_with_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_ref: torch.Tensor,
    v_ref: torch.Tensor,
    heads: int,
    weight: float,
) -> torch.Tensor:
    """Reference formula (multi-head, [B, L, H*d] layout): softmax(q [k; k_ref]^T / sqrt(d) + [0; log w]) [v; v_ref]."""
    batch, length, inner = q.shape
    d = inner // heads

    def split(t):
        return t.reshape(batch, t.shape[1], heads, d).transpose(1, 2)

    keys = split(torch.cat([k, k_ref], dim=1))
    values = split(torch.cat([v, v_ref], dim=1))
    logits = split(q) @ keys.transpose(-1, -2) / math.sqrt(d)
    logits[..., k.shape[1] :] += math.log(weight)
    out = logits.softmax(dim=-1) @ values
    return out.transpose(1, 2).reshape(batch, length, inner)


def stage_timestep_range(stage: int, stages: int, num_train_timesteps: int = 1000) -> tuple[int, int]:
    """The inclusive integer timestep range [first, last] whose stage is `stage`."""
    if not 0 <= stage < stages:
        raise ValueError(f"stage {stage} out of range for {stages} stages")
    first = -(-num_train_timesteps * stage // stages)
    last = -(-num_train_timesteps * (stage + 1) // stages) - 1
    return first, last
