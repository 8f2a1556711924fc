import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exemplar.models.dreaminpainter.token_scorer import TokenScorer, init_token_scorer
from comfyui_exemplar.models.dreaminpainter.token_selector import (
    CRITERIA,
    SELECTIONS,
    farthest_point,
    norm_scores,
    saliency_scores,
    select_top_k,
)
from comfyui_exemplar.models.dreaminpainter.tokens import ExemplarTokens, spatial_positions


def grid_tokens(batch=1, h=4, w=4, dim=8, seed=0, mask=None):
    features = torch.randn(batch, h * w, dim, generator=torch.Generator().manual_seed(seed))
    return ExemplarTokens(features, spatial_positions(batch, h, w), (h, w), mask, {"encoder": "test"})


def test_norm_criterion_picks_the_largest_tokens_in_order():
    tokens = grid_tokens()
    norms = tokens.tokens[0].norm(dim=-1)
    picked = select_top_k(tokens, 5, "norm")
    expected = torch.argsort(norms, descending=True)[:5]
    assert torch.equal(picked.positions[0], expected)
    assert torch.equal(picked.tokens[0], tokens.tokens[0, expected])
    assert picked.source["k"] == 5 and picked.source["n"] == 16 and picked.source["encoder"] == "test"


def test_saliency_is_cosine_to_the_mask_weighted_mean():
    mask = torch.zeros(1, 16)
    mask[0, [1, 2, 7]] = torch.tensor([1.0, 0.5, 1.0])
    tokens = grid_tokens(mask=mask)
    anchor = (tokens.tokens[0] * mask[0, :, None]).sum(0) / mask.sum()
    expected = F.cosine_similarity(tokens.tokens[0], anchor[None], dim=-1)
    torch.testing.assert_close(saliency_scores(tokens)[0], expected)


def test_saliency_uses_the_cls_token_as_anchor_and_never_selects_it():
    spatial = grid_tokens()
    cls = torch.randn(1, 1, 8, generator=torch.Generator().manual_seed(5))
    tokens = ExemplarTokens(
        torch.cat([cls, spatial.tokens], 1), torch.cat([torch.full((1, 1), -1), spatial.positions], 1), (4, 4)
    )
    expected = F.cosine_similarity(spatial.tokens[0], cls[0], dim=-1)
    torch.testing.assert_close(saliency_scores(tokens)[0, 1:], expected)
    picked = select_top_k(tokens, 16, "saliency")
    assert (picked.positions >= 0).all()
    assert torch.equal(picked.positions[0], torch.argsort(expected, descending=True, stable=True))


def test_learned_scorer_ranks_by_its_output():
    tokens = grid_tokens(dim=6)
    scorer = TokenScorer(6, hidden=0, norm=False)
    with torch.no_grad():
        scorer.out.weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 0]]))
        scorer.out.bias.zero_()
    picked = select_top_k(tokens, 3, "learned", scorer=scorer)
    assert torch.equal(picked.positions[0], torch.argsort(tokens.tokens[0, :, 0], descending=True)[:3])


def test_farthest_point_prefers_spread_over_duplicates():
    # tokens 0..2 nearly identical and best-scoring; token 3 points elsewhere
    features = torch.tensor([[[1.0, 0.0], [1.0, 0.01], [1.0, 0.02], [0.0, 1.0]]])
    picked = farthest_point(features, [torch.tensor([0, 1, 2, 3])], 2)
    assert picked.tolist() == [[0, 3]]


def test_scorer_file_layout_round_trip_and_errors():
    scorer = init_token_scorer(8, hidden=4, seed=3)
    state = scorer.state_dict()
    assert sorted(state) == ["hidden.bias", "hidden.weight", "norm.bias", "norm.weight", "out.bias", "out.weight"]
    again = TokenScorer.from_state_dict(dict(state))
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(again(x), scorer(x), rtol=0, atol=0)
    assert scorer.metadata() == {"exemplar.kind": "token_scorer", "exemplar.version": "1", "exemplar.dim": "8"}
    with pytest.raises(ValueError, match="not a token scorer file"):
        TokenScorer.from_state_dict({"weight": torch.zeros(1)})
    bad = dict(state)
    bad["hidden.bias"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"hidden.bias has shape \(5,\), expected \(4,\)"):
        TokenScorer.from_state_dict(bad)
    with pytest.raises(ValueError, match="expects 8-dim tokens, got 7-dim"):
        scorer(torch.zeros(1, 2, 7))


def test_errors_name_both_numbers():
    with pytest.raises(ValueError, match="K=17 is larger than the number of reference tokens N=16"):
        select_top_k(grid_tokens(), 17)
    with pytest.raises(ValueError, match="needs a token scorer"):
        select_top_k(grid_tokens(), 2, "learned")
    with pytest.raises(ValueError, match="unknown criterion"):
        select_top_k(grid_tokens(), 2, "random")


@st.composite
def token_sets(draw):
    batch = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    dim = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, h * w, dim, generator=generator)
    if draw(st.booleans()):  # duplicated tokens exercise the tie-breaking
        features[:, -1] = features[:, 0]
    mask = (torch.rand(batch, h * w, generator=generator) > 0.5).float() if draw(st.booleans()) else None
    tokens = ExemplarTokens(features, spatial_positions(batch, h, w), (h, w), mask)
    k = draw(st.integers(1, h * w))
    return tokens, k, draw(st.sampled_from(CRITERIA)), draw(st.sampled_from(SELECTIONS)), draw(st.integers(1, 40))


@settings(max_examples=80, deadline=None)
@given(token_sets())
def test_selector_properties(case):
    tokens, k, criterion, selection, pool = case
    scorer = init_token_scorer(tokens.dim, hidden=4, seed=1) if criterion == "learned" else None
    picked = select_top_k(tokens, k, criterion, selection, candidate_pool=pool, scorer=scorer)
    again = select_top_k(tokens, k, criterion, selection, candidate_pool=pool, scorer=scorer)
    # output size
    assert picked.tokens.shape == (tokens.batch, k, tokens.dim) and picked.grid == tokens.grid
    # determinism
    assert torch.equal(picked.tokens, again.tokens) and torch.equal(picked.positions, again.positions)
    for b in range(tokens.batch):
        positions = picked.positions[b]
        # distinct tokens, each the source token at its position (positions consistent)
        assert len(set(positions.tolist())) == k
        assert torch.equal(picked.tokens[b], tokens.tokens[b, positions])
        if tokens.mask is not None:
            assert torch.equal(picked.mask[b], tokens.mask[b, positions])
            inside = int((tokens.mask[b] >= 0.5).sum())
            # mask respected: only inside tokens when there are enough, else every inside token
            assert int((picked.mask[b] >= 0.5).sum()) == min(k, inside)
    if selection == "top_k":
        scores = {"saliency": saliency_scores, "norm": norm_scores}.get(criterion)
        if scores is not None and tokens.mask is None:
            values = scores(tokens)
            for b in range(tokens.batch):  # best first, and no unpicked token beats a picked one
                chosen = values[b, picked.positions[b]]
                assert (chosen[:-1] >= chosen[1:]).all()
                rest = torch.ones(tokens.count, dtype=torch.bool)
                rest[picked.positions[b]] = False
                if rest.any():
                    assert values[b, rest].max() <= chosen.min()
