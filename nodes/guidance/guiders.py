"""Multi-prediction guiders on ComfyUI's CFGGuider (formulas in models/guidance.py).

One step evaluates every prediction the formula needs in ONE `calc_cond_batch` call (ComfyUI may
still split the batch when memory is short), runs the model's pre-CFG hooks on all predictions,
combines them, then runs the post-CFG hooks on the result. Predictions whose coefficient is zero at
the chosen scales are not evaluated; when only two remain the step is exactly ComfyUI's own
`sampling_function` (plain CFG), so the guider then matches the stock KSampler bit for bit,
including the model's `sampler_cfg_function`, pre- and post-CFG hooks.
"""

from __future__ import annotations

import logging

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import node_helpers

from ...models.guidance.forms import GuidanceForm, get_form, plain_cfg

# cond key per prediction name: the form's positive and negative use ComfyUI's own keys, so that
# ControlNet/GLIGEN propagation from "positive" (samplers.process_conds) works as in the stock guider.
_MIDDLE_PROMPT_TYPE = {
    "cond2": "negative",  # as core DualCFGGuider marks its middle conditioning
    "reference": "negative",
    "context": "positive",
    "style": "positive",
}


class MultiPredictionGuider(comfy.samplers.CFGGuider):
    """CFGGuider combining 3 or 4 predictions with a formula of models/guidance.py."""

    def __init__(self, model_patcher, form: str | GuidanceForm):
        super().__init__(model_patcher)
        self.form = form if isinstance(form, GuidanceForm) else get_form(form)
        self.scales: dict[str, float] = {}
        self._warned_cfg_function = False

    def _key(self, prediction: str) -> str:
        if prediction == self.form.positive:
            return "positive"
        if prediction == self.form.negative:
            return "negative"
        return prediction

    def set_conds(self, **conds):
        expected = set(self.form.predictions)
        if set(conds) != expected:
            raise ValueError(
                f"guidance {self.form.name!r} takes conditionings {self.form.predictions}; got {tuple(conds)}"
            )
        prepared = {}
        for name, cond in conds.items():
            if cond is None:
                raise ValueError(f"guidance {self.form.name!r}: conditioning {name!r} is missing")
            key = self._key(name)
            if key not in ("positive", "negative"):
                cond = node_helpers.conditioning_set_values(
                    cond, {"prompt_type": _MIDDLE_PROMPT_TYPE.get(name, "positive")}
                )
            prepared[key] = cond
        self.inner_set_conds(prepared)

    def set_scales(self, **scales):
        self.scales = self.form.check_scales(scales)
        # what code reading `guider.cfg` sees: the weight of the positive prediction
        self.cfg = self.form.coefficients(self.scales)[self.form.positive]

    def set_cfg(self, cfg):  # CFGGuider API; a multi-prediction guider takes named scales
        raise TypeError(f"guidance {self.form.name!r} takes named scales {self.form.scales}: use set_scales()")

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        model = self.inner_model
        disable_skip = model_options.get("disable_cfg1_optimization", False)
        reduced = None if disable_skip else plain_cfg(self.form, self.scales)
        if reduced is not None:
            positive, negative, scale = reduced
            return comfy.samplers.sampling_function(
                model,
                x,
                timestep,
                self.conds.get(self._key(negative)),
                self.conds.get(self._key(positive)),
                scale,
                model_options=model_options,
                seed=seed,
            )

        if "sampler_cfg_function" in model_options and not self._warned_cfg_function:
            logging.warning(
                "exemplar guidance %s: the model's sampler_cfg_function replaces a two-prediction CFG formula and "
                "is not applied to a %d-prediction step (pre- and post-CFG hooks are).",
                self.form.name,
                len(self.form.predictions),
            )
            self._warned_cfg_function = True

        coefficients = self.form.coefficients(self.scales)
        order = self.form.batch_order
        conds = [self.conds.get(self._key(p)) if (disable_skip or coefficients[p] != 0.0) else None for p in order]
        out = comfy.samplers.calc_cond_batch(model, conds, x, timestep, model_options)

        cond_scale = self.cfg
        for fn in model_options.get("sampler_pre_cfg_function", []):
            args = {
                "conds": conds,
                "conds_out": out,
                "cond_scale": cond_scale,
                "timestep": timestep,
                "input": x,
                "sigma": timestep,
                "model": model,
                "model_options": model_options,
            }
            out = fn(args)

        predictions = dict(zip(order, out))
        result = self.form.combine(predictions, self.scales)

        for fn in model_options.get("sampler_post_cfg_function", []):
            args = {
                "denoised": result,
                "cond": conds[0],
                "uncond": conds[1],
                "cond_scale": cond_scale,
                "model": model,
                "uncond_denoised": out[1],
                "cond_denoised": out[0],
                "sigma": timestep,
                "model_options": model_options,
                "input": x,
                # beyond cfg_function's arguments: every prediction of this step by name
                "guidance_form": self.form.name,
                "guidance_denoised": predictions,
            }
            result = fn(args)
        return result


def make_guider(model, form: str, conds: dict, scales: dict) -> MultiPredictionGuider:
    guider = MultiPredictionGuider(model, form)
    guider.set_conds(**conds)
    guider.set_scales(**scales)
    return guider


def sample_like_ksampler(
    guider, seed: int, steps: int, sampler_name: str, scheduler: str, latent: dict, denoise: float = 1.0
) -> dict:
    """What the stock KSampler node does (noise from the seed, sigmas from steps/scheduler/denoise,
    noise mask, preview, progress), with `guider` in place of the stock CFGGuider."""
    model = guider.model_patcher
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    noise_mask = latent.get("noise_mask")
    callback = latent_preview.prepare_callback(model, steps)
    disable_pbar = not comfy.utils.PROGRESS_BAR_ENABLED
    ksampler = comfy.samplers.KSampler(
        model,
        steps=steps,
        device=model.load_device,
        sampler=sampler_name,
        scheduler=scheduler,
        denoise=denoise,
        model_options=model.model_options,
    )
    sampler = comfy.samplers.sampler_object(sampler_name)
    samples = guider.sample(
        noise,
        latent_image,
        sampler,
        ksampler.sigmas,
        denoise_mask=noise_mask,
        callback=callback,
        disable_pbar=disable_pbar,
        seed=seed,
    )
    out = latent.copy()
    out["samples"] = samples.to(comfy.model_management.intermediate_device())
    return out
