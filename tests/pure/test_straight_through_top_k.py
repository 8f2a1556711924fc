"""The differentiable top-K the DreamInpainter trainer trains the learned scorer through."""

import pytest
import torch

from comfyui_exemplar.models.dreaminpainter import token_selector as selector


def test_straight_through_top_k_picks_exactly_k_and_passes_gradients_to_the_scores():
    scores = torch.tensor([[0.1, 2.0, -1.0, 0.7, 1.5]], requires_grad=True)
    index, weight = selector.straight_through_top_k(scores, 2, noise=0.0)
    assert index.tolist() == [[1, 4]] and torch.equal(weight.detach(), torch.ones(1, 2))
    (weight * torch.tensor([[1.0, -1.0]])).sum().backward()
    grad = scores.grad[0]
    assert grad[1] > 0 and grad[4] < 0 and grad[0] == 0 and grad[2] == 0 and grad[3] == 0
    # with noise the picks vary by seed but stay K distinct tokens
    picks = {
        tuple(selector.straight_through_top_k(scores.detach(), 2, torch.Generator().manual_seed(s))[0][0].tolist())
        for s in range(30)
    }
    assert len(picks) > 1 and all(len(set(p)) == 2 for p in picks)
    with pytest.raises(ValueError, match="K must be in"):
        selector.straight_through_top_k(scores, 6)
