"""Learned per-token scorer for the top-K selector, and its safetensors file layout.

File layout (version 1), all tensors float:

    norm.weight  [D]      optional LayerNorm over the token features (with norm.bias [D])
    norm.bias    [D]
    hidden.weight [H, D]  optional hidden layer (GELU), with hidden.bias [H]
    hidden.bias  [H]
    out.weight   [1, H]   (or [1, D] when there is no hidden layer)
    out.bias     [1]

Metadata (models/common/artefact_header.py): ``exemplar.kind = "token_scorer"``, ``exemplar.version = "1"``,
``exemplar.dim = D``.
score(x) = out(GELU(hidden(norm(x)))) -> one logit per token; higher = keep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common.artefact_header import write_header

SCORER_KIND = "token_scorer"
SCORER_VERSION = 1


class TokenScorer(nn.Module):
    def __init__(self, dim: int, hidden: int = 0, norm: bool = True):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim) if norm else None
        self.hidden = nn.Linear(dim, hidden) if hidden > 0 else None
        self.out = nn.Linear(hidden if hidden > 0 else dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, D] -> [B, N] scores."""
        if tokens.shape[-1] != self.dim:
            raise ValueError(f"the token scorer expects {self.dim}-dim tokens, got {tokens.shape[-1]}-dim ones")
        x = tokens.to(self.out.weight.dtype)
        if self.norm is not None:
            x = self.norm(x)
        if self.hidden is not None:
            x = F.gelu(self.hidden(x))
        return self.out(x)[..., 0]

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "TokenScorer":
        if "out.weight" not in state_dict or "out.bias" not in state_dict:
            raise ValueError(
                f"not a token scorer file: needs out.weight and out.bias, found keys {sorted(state_dict)[:8]}"
            )
        hidden = state_dict.get("hidden.weight")
        dim = hidden.shape[1] if hidden is not None else state_dict["out.weight"].shape[1]
        scorer = cls(dim, hidden=0 if hidden is None else hidden.shape[0], norm="norm.weight" in state_dict)
        expected = set(scorer.state_dict())
        if set(state_dict) != expected:
            raise ValueError(
                f"token scorer keys do not match version {SCORER_VERSION}: "
                f"missing {sorted(expected - set(state_dict))}, "
                f"unexpected {sorted(set(state_dict) - expected)}"
            )
        for key, value in scorer.state_dict().items():
            if tuple(state_dict[key].shape) != tuple(value.shape):
                raise ValueError(
                    f"token scorer tensor {key} has shape {tuple(state_dict[key].shape)}, expected {tuple(value.shape)}"
                )
        scorer.load_state_dict({k: v.float() for k, v in state_dict.items()})
        return scorer.train(False)

    def metadata(self) -> dict[str, str]:
        return write_header(SCORER_KIND, SCORER_VERSION, {"dim": self.dim})


def init_token_scorer(dim: int, hidden: int = 64, seed: int = 0) -> TokenScorer:
    """A freshly initialised scorer (deterministic for a seed), e.g. the starting point of training."""
    generator = torch.Generator().manual_seed(seed)
    scorer = TokenScorer(dim, hidden=hidden)
    with torch.no_grad():
        for module in (scorer.hidden, scorer.out):
            if module is None:
                continue
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.weight.shape[1] ** 0.5)
            module.bias.zero_()
    return scorer.train(False)
