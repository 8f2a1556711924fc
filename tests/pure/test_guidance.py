import pytest
import torch

from comfyui_exemplar.models.guidance.forms import (
    FORMS,
    cfg,
    dreaminpainter,
    dual_nested,
    dual_regular,
    get_form,
    plain_cfg,
    style_context,
)

# Fixed small tensors: hand computations below use these exact values.
A = torch.tensor([1.0, 2.0, -1.0])
B = torch.tensor([0.5, 0.0, 1.0])
C = torch.tensor([-2.0, 1.0, 0.0])
D = torch.tensor([3.0, -1.0, 2.0])


def test_cfg_by_hand():
    # u + s (c - u) with c = A, u = B, s = 3
    assert torch.equal(cfg(A, B, 3.0), torch.tensor([2.0, 6.0, -5.0]))


def test_dual_regular_by_hand():
    # n + s2 (c2 - n) + s1 (c1 - c2); c1 = A, c2 = B, n = C, s1 = 2, s2 = 3
    # c2 - n = [2.5, -1, 1]; c1 - c2 = [0.5, 2, -2]
    expected = torch.tensor([-2 + 7.5 + 1.0, 1 - 3 + 4, 0 + 3 - 4])
    assert torch.equal(dual_regular(A, B, C, 2.0, 3.0), expected)


def test_dual_nested_by_hand():
    # n + s2 ((c2 + s1 (c1 - c2)) - n); text = B + 2 (A - B) = [1.5, 4, -3]; text - n = [3.5, 3, -3]
    expected = torch.tensor([-2 + 3 * 3.5, 1 + 9.0, 0 - 9.0])
    assert torch.equal(dual_nested(A, B, C, 2.0, 3.0), expected)


def test_dreaminpainter_by_hand():
    # (ref,∅) + s_t ((ref,text) - (ref,∅)) + s_r ((ref,∅) - (∅,∅)); ref_text = A, ref = B, none = C
    # s_t = 4, s_r = 0.5: B + 4 [0.5, 2, -2] + 0.5 [2.5, -1, 1]
    expected = torch.tensor([0.5 + 2 + 1.25, 0 + 8 - 0.5, 1 - 8 + 0.5])
    assert torch.equal(dreaminpainter(A, B, C, 4.0, 0.5), expected)


def test_dreaminpainter_is_dual_regular_with_one_plus_reference_scale(equal_up_to_rounding):
    g = torch.Generator().manual_seed(0)
    p, m, n = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    equal_up_to_rounding(
        dreaminpainter(p, m, n, 5.0, 1.5), dual_regular(p, m, n, 5.0, 2.5), coefficients=(1.0, 5.0, 2.5)
    )


@pytest.mark.parametrize("form,w", [("paper", 1.0), ("official", 0.5)])
def test_style_context_by_hand(form, w):
    # v = A, vc = B, vs = C, ∅ = D; λn = 5, λs = 2, λc = 3
    v, vc, vs, n = A, B, C, D
    expected = (
        n
        + 5 * (v - n)
        + w * 3 * (vc - n)
        + w * 2 * (v - vc)
        + w * 2 * (vs - n)
        + w * 3 * (v - vs)
    )
    # written out for element 0: 3 + 5(-2) + w[3(-2.5) + 2(0.5) + 2(-5) + 3(3)] = -7 + w(-7.5)
    assert expected[0].item() == -7 - 7.5 * w
    # small integers and halves: every intermediate is exact in float32, whatever the order
    assert torch.equal(style_context(v, vc, vs, n, 5.0, 2.0, 3.0, form=form), expected)


def test_style_context_official_is_paper_at_half_scales(equal_up_to_rounding):
    g = torch.Generator().manual_seed(1)
    v, vc, vs, n = (torch.randn(1, 4, 4, 4, generator=g) for _ in range(4))
    official = style_context(v, vc, vs, n, 5.0, 0.5, 3.0, form="official")
    paper = style_context(v, vc, vs, n, 5.0, 0.25, 1.5, form="paper")
    equal_up_to_rounding(official, paper, coefficients=(1.0, 5.0, 0.5, 3.0))


def test_style_context_unknown_form():
    with pytest.raises(ValueError, match="unknown style_context form 'eq11'"):
        style_context(A, B, C, D, 1.0, 1.0, 1.0, form="eq11")


@pytest.mark.parametrize("name", list(FORMS))
def test_coefficients_reproduce_the_formula_and_sum_to_one(name, equal_up_to_rounding):
    form = FORMS[name]
    scales = dict(zip(form.scales, (2.5, 0.75, 3.0)))
    coefficients = form.coefficients(scales)
    assert sum(coefficients.values()) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(2)
    predictions = {p: torch.randn(2, 3, generator=g) for p in form.predictions}
    linear = sum(coefficients[p] * predictions[p] for p in form.predictions)
    equal_up_to_rounding(
        form.combine(predictions, scales), linear, coefficients=(1.0, *scales.values(), *coefficients.values())
    )


def test_coefficients_by_hand():
    assert get_form("dual_regular").coefficients({"cfg_conds": 2.0, "cfg_cond2_negative": 3.0}) == {
        "cond1": 2.0, "cond2": 1.0, "negative": -2.0,
    }
    assert get_form("dual_nested").coefficients({"cfg_conds": 2.0, "cfg_cond2_negative": 3.0}) == {
        "cond1": 6.0, "cond2": -3.0, "negative": -2.0,
    }
    assert get_form("dreaminpainter").coefficients({"text_scale": 4.0, "reference_scale": 0.5}) == {
        "reference_text": 4.0, "reference": -2.5, "negative": -0.5,
    }
    # paper Eq. 11: v: λn + λs + λc; vc: λc - λs; vs: λs - λc; ∅: 1 - λn - λs - λc
    assert get_form("style_context_paper").coefficients(
        {"neg_scale": 5.0, "style_scale": 2.0, "context_scale": 3.0}
    ) == {
        "full": 10.0,
        "context": 1.0,
        "style": -1.0,
        "negative": -9.0,
    }
    assert get_form("style_context_official").coefficients(
        {"neg_scale": 5.0, "style_scale": 2.0, "context_scale": 3.0}
    ) == {
        "full": 7.5,
        "context": 0.5,
        "style": -0.5,
        "negative": -6.5,
    }


@pytest.mark.parametrize(
    "name,scales,expected",
    [
        # regular: s1 = s2 -> CFG of cond1 vs negative at that scale
        ("dual_regular", {"cfg_conds": 4.0, "cfg_cond2_negative": 4.0}, ("cond1", "negative", 4.0)),
        # regular: s1 = 0 -> CFG of cond2 vs negative at s2
        ("dual_regular", {"cfg_conds": 0.0, "cfg_cond2_negative": 6.0}, ("cond2", "negative", 6.0)),
        # nested: s1 = 1 -> CFG of cond1 vs negative at s2
        ("dual_nested", {"cfg_conds": 1.0, "cfg_cond2_negative": 7.0}, ("cond1", "negative", 7.0)),
        # dreaminpainter: s_ref = 0 -> CFG of (ref,text) vs (ref,∅) at s_text
        ("dreaminpainter", {"text_scale": 5.0, "reference_scale": 0.0}, ("reference_text", "reference", 5.0)),
        # dreaminpainter: s_text = 0 -> CFG of (ref,∅) vs (∅,∅) at 1 + s_ref
        ("dreaminpainter", {"text_scale": 0.0, "reference_scale": 2.0}, ("reference", "negative", 3.0)),
        # style/context: λs = λc = 0 -> CFG at λn (both forms)
        (
            "style_context_paper",
            {"neg_scale": 5.0, "style_scale": 0.0, "context_scale": 0.0},
            ("full", "negative", 5.0),
        ),
        (
            "style_context_official",
            {"neg_scale": 5.0, "style_scale": 0.0, "context_scale": 0.0},
            ("full", "negative", 5.0),
        ),
        # style/context: λs = λc -> the S&C terms cancel into CFG at λn + 2wλ
        (
            "style_context_paper",
            {"neg_scale": 5.0, "style_scale": 1.0, "context_scale": 1.0},
            ("full", "negative", 7.0),
        ),
        (
            "style_context_official",
            {"neg_scale": 5.0, "style_scale": 1.0, "context_scale": 1.0},
            ("full", "negative", 6.0),
        ),
        # scale 1 on a single prediction
        ("dual_regular", {"cfg_conds": 1.0, "cfg_cond2_negative": 1.0}, ("cond1", "negative", 1.0)),
        ("dual_regular", {"cfg_conds": 0.0, "cfg_cond2_negative": 1.0}, ("cond2", "negative", 1.0)),
    ],
)
def test_reductions_to_plain_cfg(name, scales, expected):
    assert plain_cfg(FORMS[name], scales) == expected


def test_full_guidance_needs_every_prediction():
    form = FORMS["style_context_official"]
    scales = {"neg_scale": 5.0, "style_scale": 0.5, "context_scale": 3.0}
    assert plain_cfg(form, scales) is None
    assert all(c != 0 for c in form.coefficients(scales).values())
    assert form.batch_order == ("full", "negative", "context", "style")
    assert FORMS["dual_regular"].batch_order == ("cond1", "negative", "cond2")
    coefficients = FORMS["dual_regular"].coefficients({"cfg_conds": 2.0, "cfg_cond2_negative": 1.0})
    assert coefficients["negative"] == 0 and coefficients["cond1"] != 0 and coefficients["cond2"] != 0


def test_bad_scales_are_clear_errors():
    form = FORMS["dreaminpainter"]
    with pytest.raises(ValueError, match=r"takes scales \('text_scale', 'reference_scale'\)"):
        form.coefficients({"text_scale": 1.0})
    with pytest.raises(ValueError, match="'reference_scale' must be a finite number"):
        form.coefficients({"text_scale": 1.0, "reference_scale": float("nan")})
    with pytest.raises(ValueError, match="missing \\('negative',\\)"):
        form.combine({"reference_text": A, "reference": B}, {"text_scale": 1.0, "reference_scale": 1.0})
    with pytest.raises(ValueError, match="unknown guidance form 'cfg'"):
        get_form("cfg")
