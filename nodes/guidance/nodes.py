"""Dual / multi-prediction guidance: GUIDER nodes for SamplerCustomAdvanced and KSampler-shaped nodes.

Forms (models/guidance.py): InstructPix2Pix / DualCFG regular and nested, DreamInpainter
(reference kept in both text branches), DreamStyler style-and-context (paper Eq. 11 or official 0.5).
"""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from .guiders import make_guider, sample_like_ksampler
from ..common.choices import require_choice
from ..common.finite import require_finite

SCALE = {"min": -100.0, "max": 100.0, "step": 0.1, "round": 0.01}
DUAL_STYLES = ["regular", "nested"]
KSAMPLER_GUIDANCE = ["regular", "nested", "dreaminpainter"]
STYLE_CONTEXT_FORMS = ["official", "paper"]

TEXT_SCALE_TOOLTIP = (
    "s1, scales (positive - middle): how much the text beyond the middle condition steers. "
    "regular: n + s2(m - n) + s1(p - m); nested: n + s2((m + s1(p - m)) - n); dreaminpainter: m + s1(p - m) + "
    "s2(m - n). "
    "Plain CFG: regular with s1 = s2 (positive vs negative at that scale); nested with s1 = 1 (at s2); "
    "dreaminpainter with s2 = 0 (positive vs middle at s1). s1 = 0 drops the positive."
)
MIDDLE_SCALE_TOOLTIP = (
    "s2, scales (middle - negative): how much the middle condition (the image / reference alone) steers. "
    "In dreaminpainter it is the extra reference term: the middle's effective CFG scale is 1 + s2, and s2 = 0 "
    "leaves plain CFG of positive vs middle (the negative is then not evaluated)."
)


def _sampler_inputs():
    return [
        io.Combo.Input(
            "sampler_name",
            options=comfy.samplers.KSampler.SAMPLERS,
            tooltip="The sampling algorithm, as in the stock KSampler.",
        ),
        io.Combo.Input(
            "scheduler",
            options=comfy.samplers.KSampler.SCHEDULERS,
            tooltip="The noise schedule, as in the stock KSampler.",
        ),
    ]


def _seed_steps():
    return [
        io.Int.Input(
            "seed",
            default=0,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            control_after_generate=True,
            tooltip="The random seed of the initial noise (same noise as the stock KSampler).",
        ),
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Number of sampling steps."),
    ]


def _latent_denoise():
    return [
        io.Latent.Input("latent_image", tooltip="The latent to denoise (its noise_mask, if any, is honoured)."),
        io.Float.Input(
            "denoise",
            default=1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Fraction of the schedule to run; below 1 keeps the input's structure (img2img).",
        ),
    ]


class DualCFGGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDualCFGGuider",
            display_name="Dual CFG Guider (InstructPix2Pix)",
            category="exemplar/guidance",
            description=(
                "Two-condition guidance as core DualCFGGuider (same inputs, same result), with all three predictions "
                "in one batched model call, the model's pre- and post-CFG hooks run, and predictions whose weight is "
                "zero skipped. regular: n + s2(c2 - n) + s1(c1 - c2); nested: n + s2((c2 + s1(c1 - c2)) - n)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Conditioning.Input(
                    "cond1", tooltip="The fullest condition (e.g. text + image for InstructPix2Pix)."
                ),
                io.Conditioning.Input("cond2", tooltip="The middle condition (e.g. image only)."),
                io.Conditioning.Input("negative", tooltip="The unconditional / negative condition."),
                io.Float.Input(
                    "cfg_conds",
                    default=8.0,
                    **SCALE,
                    tooltip=(
                        "s1, scales (cond1 - cond2). regular: s1 = cfg_cond2_negative gives plain CFG of cond1 "
                        "vs negative; "
                        "nested: s1 = 1 gives plain CFG of cond1 vs negative at cfg_cond2_negative. s1 = 0 "
                        "ignores cond1."
                    ),
                ),
                io.Float.Input(
                    "cfg_cond2_negative",
                    default=8.0,
                    **SCALE,
                    tooltip=(
                        "s2, scales (cond2 - negative) (regular) or the whole nested guidance against the "
                        "negative (nested)."
                    ),
                ),
                io.Combo.Input(
                    "style",
                    options=DUAL_STYLES,
                    default="regular",
                    tooltip=(
                        "regular: InstructPix2Pix form; nested: CFG of cond1 vs cond2 nested inside CFG against the "
                        "negative."
                    ),
                ),
            ],
            outputs=[io.Guider.Output()],
        )

    @classmethod
    def execute(cls, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style) -> io.NodeOutput:
        guider = make_guider(
            model,
            f"dual_{style}",
            {"cond1": cond1, "cond2": cond2, "negative": negative},
            {"cfg_conds": cfg_conds, "cfg_cond2_negative": cfg_cond2_negative},
        )
        return io.NodeOutput(guider)


class DreamInpainterGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDreamInpainterGuider",
            display_name="DreamInpainter Guider",
            category="exemplar/guidance",
            is_experimental=True,
            description=(
                "DreamInpainter guidance: the reference condition stays in both text branches, "
                "(ref,∅) + s_text((ref,text) - (ref,∅)) + s_ref((ref,∅) - (∅,∅)). Equal to the InstructPix2Pix regular "
                "form with s1 = s_text and s2 = 1 + s_ref. No official code exists and the paper's full text "
                "could not be "
                "checked, so this formula is a reading of it: both scales are exposed."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The diffusion model (with the reference injected by the conditioning or a model patch).",
                ),
                io.Conditioning.Input(
                    "reference_text", tooltip="(ref, text): the reference tokens plus the text prompt."
                ),
                io.Conditioning.Input("reference", tooltip="(ref, ∅): the reference tokens with an empty text prompt."),
                io.Conditioning.Input(
                    "negative", tooltip="(∅, ∅): neither reference nor text (e.g. empty prompt, no reference tokens)."
                ),
                io.Float.Input(
                    "text_scale",
                    default=5.0,
                    **SCALE,
                    tooltip=(
                        "s_text, scales ((ref,text) - (ref,∅)): how strongly the text steers with the reference "
                        "held fixed. "
                        "With reference_scale = 0 this is plain CFG of reference_text vs reference at s_text."
                    ),
                ),
                io.Float.Input(
                    "reference_scale",
                    default=1.0,
                    **SCALE,
                    tooltip=(
                        "s_ref, scales ((ref,∅) - (∅,∅)): extra pull towards the reference; the reference's "
                        "effective CFG scale is "
                        "1 + s_ref. 0 removes the term (and the negative prediction is not evaluated)."
                    ),
                ),
            ],
            outputs=[io.Guider.Output()],
        )

    @classmethod
    def execute(cls, model, reference_text, reference, negative, text_scale, reference_scale) -> io.NodeOutput:
        guider = make_guider(
            model,
            "dreaminpainter",
            {"reference_text": reference_text, "reference": reference, "negative": negative},
            {"text_scale": text_scale, "reference_scale": reference_scale},
        )
        return io.NodeOutput(guider)


def _style_context_inputs():
    return [
        io.Conditioning.Input(
            "positive",
            tooltip=(
                "v: the full prompt, e.g. 'A painting of a dog in the style of <tok>' (staged per timestep for "
                "DreamStyler)."
            ),
        ),
        io.Conditioning.Input(
            "context", tooltip="vc: the context-only prompt, the full prompt without 'in the style of <tok>'."
        ),
        io.Conditioning.Input("style", tooltip="vs: the style-only prompt, e.g. 'A painting in the style of <tok>'."),
        io.Conditioning.Input(
            "negative", tooltip="∅: the negative prompt (the official code uses 'low resolution, poorly drawn, ...')."
        ),
    ]


def _style_context_scales():
    return [
        io.Float.Input(
            "neg_scale",
            default=5.0,
            **SCALE,
            tooltip=(
                "λn, scales (v - ∅): ordinary CFG of the full prompt against the negative. With style_scale = "
                "context_scale = 0 the guidance is plain CFG at λn."
            ),
        ),
        io.Float.Input(
            "style_scale",
            default=0.5,
            **SCALE,
            tooltip=(
                "λs, scales (v - vc) + (vs - ∅): pull towards the style. 0 (with context_scale 0) gives plain CFG; "
                "style_scale = context_scale also collapses to plain CFG at λn + w(λs + λc)."
            ),
        ),
        io.Float.Input(
            "context_scale",
            default=3.0,
            **SCALE,
            tooltip=(
                "λc, scales (vc - ∅) + (v - vs): pull towards the content of the prompt. 0 (with style_scale 0) "
                "gives plain CFG at λn."
            ),
        ),
        io.Combo.Input(
            "form",
            options=STYLE_CONTEXT_FORMS,
            default="official",
            tooltip=(
                "official: the four style/context terms weighted 0.5, as the official DreamStyler code; paper: "
                "weight 1, as Eq. 11 of the paper."
            ),
        ),
    ]


def _style_context_guider(model, positive, context, style, negative, neg_scale, style_scale, context_scale, form):
    return make_guider(
        model,
        f"style_context_{form}",
        {"full": positive, "context": context, "style": style, "negative": negative},
        {"neg_scale": neg_scale, "style_scale": style_scale, "context_scale": context_scale},
    )


class StyleContextGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarStyleContextGuider",
            display_name="Style & Context Guider (DreamStyler)",
            category="exemplar/guidance",
            description=(
                "DreamStyler's style-and-context guidance from four predictions (full, context-only, style-only, "
                "negative) "
                "in one batched model call: ∅ + λn(v - ∅) + w[λc(vc - ∅) + λs(v - vc) + λs(vs - ∅) + λc(v - vs)], "
                "w = 0.5 (official code) or 1 (paper Eq. 11)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                *_style_context_inputs(),
                *_style_context_scales(),
            ],
            outputs=[io.Guider.Output()],
        )

    @classmethod
    def execute(
        cls, model, positive, context, style, negative, neg_scale, style_scale, context_scale, form
    ) -> io.NodeOutput:
        return io.NodeOutput(
            _style_context_guider(
                model, positive, context, style, negative, neg_scale, style_scale, context_scale, form
            )
        )


class DualGuidanceKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarDualGuidanceKSampler",
            display_name="Dual-Guidance KSampler",
            category="exemplar/guidance",
            description=(
                "The stock KSampler with two-condition guidance: positive (p), middle (m) and negative (n), "
                "regular / nested InstructPix2Pix forms or DreamInpainter's reference-kept form. Same seed, noise, "
                "schedule and denoise handling as KSampler; all predictions of a step in one batched model call."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                *_seed_steps(),
                io.Float.Input("text_scale", default=7.5, **SCALE, tooltip=TEXT_SCALE_TOOLTIP),
                io.Float.Input("middle_scale", default=1.5, **SCALE, tooltip=MIDDLE_SCALE_TOOLTIP),
                *_sampler_inputs(),
                io.Conditioning.Input(
                    "positive", tooltip="p: the fullest condition (text + image, or (ref, text) for DreamInpainter)."
                ),
                io.Conditioning.Input(
                    "middle", tooltip="m: the middle condition (image only, or (ref, ∅) for DreamInpainter)."
                ),
                io.Conditioning.Input(
                    "negative", tooltip="n: the unconditional / negative condition ((∅, ∅) for DreamInpainter)."
                ),
                *_latent_denoise(),
                io.Combo.Input(
                    "guidance",
                    options=KSAMPLER_GUIDANCE,
                    default="regular",
                    tooltip=(
                        "regular: n + s2(m - n) + s1(p - m) (InstructPix2Pix, core DualCFGGuider regular); "
                        "nested: n + s2((m + s1(p - m)) - n); dreaminpainter: m + s1(p - m) + s2(m - n)."
                    ),
                ),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        seed,
        steps,
        text_scale,
        middle_scale,
        sampler_name,
        scheduler,
        positive,
        middle,
        negative,
        latent_image,
        denoise,
        guidance,
    ) -> io.NodeOutput:
        require_finite(denoise=denoise)
        require_choice("sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS)
        require_choice("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)
        if guidance == "dreaminpainter":
            guider = make_guider(
                model,
                "dreaminpainter",
                {"reference_text": positive, "reference": middle, "negative": negative},
                {"text_scale": text_scale, "reference_scale": middle_scale},
            )
        elif guidance in DUAL_STYLES:
            guider = make_guider(
                model,
                f"dual_{guidance}",
                {"cond1": positive, "cond2": middle, "negative": negative},
                {"cfg_conds": text_scale, "cfg_cond2_negative": middle_scale},
            )
        else:
            raise ValueError(f"guidance must be one of {KSAMPLER_GUIDANCE}, got {guidance!r}")
        return io.NodeOutput(sample_like_ksampler(guider, seed, steps, sampler_name, scheduler, latent_image, denoise))


class StyleContextKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ExemplarStyleContextKSampler",
            display_name="Style & Context KSampler (DreamStyler)",
            category="exemplar/guidance",
            description=(
                "The stock KSampler with DreamStyler's four-prediction style-and-context guidance (full, context-only, "
                "style-only, negative prompts). Same seed, noise, schedule and denoise handling as KSampler."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                *_seed_steps(),
                *_sampler_inputs(),
                *_style_context_inputs(),
                *_latent_denoise(),
                *_style_context_scales(),
            ],
            outputs=[io.Latent.Output(tooltip="The denoised latent.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        seed,
        steps,
        sampler_name,
        scheduler,
        positive,
        context,
        style,
        negative,
        latent_image,
        denoise,
        neg_scale,
        style_scale,
        context_scale,
        form,
    ) -> io.NodeOutput:
        require_finite(denoise=denoise)
        require_choice("sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS)
        require_choice("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)
        guider = _style_context_guider(
            model, positive, context, style, negative, neg_scale, style_scale, context_scale, form
        )
        return io.NodeOutput(sample_like_ksampler(guider, seed, steps, sampler_name, scheduler, latent_image, denoise))


NODES = [DualCFGGuider, DreamInpainterGuider, StyleContextGuider, DualGuidanceKSampler, StyleContextKSampler]
