"""Projection of reference tokens into a model's text-context space (cross-attention injection).

File layout (version 1):

    proj.weight  [C, D]   linear map from token dim D to context dim C
    proj.bias    [C]
    norm.weight  [C]      optional LayerNorm after the projection (with norm.bias [C])
    norm.bias    [C]
    gate         [1]      scalar output gate; ZERO in a fresh file, so an untrained projection
                          contributes nothing (the injector then appends / replaces nothing)

Metadata (models/common/artefact_header.py): ``exemplar.kind = "token_projection"``,
``exemplar.version = "1"``, ``exemplar.in_dim = D``, ``exemplar.out_dim = C``.
project(x) = gate * norm(proj(x)).
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.artefact_header import write_header

PROJECTION_KIND = "token_projection"
PROJECTION_VERSION = 1


class TokenProjection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, norm: bool = True):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.proj = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim) if norm else None
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape[-1] != self.in_dim:
            raise ValueError(f"the token projection expects {self.in_dim}-dim tokens, got {tokens.shape[-1]}-dim ones")
        x = self.proj(tokens.to(self.proj.weight.dtype))
        if self.norm is not None:
            x = self.norm(x)
        return self.gate * x

    @property
    def is_silent(self) -> bool:
        """True while the gate is zero: the projection outputs exact zeros for every input."""
        return bool((self.gate == 0).all())

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "TokenProjection":
        if "proj.weight" not in state_dict or "gate" not in state_dict:
            raise ValueError(
                f"not a token projection file: needs proj.weight and gate, found keys {sorted(state_dict)[:8]}"
            )
        out_dim, in_dim = state_dict["proj.weight"].shape
        projection = cls(in_dim, out_dim, norm="norm.weight" in state_dict)
        expected = projection.state_dict()
        if set(state_dict) != set(expected):
            raise ValueError(
                f"token projection keys do not match version {PROJECTION_VERSION}: "
                f"missing {sorted(set(expected) - set(state_dict))}, "
                f"unexpected {sorted(set(state_dict) - set(expected))}"
            )
        for key, value in expected.items():
            if tuple(state_dict[key].shape) != tuple(value.shape):
                raise ValueError(
                    f"token projection tensor {key} has shape {tuple(state_dict[key].shape)}, expected "
                    f"{tuple(value.shape)}"
                )
        projection.load_state_dict({k: v.float() for k, v in state_dict.items()})
        return projection.train(False)

    def metadata(self) -> dict[str, str]:
        return write_header(PROJECTION_KIND, PROJECTION_VERSION, {"in_dim": self.in_dim, "out_dim": self.out_dim})


def init_token_projection(in_dim: int, out_dim: int, seed: int = 0) -> TokenProjection:
    """A fresh, untrained projection: random linear map (1/sqrt(D)), unit LayerNorm, gate 0."""
    projection = TokenProjection(in_dim, out_dim)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        projection.proj.weight.copy_(torch.randn(out_dim, in_dim, generator=generator) / in_dim**0.5)
        projection.proj.bias.zero_()
    return projection.train(False)


def inject_context(context: torch.Tensor, tokens: torch.Tensor, mode: str, weight: float) -> torch.Tensor:
    """New cross-attention context: text context [Bc, T, C] with reference tokens [Bt, K, C].

    append: [context, weight * tokens]; replace: weight * tokens. Batches broadcast from 1.
    """
    if tokens.shape[-1] != context.shape[-1]:
        raise ValueError(f"reference tokens have dim {tokens.shape[-1]}, the conditioning has dim {context.shape[-1]}")
    batch = max(context.shape[0], tokens.shape[0])
    for name, value in (("conditioning", context), ("tokens", tokens)):
        if value.shape[0] not in (1, batch):
            raise ValueError(f"the {name} batch {value.shape[0]} does not match the other batch {batch}")
    tokens = (weight * tokens).to(context.dtype).expand(batch, -1, -1)
    if mode == "replace":
        return tokens.clone()
    if mode == "append":
        return torch.cat([context.expand(batch, -1, -1), tokens], dim=1)
    raise ValueError(f"unknown mode {mode!r}; expected 'append' or 'replace'")
