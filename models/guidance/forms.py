"""Multi-prediction guidance formulas: CFG, InstructPix2Pix/DualCFG (regular, nested), DreamInpainter,
DreamStyler style-and-context (paper Eq. 11 and the official code's 0.5 form).

Each formula combines the model's predictions of one step (tensors, or plain floats) with scalar
scales. Every formula is affine with coefficients that sum to 1, so it gives the same result on
noise (epsilon) predictions as on denoised (x0) predictions (x0 = x - sigma * eps with a shared x):
a sampler may apply it to either.

`GuidanceForm` names the predictions a formula takes, in two orders: the order in which they are
batched (positive first, negative second, so hooks that read index 0 / 1 as cond / uncond see the
right pair) and the order from the most to the least conditioned (used to reduce a step whose other
coefficients vanish to plain CFG, see `plain_cfg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

STYLE_CONTEXT_FORMS = {"official": 0.5, "paper": 1.0}
"""Weight on the four style/context terms: DreamStyler's official code uses 0.5, the paper's Eq. 11 uses 1."""


def cfg(positive, negative, scale):
    """Classifier-free guidance, in the operation order of ComfyUI's `cfg_function`."""
    return negative + (positive - negative) * scale


def dual_regular(cond1, cond2, negative, cfg_conds, cfg_cond2_negative):
    """InstructPix2Pix / ComfyUI `DualCFGGuider` regular: n + s2 (c2 - n) + s1 (c1 - c2)."""
    return negative + (cond2 - negative) * cfg_cond2_negative + (cond1 - cond2) * cfg_conds


def dual_nested(cond1, cond2, negative, cfg_conds, cfg_cond2_negative):
    """ComfyUI `DualCFGGuider` nested: n + s2 ((c2 + s1 (c1 - c2)) - n)."""
    text = cond2 + (cond1 - cond2) * cfg_conds
    return negative + cfg_cond2_negative * (text - negative)


def dreaminpainter(reference_text, reference, negative, text_scale, reference_scale):
    """DreamInpainter: the reference kept in both text branches, plus a reference term.

    (ref,∅) + s_text ((ref,text) - (ref,∅)) + s_ref ((ref,∅) - (∅,∅)).
    Equal to `dual_regular` with s1 = s_text and s2 = 1 + s_ref.
    """
    return reference + (reference_text - reference) * text_scale + (reference - negative) * reference_scale


def style_context(full, context, style, negative, neg_scale, style_scale, context_scale, form="official"):
    """DreamStyler style-and-context guidance.

    ∅ + λn (v - ∅) + w [λc (vc - ∅) + λs (v - vc) + λs (vs - ∅) + λc (v - vs)]
    with v = full prompt, vc = context-only prompt, vs = style-only prompt, ∅ = negative,
    w = 1 in the paper's Eq. 11 and 0.5 in the official code (`form`).
    """
    if form not in STYLE_CONTEXT_FORMS:
        raise ValueError(f"unknown style_context form {form!r}; expected one of {tuple(STYLE_CONTEXT_FORMS)}")
    w = STYLE_CONTEXT_FORMS[form]
    return (
        negative
        + (full - negative) * neg_scale
        + (context - negative) * (w * context_scale)
        + (full - context) * (w * style_scale)
        + (style - negative) * (w * style_scale)
        + (full - style) * (w * context_scale)
    )


@dataclass(frozen=True)
class GuidanceForm:
    """A guidance formula and the predictions it combines."""

    name: str
    predictions: tuple[str, ...]
    """Argument names of the formula, from the most to the least conditioned."""
    positive: str
    negative: str
    scales: tuple[str, ...]
    formula: Callable
    options: Mapping = None
    """Extra keyword arguments for the formula (e.g. the style_context form)."""

    @property
    def batch_order(self) -> tuple[str, ...]:
        """Positive, negative, then the rest (the order of the batched model call)."""
        rest = tuple(p for p in self.predictions if p not in (self.positive, self.negative))
        return (self.positive, self.negative) + rest

    def check_scales(self, scales: Mapping[str, float]) -> dict[str, float]:
        missing = [s for s in self.scales if s not in scales]
        extra = [s for s in scales if s not in self.scales]
        if missing or extra:
            raise ValueError(f"guidance {self.name!r} takes scales {self.scales}; got {tuple(scales)}")
        values = {}
        for name in self.scales:
            value = float(scales[name])
            if not math.isfinite(value):
                raise ValueError(f"guidance scale {name!r} must be a finite number, got {scales[name]!r}")
            values[name] = value
        return values

    def combine(self, predictions: Mapping[str, object], scales: Mapping[str, float]):
        """Apply the formula to predictions given by name."""
        missing = [p for p in self.predictions if p not in predictions]
        if missing:
            raise ValueError(f"guidance {self.name!r} needs predictions {self.predictions}; missing {tuple(missing)}")
        args = [predictions[p] for p in self.predictions]
        return self.formula(*args, **self.check_scales(scales), **dict(self.options or {}))

    def coefficients(self, scales: Mapping[str, float]) -> dict[str, float]:
        """Weight of each prediction in the (affine) formula: the formula applied to one-hot floats."""
        scales = self.check_scales(scales)
        return {
            name: float(self.formula(*[1.0 if p == name else 0.0 for p in self.predictions], **scales, **dict(self.options or {})))
            for name in self.predictions
        }


def plain_cfg(form: GuidanceForm, scales: Mapping[str, float], tolerance: float = 0.0):
    """If the step reduces to plain CFG between two predictions, return (positive, negative, scale).

    That is the case when at most two coefficients are non-zero: then a A + (1 - a) B = B + a (A - B)
    with A the more conditioned prediction. Returns None when three or more predictions are needed.
    """
    coefficients = form.coefficients(scales)
    active = [p for p in form.predictions if abs(coefficients[p]) > tolerance]
    if len(active) > 2:
        return None
    if len(active) == 2:
        return active[0], active[1], coefficients[active[0]]
    if len(active) == 1:
        richer = active[0]
        poorer = form.negative if richer != form.negative else form.positive
        if richer == form.negative:
            # only the negative counts: CFG at scale 0 between the positive and the negative
            return form.positive, form.negative, 0.0
        return richer, poorer, 1.0
    return form.positive, form.negative, 0.0


FORMS: dict[str, GuidanceForm] = {
    "dual_regular": GuidanceForm(
        "dual_regular", ("cond1", "cond2", "negative"), "cond1", "negative", ("cfg_conds", "cfg_cond2_negative"), dual_regular
    ),
    "dual_nested": GuidanceForm(
        "dual_nested", ("cond1", "cond2", "negative"), "cond1", "negative", ("cfg_conds", "cfg_cond2_negative"), dual_nested
    ),
    "dreaminpainter": GuidanceForm(
        "dreaminpainter",
        ("reference_text", "reference", "negative"),
        "reference_text",
        "negative",
        ("text_scale", "reference_scale"),
        dreaminpainter,
    ),
    **{
        f"style_context_{variant}": GuidanceForm(
            f"style_context_{variant}",
            ("full", "context", "style", "negative"),
            "full",
            "negative",
            ("neg_scale", "style_scale", "context_scale"),
            style_context,
            {"form": variant},
        )
        for variant in ("official", "paper")
    },
}


def get_form(name: str) -> GuidanceForm:
    if name not in FORMS:
        raise ValueError(f"unknown guidance form {name!r}; expected one of {tuple(FORMS)}")
    return FORMS[name]
