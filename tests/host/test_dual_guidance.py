"""Multi-prediction guidance on the tiny SD1.5 model: reductions to the stock KSampler, equality to
core DualCFGGuider, an unbatched reference for DreamStyler's guidance, UNet calls per step, hooks."""

import pytest
import torch

from exemplar_dev.host import pack_submodule

STEPS = 3


@pytest.fixture
def model(tiny_sd15):
    return tiny_sd15[0]


def conditioning(seed):
    return [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(seed)), {}]]


P, M, N, S = conditioning(1), conditioning(2), conditioning(3), conditioning(4)


def latent(batch=1):
    return {"samples": torch.zeros(batch, 4, 4, 4)}


def stock_ksampler(node, model, positive, negative, cfg, seed=7, sampler="euler", denoise=1.0, lat=None):
    return node("KSampler")().sample(
        model, seed, STEPS, cfg, sampler, "normal", positive, negative, lat or latent(), denoise=denoise
    )[0]["samples"]


def dual_ksampler(
    node, model, guidance, s1, s2, seed=7, sampler="euler", denoise=1.0, lat=None, positive=P, middle=M, negative=N
):
    return (
        node("ExemplarDualGuidanceKSampler")
        .execute(
            model=model,
            seed=seed,
            steps=STEPS,
            text_scale=s1,
            middle_scale=s2,
            sampler_name=sampler,
            scheduler="normal",
            positive=positive,
            middle=middle,
            negative=negative,
            latent_image=lat or latent(),
            denoise=denoise,
            guidance=guidance,
        )
        .result[0]["samples"]
    )


def style_ksampler(node, model, neg, sty, con, form, seed=7, lat=None):
    return (
        node("ExemplarStyleContextKSampler")
        .execute(
            model=model,
            seed=seed,
            steps=STEPS,
            sampler_name="euler",
            scheduler="normal",
            positive=P,
            context=M,
            style=S,
            negative=N,
            latent_image=lat or latent(),
            denoise=1.0,
            neg_scale=neg,
            style_scale=sty,
            context_scale=con,
            form=form,
        )
        .result[0]["samples"]
    )


def style_guider(node, model, neg, sty, con, form):
    conds = dict(positive=P, context=M, style=S, negative=N)
    scales = dict(neg_scale=neg, style_scale=sty, context_scale=con)
    return node("ExemplarStyleContextGuider").execute(model=model, **conds, **scales, form=form).result[0]


def custom_sample(node, model, guider, seed=7):
    sampler = node("KSamplerSelect").execute(sampler_name="euler").result[0]
    sigmas = node("BasicScheduler").execute(model=model, scheduler="normal", steps=STEPS, denoise=1.0).result[0]
    noise = node("RandomNoise").execute(noise_seed=seed).result[0]
    return node("SamplerCustomAdvanced").execute(noise, guider, sampler, sigmas, latent()).result[0]["samples"]


@pytest.fixture
def same_value(equal_up_to_rounding):
    """Samples of two guiders whose combinations are equal in exact arithmetic: rounding per step, in units of
    the combination's scales (the written form's coefficients) times the predictions' magnitude (~1e2 here)."""

    def check(ours, theirs, *scales):
        equal_up_to_rounding(ours, theirs, coefficients=(1.0, *scales), roundings=STEPS)

    return check


# --- reductions to plain CFG equal the stock KSampler (same seed) ---------------------------------


@pytest.mark.parametrize(
    "guidance,s1,s2,positive,negative,cfg",
    [
        ("regular", 4.0, 4.0, P, N, 4.0),  # s1 = s2: CFG of positive vs negative
        ("regular", 0.0, 6.0, M, N, 6.0),  # s1 = 0: CFG of middle vs negative
        ("nested", 1.0, 5.0, P, N, 5.0),  # s1 = 1: CFG of positive vs negative at s2
        ("dreaminpainter", 5.0, 0.0, P, M, 5.0),  # s_ref = 0: CFG of (ref,text) vs (ref,∅)
        ("dreaminpainter", 0.0, 2.0, M, N, 3.0),  # s_text = 0: CFG of (ref,∅) vs (∅,∅) at 1 + s_ref
        ("regular", 1.0, 1.0, P, N, 1.0),  # scale 1: positive only
    ],
)
def test_dual_ksampler_reduces_to_stock_ksampler(node, model, guidance, s1, s2, positive, negative, cfg):
    ours = dual_ksampler(node, model, guidance, s1, s2)
    assert torch.equal(ours, stock_ksampler(node, model, positive, negative, cfg))  # the stock CFG path itself


def test_reduction_with_ancestral_sampler_denoise_and_batch(node, model):
    lat = {"samples": torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(5))}
    ours = dual_ksampler(node, model, "regular", 3.0, 3.0, seed=11, sampler="euler_ancestral", denoise=0.6, lat=lat)
    stock = stock_ksampler(node, model, P, N, 3.0, seed=11, sampler="euler_ancestral", denoise=0.6, lat=lat)
    assert ours.shape == (2, 4, 4, 4)
    assert torch.equal(ours, stock)


@pytest.mark.parametrize("form", ["official", "paper"])
def test_style_context_reduces_to_stock_ksampler(node, model, form):
    assert torch.equal(style_ksampler(node, model, 5.0, 0.0, 0.0, form), stock_ksampler(node, model, P, N, 5.0))
    # λs = λc: the style/context terms cancel into CFG at λn + w(λs + λc)
    w = 0.5 if form == "official" else 1.0
    assert torch.equal(style_ksampler(node, model, 4.0, 1.0, 1.0, form), stock_ksampler(node, model, P, N, 4.0 + 2 * w))


# --- equal to core DualCFGGuider -------------------------------------------------------------------


@pytest.mark.parametrize(
    "style,s1,s2", [("regular", 3.0, 1.5), ("nested", 3.0, 1.5), ("regular", 2.0, 1.0), ("nested", 0.5, 4.0)]
)
def test_dual_equals_core_dual_cfg_guider(node, model, same_value, style, s1, s2):
    inputs = dict(model=model, cond1=P, cond2=M, negative=N, cfg_conds=s1, cfg_cond2_negative=s2, style=style)
    ours = custom_sample(node, model, node("ExemplarDualCFGGuider").execute(**inputs).result[0])
    core = custom_sample(node, model, node("DualCFGGuider").execute(**inputs).result[0])
    same_value(ours, core, s1, s2, s1 * s2)
    assert not torch.allclose(ours, stock_ksampler(node, model, P, N, s1), atol=1e-3)


def test_dual_ksampler_regular_equals_core_dual_cfg_guider(node, model, same_value):
    core_guider = node("DualCFGGuider").execute(model, P, M, N, 3.0, 1.5, "regular").result[0]
    same_value(dual_ksampler(node, model, "regular", 3.0, 1.5), custom_sample(node, model, core_guider), 3.0, 1.5)


def test_dreaminpainter_equals_core_regular_with_one_plus_reference_scale(node, model, same_value):
    ours = node("ExemplarDreamInpainterGuider").execute(
        model=model, reference_text=P, reference=M, negative=N, text_scale=4.0, reference_scale=0.5
    ).result[0]
    core = node("DualCFGGuider").execute(model, P, M, N, 4.0, 1.5, "regular").result[0]
    same_value(custom_sample(node, model, ours), custom_sample(node, model, core), 4.0, 0.5, 1.5)


# --- DreamStyler: batched guider equals an unbatched reference of the formula -----------------------


def reference_style_context_guider(node, model, neg, sty, con, w):
    import comfy.samplers as samplers

    class Reference(samplers.CFGGuider):
        """The four predictions batched in another order (v, vc, vs, ∅), then the formula written out by hand.
        (Unbatched calls would differ by float rounding of a different batch size, amplified by the scales.)"""

        def predict_noise(self, x, timestep, model_options={}, seed=None):
            keys = ["positive", "context", "style", "negative"]
            v, vc, vs, n = samplers.calc_cond_batch(
                self.inner_model, [self.conds[k] for k in keys], x, timestep, model_options
            )
            return n + neg * (v - n) + w * (con * (vc - n) + sty * (v - vc) + sty * (vs - n) + con * (v - vs))

    guider = Reference(model)
    guider.inner_set_conds({"positive": P, "context": M, "style": S, "negative": N})
    return guider


@pytest.mark.parametrize("form,w", [("official", 0.5), ("paper", 1.0)])
def test_style_context_equals_hand_formula(node, model, same_value, form, w):
    ours = style_guider(node, model, 5.0, 0.5, 3.0, form)
    reference = reference_style_context_guider(node, model, 5.0, 0.5, 3.0, w)
    ours_out = custom_sample(node, model, ours)
    same_value(ours_out, custom_sample(node, model, reference), 5.0, w * 3.0, w * 0.5, w * 0.5, w * 3.0)
    assert not torch.allclose(ours_out, stock_ksampler(node, model, P, N, 5.0), atol=1e-3)


def test_style_context_ksampler_equals_guider_through_sampler_custom(node, model):
    guider = style_guider(node, model, 5.0, 2.0, 1.0, "paper")
    assert torch.equal(style_ksampler(node, model, 5.0, 2.0, 1.0, "paper"), custom_sample(node, model, guider))


# --- one batched UNet call per step ------------------------------------------------------------------


def counting(model):
    calls = []
    counted = model.clone()

    def wrapper(apply_model, args):
        calls.append(sorted(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    counted.set_model_unet_function_wrapper(wrapper)
    return counted, calls


@pytest.mark.parametrize(
    "guidance,s1,s2,batch",
    [("regular", 3.0, 1.5, [0, 1, 2]), ("nested", 3.0, 1.5, [0, 1, 2]), ("dreaminpainter", 5.0, 1.0, [0, 1, 2]),
     ("dreaminpainter", 5.0, 0.0, [0, 1]), ("regular", 2.0, 2.0, [0, 1]), ("regular", 1.0, 1.0, [0])],
)
def test_one_batched_unet_call_per_step_dual(node, model, guidance, s1, s2, batch):
    counted, calls = counting(model)
    dual_ksampler(node, counted, guidance, s1, s2)
    assert calls == [batch] * STEPS
    assert "model_function_wrapper" not in model.model_options  # the input MODEL is untouched


def test_one_batched_unet_call_per_step_style_context(node, model):
    counted, calls = counting(model)
    style_ksampler(node, counted, 5.0, 0.5, 3.0, "official")
    assert calls == [[0, 1, 2, 3]] * STEPS
    counted, calls = counting(model)
    style_ksampler(node, counted, 5.0, 0.0, 0.0, "official")
    assert calls == [[0, 1]] * STEPS


# --- the model's pre- and post-CFG hooks run ------------------------------------------------------------


def test_pre_cfg_hook_runs_on_every_prediction(node, model, same_value):
    seen = []
    hooked = model.clone()

    def all_positive(args):  # every prediction replaced by the positive's: guidance collapses to it
        seen.append(len(args["conds_out"]))
        return [args["conds_out"][0]] * len(args["conds_out"])

    hooked.set_model_sampler_pre_cfg_function(all_positive)
    out = style_ksampler(node, hooked, 5.0, 0.5, 3.0, "official")
    assert seen == [4] * STEPS
    # the UNet batched 4 (or 3) rows vs 1 row: its own rounding differs; without the hook the gap is ~1e1
    same_value(out, stock_ksampler(node, model, P, N, 1.0))


def test_post_cfg_hook_gets_the_combined_result(node, model, same_value):
    seen = []
    hooked = model.clone()

    def keep_positive(args):
        seen.append((args["guidance_form"], sorted(args["guidance_denoised"])))
        assert torch.equal(args["cond_denoised"], args["guidance_denoised"]["cond1"])
        return args["cond_denoised"]

    hooked.set_model_sampler_post_cfg_function(keep_positive)
    out = dual_ksampler(node, hooked, "regular", 3.0, 1.5)
    assert seen == [("dual_regular", ["cond1", "cond2", "negative"])] * STEPS
    # the UNet batched 4 (or 3) rows vs 1 row: its own rounding differs; without the hook the gap is ~1e1
    same_value(out, stock_ksampler(node, model, P, N, 1.0))


# --- errors -----------------------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(node, model):
    guiders = pack_submodule("nodes.guidance.guiders")
    with pytest.raises(ValueError, match="conditioning 'reference' is missing"):
        guiders.make_guider(
            model,
            "dreaminpainter",
            {"reference_text": P, "reference": None, "negative": N},
            {"text_scale": 1.0, "reference_scale": 1.0},
        )
    with pytest.raises(ValueError, match="takes conditionings"):
        guiders.make_guider(
            model, "dual_regular", {"cond1": P, "negative": N}, {"cfg_conds": 1.0, "cfg_cond2_negative": 1.0}
        )
    with pytest.raises(ValueError, match="unknown guidance form 'dual_zigzag'"):
        guiders.make_guider(model, "dual_zigzag", {}, {})
    guider = guiders.make_guider(
        model, "dual_nested", {"cond1": P, "cond2": M, "negative": N}, {"cfg_conds": 2.0, "cfg_cond2_negative": 3.0}
    )
    assert guider.cfg == 6.0  # weight of cond1: s1 * s2
    with pytest.raises(TypeError, match="use set_scales"):
        guider.set_cfg(5.0)
