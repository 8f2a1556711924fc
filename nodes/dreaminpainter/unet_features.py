"""Dense reference features from the loaded diffusion UNet itself (DreamInpainter's reference encoder).

The UNet of the given MODEL is run once on the reference latent at a fixed timestep (t = 0 by
default) through ComfyUI's model management, on a clone carrying a capture patch: the output of
the chosen block is recorded and the rest of the UNet is skipped. The given MODEL is not changed.

Block names: ``input.<i>`` (output of input block i), ``middle.0`` (output of the middle block),
``output.<i>`` (output of output block i; the last one is not offered: it feeds the final conv),
and ``auto`` = the last block of the 2nd down-sampling stage (input.5 for SD1.x and SDXL).

`encode_reference` is the whole encoder behind ExemplarReferenceEncodeUNet: square resize, VAE,
this UNet pass, then the feature map as tokens (models/dreaminpainter/reference_tokens.py).
"""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.utils
from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, UNetModel

from ...models.common.masks import blank_outside_mask
from ..common.vector_conditioning import vector_entries
from ...models.dreaminpainter.reference_tokens import feature_tokens
from ...models.dreaminpainter.tokens import ExemplarTokens


class _Captured(Exception):
    """Raised by the capture patch to stop the UNet once the wanted block has run."""

    def __init__(self, features: torch.Tensor):
        super().__init__("captured")
        self.features = features


def diffusion_unet(model) -> UNetModel:
    unet = getattr(model.model, "diffusion_model", None)
    if not isinstance(unet, UNetModel):
        raise ValueError(
            f"this reference encoder needs a UNet model (SD1.x / SD2.x / SDXL); the given MODEL is "
            f"{type(unet).__name__}"
        )
    return unet


def valid_blocks(model) -> list[str]:
    """Block names whose output can be captured, in forward order."""
    unet = diffusion_unet(model)
    names = [f"input.{i}" for i in range(len(unet.input_blocks))]
    if unet.middle_block is not None:
        names.append("middle.0")
    names += [f"output.{i}" for i in range(len(unet.output_blocks) - 1)]
    return names


def second_down_stage_block(model) -> str:
    """The last input block of the 2nd resolution stage (just before the 2nd down-sampling)."""
    unet = diffusion_unet(model)
    downsamples = [i for i, block in enumerate(unet.input_blocks) if any(isinstance(m, Downsample) for m in block)]
    if not downsamples:
        raise ValueError("this UNet has no down-sampling stage; choose a block explicitly")
    end = downsamples[1] if len(downsamples) > 1 else len(unet.input_blocks)
    if end - 1 <= downsamples[0]:
        raise ValueError("this UNet's 2nd stage has no blocks; choose a block explicitly")
    return f"input.{end - 1}"


def resolve_block(model, block: str) -> str:
    block = block.strip()
    if block in ("", "auto"):
        return second_down_stage_block(model)
    choices = valid_blocks(model)
    if block not in choices:
        raise ValueError(f"block {block!r} is not a block of this model; valid blocks: auto, {', '.join(choices)}")
    return block


def _capture_patch(block: str):
    kind, index = block.split(".")
    index = int(index)
    if kind == "input":

        def input_patch(h, transformer_options):
            if transformer_options.get("block") == ("input", index):
                raise _Captured(h)
            return h

        return "input_block_patch", input_patch

    # middle.0 is what output block 0 receives; output.i what output block i+1 receives
    wanted = 0 if kind == "middle" else index + 1

    def output_patch(h, hsp, transformer_options):
        if transformer_options.get("block") == ("output", wanted):
            raise _Captured(h)
        return h, hsp

    return "output_block_patch", output_patch


def unet_features(
    model,
    latent: torch.Tensor,
    block: str,
    timestep: int,
    context: torch.Tensor,
    extra: dict | None = None,
    loaded: bool = False,
) -> torch.Tensor:
    """Features [B, C, h, w] at the output of `block` for the raw VAE latent `latent` [B, 4, H, W].

    The latent is fed clean (no noise) at the sigma of discrete timestep `timestep`; `context`
    [1 or B, T, C_ctx] is the text context of the pass; `extra` carries further conditioning
    entries (SDXL: pooled_output and the size values; width / height default to the latent's pixel size).
    `loaded`: `model` is a clone already loaded (a trainer's), which runs as it is with the capture patch added for
    this pass only.
    """
    block = resolve_block(model, block)
    name, patch = _capture_patch(block)
    if loaded:
        patched = model
        options = dict(patched.model_options.get("transformer_options", {}))
        patches = {key: list(value) for key, value in options.get("patches", {}).items()}
        patches[name] = patches.get(name, []) + [patch]
        options["patches"] = patches
    else:
        patched = model.clone()
        patched.set_model_patch(patch, name)
        comfy.model_management.load_models_gpu([patched])
        options = dict(patched.model_options.get("transformer_options", {}))
    base = patched.model
    device = patched.load_device
    batch = latent.shape[0]
    x = base.process_latent_in(latent.to(device, torch.float32))
    model_sampling = patched.get_model_object("model_sampling")
    sigma = model_sampling.sigma(torch.tensor(float(timestep))).reshape(1).expand(batch).to(device)
    # as comfy.samplers.encode_model_conds: the conditioning's own sizes win, else the latent's pixel size
    conds = base.extra_conds(
        **{"width": x.shape[-1] * 8, "height": x.shape[-2] * 8, **dict(extra or {})},
        cross_attn=context.to(device),
        device=device,
        noise=x,
        latent_image=x,
        denoise_mask=torch.zeros_like(x[:, :1]),
        prompt_type="positive",
    )
    kwargs = {key: value.process_cond(batch_size=batch, device=device, area=None).cond for key, value in conds.items()}
    transformer_options = options
    transformer_options["cond_or_uncond"] = [0]
    transformer_options["sigmas"] = sigma
    try:
        with torch.no_grad():
            base.apply_model(x, sigma, transformer_options=transformer_options, **kwargs)
    except _Captured as captured:
        return captured.features.to(comfy.model_management.intermediate_device(), torch.float32)
    raise RuntimeError(f"the UNet finished without passing block {block}")


def square_resize(images: torch.Tensor, size: int, method: str, crop: bool) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, size, size]: the centred square of the short side (crop), or the whole image squashed."""
    return comfy.utils.common_upscale(images, size, size, method, "center" if crop else "disabled")


def reference_context(model, conditioning, batch: int) -> tuple[torch.Tensor, dict]:
    """Text context of the reference pass and SDXL's vector conditioning (pooled output, size and crop values, as
    CLIPTextEncodeSDXL sets them): the given conditioning, else zeros."""
    extra = {}
    if conditioning is not None:
        if len(conditioning) == 0:
            raise ValueError("conditioning is empty")
        context = conditioning[0][0]
        extra = vector_entries(conditioning)
    else:
        if diffusion_unet(model).num_classes is not None:
            raise ValueError(
                "this model needs a text conditioning for the reference pass (e.g. an empty-prompt CLIP Text Encode)"
            )
        context = torch.zeros(1, 77, model.model.model_config.unet_config.get("context_dim"))
    if context.shape[0] not in (1, batch):
        raise ValueError(f"conditioning has batch {context.shape[0]}; expected 1 or the reference batch {batch}")
    return context, extra


def encode_reference(
    model,
    vae,
    reference: torch.Tensor,
    block: str,
    timestep: int,
    resolution: int,
    crop: bool,
    subject_mask: torch.Tensor | None = None,
    blank_background: bool = False,
    conditioning=None,
) -> ExemplarTokens:
    """DreamInpainter's reference encoder: the reference IMAGE, resized to a square `resolution`, through
    the VAE and the model's own UNet; the features of `block` become the tokens."""
    block = resolve_block(model, block)
    if subject_mask is not None and subject_mask.shape[0] not in (1, reference.shape[0]):
        raise ValueError(
            f"subject_mask has batch {subject_mask.shape[0]}; expected 1 or the reference batch {reference.shape[0]}"
        )
    if subject_mask is not None and blank_background:
        reference = blank_outside_mask(reference, subject_mask)
    pixels = square_resize(reference[..., :3].movedim(-1, 1), resolution, "bicubic", crop).movedim(1, -1).clamp(0, 1)
    latent = vae.encode(pixels)
    context, extra = reference_context(model, conditioning, latent.shape[0])
    features = unet_features(model, latent, block, timestep, context, extra)
    square_mask = None
    if subject_mask is not None:
        square_mask = square_resize(subject_mask[:, None].float(), resolution, "bilinear", crop)[:, 0]
    source = {
        "encoder": "unet",
        "block": block,
        "timestep": timestep,
        "dim": features.shape[1],
        "resolution": resolution,
    }
    return feature_tokens(features, square_mask, source)
