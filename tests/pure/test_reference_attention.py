import math

import pytest
import torch
import torch.nn.functional as F

from comfyui_exemplar.models.dreaminpainter.reference_attention import reference_logit_bias, tile_reference
from exemplar_dev.oracles import attention_with_reference
from comfyui_exemplar.models.dreaminpainter.token_projection import (
    TokenProjection,
    init_token_projection,
    inject_context,
)


def qkv(batch=2, length=6, refs=3, heads=2, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randn(batch, n, heads * d, generator=g)  # noqa: E731
    return make(length), make(length), make(length), make(refs), make(refs)


def test_weight_one_is_plain_concatenation():
    q, k, v, kr, vr = qkv()
    out = attention_with_reference(q, k, v, kr, vr, heads=2, weight=1.0)
    split = lambda t: t.reshape(2, t.shape[1], 2, 4).transpose(1, 2)  # noqa: E731
    expected = F.scaled_dot_product_attention(split(q), split(torch.cat([k, kr], 1)), split(torch.cat([v, vr], 1)))
    torch.testing.assert_close(out, expected.transpose(1, 2).reshape(2, 6, 8))


def test_weight_is_the_multiplicity_of_the_reference_tokens():
    q, k, v, kr, vr = qkv()
    twice = attention_with_reference(q, k, v, torch.cat([kr, kr], 1), torch.cat([vr, vr], 1), heads=2, weight=1.0)
    torch.testing.assert_close(attention_with_reference(q, k, v, kr, vr, heads=2, weight=2.0), twice)
    tiny = attention_with_reference(q, k, v, kr, vr, heads=2, weight=1e-12)
    plain = attention_with_reference(q, k, v, kr[:, :0], vr[:, :0], heads=2, weight=1.0)
    torch.testing.assert_close(tiny, plain)


def test_logit_bias_layout_and_tiling():
    bias = reference_logit_bias(3, [2, 1], [1.0, 0.5])
    torch.testing.assert_close(bias[0, 0], torch.tensor([0, 0, 0, 0, 0, math.log(0.5)]))
    with pytest.raises(ValueError, match="must be positive"):
        reference_logit_bias(3, [2], [0.0])
    tokens = torch.arange(6.0).reshape(2, 3, 1)
    assert torch.equal(tile_reference(tokens, 2, 2)[2:], tokens)
    assert tile_reference(tokens[:1], 3, 2).shape == (6, 3, 1)
    with pytest.raises(ValueError, match="the reference tokens have batch 2; the latent batch is 3"):
        tile_reference(tokens, 3, 1)


def test_projection_layout_zero_gate_and_context_injection():
    projection = init_token_projection(6, 4, seed=1)
    assert projection.is_silent and torch.equal(projection(torch.randn(1, 3, 6)), torch.zeros(1, 3, 4))
    state = projection.state_dict()
    assert sorted(state) == ["gate", "norm.bias", "norm.weight", "proj.bias", "proj.weight"]
    assert projection.metadata()["exemplar.kind"] == "token_projection"
    state["gate"] = torch.ones(1)
    loaded = TokenProjection.from_state_dict(state)
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(loaded(x), F.layer_norm(x @ state["proj.weight"].T + state["proj.bias"], (4,)))
    with pytest.raises(ValueError, match="not a token projection file"):
        TokenProjection.from_state_dict({"proj.weight": torch.zeros(4, 6)})
    context, tokens = torch.randn(1, 5, 4), torch.randn(2, 3, 4)
    appended = inject_context(context, tokens, "append", 0.5)
    assert appended.shape == (2, 8, 4) and torch.equal(appended[:, :5], context.expand(2, -1, -1))
    torch.testing.assert_close(appended[:, 5:], 0.5 * tokens)
    torch.testing.assert_close(inject_context(context, tokens, "replace", 2.0), 2 * tokens)
    with pytest.raises(ValueError, match="reference tokens have dim 3, the conditioning has dim 4"):
        inject_context(context, torch.randn(1, 2, 3), "append", 1.0)
