"""Top-K reference-token selection (DreamInpainter): score N tokens, keep K, keep their positions.

Using all N dense reference tokens makes a model copy-paste the reference; DreamInpainter keeps a
discriminative subset (K = 24 in the paper). How the paper scores tokens is not verified, so the
scoring rule is a choice:

- ``saliency``: cosine similarity of each token to the subject's anchor feature (the CLS token(s)
  when the token set carries any, else the mask-weighted mean of the spatial tokens);
- ``norm``: the L2 norm of each token;
- ``learned``: a small learned scorer (models/token_scorer.py).

Every criterion is restricted to the subject mask: tokens whose mask value is below the threshold
are only taken when fewer than K tokens lie inside. ``farthest_point`` selection then picks K
tokens from the best ``candidate_pool`` candidates by greedy farthest-point sampling in cosine
distance (starting from the best-scoring one), which trades a little score for diversity.
Ties are broken by the lower token index, so the selection is deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .tokens import ExemplarTokens

CRITERIA = ("saliency", "norm", "learned")
SELECTIONS = ("top_k", "farthest_point")


def saliency_scores(tokens: ExemplarTokens) -> torch.Tensor:
    """[B, N] cosine similarity of every token to the subject anchor (CLS, or the mask-weighted mean)."""
    features = tokens.tokens.float()
    spatial = tokens.positions >= 0
    has_cls = (~spatial).any(dim=1, keepdim=True)
    weights = spatial.float() if tokens.mask is None else tokens.mask.float() * spatial.float()
    # a token set whose mask is empty falls back to the plain mean of its spatial tokens
    empty = weights.sum(dim=1, keepdim=True) <= 0
    weights = torch.where(empty, spatial.float(), weights)
    weights = torch.where(has_cls, (~spatial).float(), weights)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    anchor = torch.einsum("bn,bnd->bd", weights, features)
    return F.cosine_similarity(features, anchor[:, None], dim=-1, eps=1e-8)


def norm_scores(tokens: ExemplarTokens) -> torch.Tensor:
    """[B, N] L2 norm of every token."""
    return tokens.tokens.float().norm(dim=-1)


def eligible_tokens(tokens: ExemplarTokens, threshold: float) -> torch.Tensor:
    """[B, N] bool: inside the subject mask, and spatial whenever the set has spatial tokens."""
    eligible = torch.ones(tokens.batch, tokens.count, dtype=torch.bool, device=tokens.tokens.device)
    if tokens.mask is not None:
        eligible &= tokens.mask.to(eligible.device) >= threshold
    spatial = tokens.positions.to(eligible.device) >= 0
    return eligible & (spatial | ~spatial.any(dim=1, keepdim=True))


def ranked(scores: torch.Tensor, eligible: torch.Tensor | None = None) -> torch.Tensor:
    """[B, N] indices: eligible tokens first, each group by descending score, ties by ascending index."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    if eligible is None:
        return order
    regroup = torch.sort(eligible.gather(1, order).to(torch.uint8), dim=1, descending=True, stable=True).indices
    return order.gather(1, regroup)


def farthest_point(features: torch.Tensor, candidates: list[torch.Tensor], k: int) -> torch.Tensor:
    """Greedy farthest-point sampling (cosine distance): k indices per batch item from its candidates.

    features: [B, N, D]; candidates[b]: 1-D indices into N, best first. Starts with the best
    candidate; each next pick maximises its distance to the nearest pick so far, ties going to the
    better-ranked candidate.
    """
    picked = torch.empty(len(candidates), k, dtype=torch.long, device=features.device)
    for b, pool in enumerate(candidates):
        pool_features = F.normalize(features[b, pool].float(), dim=-1, eps=1e-8)
        nearest = torch.full((len(pool),), float("inf"), device=features.device)
        taken = torch.zeros(len(pool), dtype=torch.bool, device=features.device)
        choice = 0
        for i in range(k):
            picked[b, i] = pool[choice]
            taken[choice] = True
            nearest = torch.minimum(nearest, 1.0 - pool_features @ pool_features[choice])
            if i + 1 < k:
                # argmax returns the first maximum: the best-ranked among equals
                choice = int(torch.where(taken, torch.full_like(nearest, -float("inf")), nearest).argmax())
    return picked


def select_top_k(
    tokens: ExemplarTokens,
    k: int,
    criterion: str = "saliency",
    selection: str = "top_k",
    candidate_pool: int = 96,
    mask_threshold: float = 0.5,
    scorer=None,
) -> ExemplarTokens:
    """Keep K of the N tokens (with their positions and mask values), best first.

    scorer: a callable [B, N, D] -> [B, N] (models/token_scorer.TokenScorer) for criterion 'learned'.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; expected one of {CRITERIA}")
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; expected one of {SELECTIONS}")
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    if k > tokens.count:
        raise ValueError(f"K={k} is larger than the number of reference tokens N={tokens.count}")
    if criterion == "saliency":
        scores = saliency_scores(tokens)
    elif criterion == "norm":
        scores = norm_scores(tokens)
    else:
        if scorer is None:
            raise ValueError("criterion 'learned' needs a token scorer (load one with Load Token Scorer)")
        scores = scorer(tokens.tokens).float()
        if tuple(scores.shape) != (tokens.batch, tokens.count):
            raise ValueError(f"the scorer returned {tuple(scores.shape)}, expected [{tokens.batch}, {tokens.count}]")
    eligible = eligible_tokens(tokens, mask_threshold)
    order = ranked(scores, eligible)
    if selection == "top_k":
        index = order[:, :k]
    else:
        # candidates: the best `candidate_pool` eligible tokens (at least K, topped up from outside)
        sizes = [min(max(k, min(candidate_pool, int(inside))), tokens.count) for inside in eligible.sum(dim=1)]
        index = farthest_point(tokens.tokens, [order[b, :size] for b, size in enumerate(sizes)], k)
    picked = tokens.gather(index)
    return ExemplarTokens(
        picked.tokens,
        picked.positions,
        picked.grid,
        picked.mask,
        dict(tokens.source, selected=f"{criterion}/{selection}", k=k, n=tokens.count),
    )


def straight_through_top_k(
    scores: torch.Tensor, k: int, generator: torch.Generator | None = None, noise: float = 1.0, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A differentiable top-K for training the learned scorer: (index [B, K], weight [B, K]).

    Forward: the hard top-K of the scores plus Gumbel noise of scale `noise` (exploration; 0 = the plain top-K the
    'learned' criterion picks at inference), best first, and weights exactly 1, so the selected tokens enter the
    model exactly as at inference. Backward: each weight carries the gradient of sigmoid((s + g - t) / temperature),
    t half-way between the K-th and (K+1)-th perturbed score: the loss's preference for a stronger or weaker
    selected token reaches its score (a straight-through estimator of the relaxed top-K).
    """
    if k < 1 or k > scores.shape[1]:
        raise ValueError(f"K must be in 1..{scores.shape[1]}, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    gumbel = torch.zeros(scores.shape)
    if noise > 0:
        uniform = torch.rand(scores.shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        gumbel = (-torch.log(-torch.log(uniform)) * noise).float()
    perturbed = scores + gumbel.to(scores.device, scores.dtype)
    order = torch.sort(perturbed.detach(), dim=1, descending=True, stable=True)
    index = order.indices[:, :k]
    kth = order.values[:, k - 1 : k]
    threshold = (kth + order.values[:, k : k + 1]) / 2 if k < scores.shape[1] else kth - temperature
    soft = torch.sigmoid((perturbed - threshold) / temperature).gather(1, index)
    return index, 1 + (soft - soft.detach())  # exactly 1 forward
