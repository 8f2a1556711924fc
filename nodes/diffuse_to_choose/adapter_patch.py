"""Diffuse to Choose inside ComfyUI: build / load adapters against a MODEL's UNet, and patch a MODEL clone.

The patch has three parts, all on a clone of the input MODEL:

* a DIFFUSION_MODEL wrapper that runs the hint encoder once per UNet call, i.e. once per sampling
  step for the whole cond/uncond batch ComfyUI stacks together, and hands its features on through
  `transformer_options`;
* an output-block patch that FiLM-modulates each skip feature (and, at the first decoder block,
  the middle block output) with the matching hint feature;
* the adapter wrapped in its own ModelPatcher and registered with `set_additional_models`, so
  `comfy.model_management` loads it to the compute device with the UNet, offloads it with it, and
  can partially load it in low-VRAM mode (its layers are comfy.ops layers).
"""

from __future__ import annotations

import inspect
import os
import uuid

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.patcher_extension
import comfy.utils
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ...models.diffuse_to_choose.adapter import (
    DtCAdapter,
    HintEncoder,
    film_index_for_output_block,
    parse_metadata,
    unet_skip_channels,
)
from ...models.diffuse_to_choose.hint import DtCHint
from ...models.common.tensor_files import readable, require_finite_tensors, shape_message, shape_mismatches
from ..common import comfyui_compat

ADDITIONAL_MODELS_KEY = "exemplar_dtc_adapter"
WRAPPER_KEY = "exemplar_dtc"
# UNet config entries that decide the encoder's shapes: an adapter only fits a model that agrees on all of them.
STRUCTURAL_KEYS = (
    "in_channels",
    "model_channels",
    "channel_mult",
    "num_res_blocks",
    "transformer_depth",
    "transformer_depth_middle",
    "context_dim",
    "adm_in_channels",
    "num_heads",
    "num_head_channels",
    "use_linear_in_transformer",
)
_NOT_SERIALISED = ("dtype", "device", "operations")


def _serialisable_unet_config(unet_config: dict) -> dict:
    config = {}
    for key, value in unet_config.items():
        if key in _NOT_SERIALISED:
            continue
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, (int, float, str, bool, list, dict)) or value is None:
            config[key] = value
    return config


def _structure(config: dict) -> dict:
    return {
        key: (list(v) if isinstance(v, tuple) else v) for key in STRUCTURAL_KEYS if (v := config.get(key)) is not None
    }


def model_description(model) -> tuple[str, dict]:
    """(architecture name, serialisable UNet config) of a MODEL whose diffusion model is a UNet."""
    base = model.model
    if not isinstance(base.diffusion_model, UNetModel):
        raise ValueError(
            f"Diffuse to Choose needs a UNet model (SD1.x / SD2.x / SDXL); this MODEL is "
            f"{type(base.diffusion_model).__name__}"
        )
    return type(base.model_config).__name__, _serialisable_unet_config(base.model_config.unet_config)


def _empty_adapter(base_arch: str, unet_config: dict, latent_channels: int, image_dim: int) -> DtCAdapter:
    """An adapter with uninitialised tensors on the CPU, shaped for `unet_config`."""
    operations = comfy.ops.disable_weight_init
    unet = UNetModel(**unet_config, device="meta", operations=operations)
    encoder = HintEncoder(
        unet.time_embed, unet.input_blocks, unet.middle_block, unet.model_channels, getattr(unet, "label_emb", None)
    )
    skips = unet_skip_channels(
        unet_config["model_channels"], unet_config["channel_mult"], unet_config["num_res_blocks"]
    )
    config = {"base_arch": base_arch, "unet_config": unet_config}
    adapter = DtCAdapter(
        encoder,
        skips,
        latent_channels,
        image_dim,
        unet_config["context_dim"],
        config,
        operations=operations,
        device="meta",
    )
    return adapter.to_empty(device="cpu")


def create_adapter(model, image_dim: int = 1536, seed: int = 0) -> DtCAdapter:
    """A fresh (untrained) adapter whose hint encoder copies `model`'s encoder weights (as patched), fp32."""
    base_arch, unet_config = model_description(model)
    adapter = _empty_adapter(base_arch, unet_config, model.model.latent_format.latent_channels, image_dim)
    comfy.model_management.load_models_gpu([model])  # the weights as the graph sees them (LoRAs applied)
    diffusion_model = model.model.diffusion_model
    source = {
        f"hint_encoder.{name}.{key}": value
        for name in ("time_embed", "input_blocks", "middle_block", "label_emb")
        if hasattr(diffusion_model, name)
        for key, value in getattr(diffusion_model, name).state_dict().items()
    }
    with torch.no_grad():
        for key, tensor in adapter.state_dict(keep_vars=True).items():
            if key.startswith("hint_encoder."):
                tensor.copy_(source[key].to(device="cpu", dtype=torch.float32))
    adapter.float()
    adapter.reset_parameters(seed)
    return adapter.train(False)


def training_copy(adapter: DtCAdapter, state: dict[str, torch.Tensor] | None = None) -> DtCAdapter:
    """A float32 CPU copy of `adapter` (or of its structure holding `state`) with normal, trainable tensors.

    Call under torch.inference_mode(False): an adapter made inside ComfyUI's executor holds inference tensors.
    """
    config = adapter.config
    copy = _empty_adapter(
        config.get("base_arch", "unknown"), config["unet_config"], adapter.latent_channels, adapter.image_dim
    )
    source = adapter.state_dict() if state is None else state
    missing = set(copy.state_dict()) - set(source)
    if missing:
        raise ValueError(f"the adapter state lacks {len(missing)} tensors of this layout, e.g. {sorted(missing)[0]}")
    copy.load_state_dict(
        {k: source[k].detach().clone().to(device="cpu", dtype=torch.float32) for k in copy.state_dict()}
    )
    return copy


def load_adapter(path: str) -> DtCAdapter:
    """Read an adapter file (format in docs/dtc.md); a file of another kind or version is a clear error.

    Tensors are cast to the dtype ComfyUI would run a UNet of that storage dtype in on this machine.
    """
    from safetensors import safe_open

    name = os.path.basename(path)
    with readable(path, name):
        with safe_open(path, framework="pt") as f:
            description = parse_metadata(f.metadata(), source=path)
        state = comfy.utils.load_torch_file(path, safe_load=True)
    missing_config = _missing_unet_config(description["unet_config"])
    if missing_config:
        raise ValueError(
            f"{name}: the adapter header's unet_config is incomplete: it lacks {', '.join(missing_config)} (the file "
            "was not written by DtC Save Adapter or was edited)"
        )
    require_finite_tensors(state, name)
    adapter = _empty_adapter(
        description["base_arch"], description["unet_config"], description["latent_channels"], description["image_dim"]
    )
    if adapter.skip_channels != description["skip_channels"] or adapter.context_dim != description["context_dim"]:
        raise ValueError(f"{path}: its header does not describe a consistent adapter (skip widths or context width)")
    mismatches = shape_mismatches(adapter.state_dict(), state)
    if mismatches:
        part = _ADAPTER_PARTS.get(mismatches[0][0].split(".")[0], "adapter")
        raise ValueError(shape_message(name, part, mismatches))
    # compute dtype as ComfyUI picks it for a UNet with these weights (fp32 on CPU, where fp16 convs crawl)
    dtype = comfy.model_management.unet_dtype(weight_dtype=next(iter(state.values())).dtype)
    adapter.to(dtype)
    missing, unexpected = adapter.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: tensors do not match the DtC layout (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return adapter.train(False)


_ADAPTER_PARTS = {
    "hint_encoder": "hint encoder (the UNet-encoder copy)",
    "hint_adapter": "hint adapter",
    "film": "FiLM modules",
    "image_projection": "image projection",
}


def _missing_unet_config(unet_config) -> list[str]:
    """The UNetModel arguments without a default that a header's unet_config does not give."""
    if not isinstance(unet_config, dict):
        return ["everything (it is not a JSON object)"]
    parameters = inspect.signature(UNetModel.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        and p.name not in unet_config
    ]


def check_compatible(adapter: DtCAdapter, model) -> None:
    """Raise a clear error when the adapter was made for another architecture than `model`."""
    base_arch, unet_config = model_description(model)
    ours, theirs = _structure(adapter.config.get("unet_config", {})), _structure(unet_config)
    if ours != theirs:
        differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        details = ", ".join(f"{k}: adapter {ours.get(k)} vs model {theirs.get(k)}" for k in differing[:4])
        raise ValueError(
            f"this DtC adapter was made for a {adapter.config.get('base_arch')} UNet and does not fit this "
            f"{base_arch} MODEL ({details})"
        )


def hint_channel_offset(model) -> int | None:
    """First input channel of the masked-source latent in the model's input, or None for a plain latent model."""
    base = model.model
    latent_channels = base.latent_format.latent_channels
    in_channels = base.model_config.unet_config["in_channels"]
    widths = {"mask": 1, "mask_inverted": 1, "masked_image": latent_channels, "concat_image": latent_channels}
    offset = latent_channels
    for key in getattr(base, "concat_keys", ()):
        if key in ("masked_image", "concat_image"):
            return offset
        offset += widths.get(key, 0)
    if in_channels == latent_channels:
        return None
    raise ValueError(
        f"cannot find the masked-source latent in this model's {in_channels}-channel input (concat keys "
        f"{base.concat_keys})"
    )


class DtCInjection(comfyui_compat.SharedOnClone):
    """Per-patch state: the adapter, the hint, and the two hooks ComfyUI calls (one object for every clone)."""

    def __init__(
        self,
        adapter: DtCAdapter,
        hint_image: torch.Tensor,
        offset: int,
        base_latent: torch.Tensor | None,
        strength: float,
    ):
        self.adapter = adapter
        self.hint_image = hint_image
        self.offset = offset
        self.base_latent = base_latent  # masked-source latent for models without masked-source channels
        self.strength = strength
        self.key = f"exemplar_dtc_features_{uuid.uuid4().hex}"
        self._adapted: tuple | None = None

    def set_hint(self, hint_image: torch.Tensor) -> None:
        """Swap the hint image (a trainer does, every step); the cached adapted hint is dropped."""
        self.hint_image = hint_image
        self._adapted = None

    def hint_latent(self, latent_shape, device) -> torch.Tensor:
        """Adapted hint (+ masked-source latent when the model has no masked-source channels) at latent size."""
        key = (tuple(latent_shape[-2:]), device, self.adapter.dtype)
        if self._adapted is not None and self._adapted[0] == key and not torch.is_grad_enabled():
            return self._adapted[1]
        height, width = latent_shape[-2] * 8, latent_shape[-1] * 8
        image = self.hint_image[..., :3].movedim(-1, 1).to(device=device, dtype=torch.float32)
        if image.shape[-2:] != (height, width):
            image = torch.nn.functional.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)
        latent = self.adapter.adapt_hint(image)
        if self.base_latent is not None:
            base = self.base_latent.to(device=latent.device, dtype=latent.dtype)
            if base.shape[-2:] != latent.shape[-2:]:
                base = torch.nn.functional.interpolate(
                    base, size=latent.shape[-2:], mode="bilinear", align_corners=False
                )
            if base.shape[0] != latent.shape[0]:
                batch = max(base.shape[0], latent.shape[0])
                base, latent = (
                    comfy.utils.repeat_to_batch_size(base, batch),
                    comfy.utils.repeat_to_batch_size(latent, batch),
                )
            latent = latent + base
        self._adapted = (key, latent)
        return latent

    def diffusion_model_wrapper(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        comfy.model_management.throw_exception_if_processing_interrupted()
        chunks = len(transformer_options.get("cond_or_uncond") or [0])
        hint = hint_for_batch(self.hint_latent(x.shape, x.device), x.shape[0], chunks)
        features = self.adapter.hint_features(x, hint, self.offset, timesteps, context, y)
        transformer_options[self.key] = features
        try:
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
        finally:
            transformer_options.pop(self.key, None)

    def output_block_patch(self, h, hsp, transformer_options):
        features = transformer_options.get(self.key)
        block = transformer_options.get("block")
        if features is None or block is None or block[0] != "output":
            return h, hsp
        n = self.adapter.num_input_blocks
        if block[1] == 0:
            h = self.adapter.modulate(n, h, features[n], self.strength)
        index = film_index_for_output_block(block[1], n)
        return h, self.adapter.modulate(index, hsp, features[index], self.strength)


def hint_for_batch(hint: torch.Tensor, model_batch: int, chunks: int) -> torch.Tensor:
    """The hint tiled to a model call of `chunks` stacked cond/uncond passes over the same latent batch.

    Rule (docs/dtc.md): one hint serves every latent; otherwise hint i belongs to latent i, in every pass.
    """
    latent_batch = model_batch // max(chunks, 1)
    if hint.shape[0] == 1:
        return hint.expand(model_batch, *hint.shape[1:])
    if hint.shape[0] != latent_batch or latent_batch * chunks != model_batch:
        raise ValueError(
            f"the DtC hint has batch {hint.shape[0]} but the latent batch is {latent_batch}: give one hint (used for "
            f"every latent) or one per latent (hint i for latent i)"
        )
    return hint.repeat(chunks, *([1] * (hint.ndim - 1)))


def adapter_model_patcher(adapter: DtCAdapter, model):
    """The one ModelPatcher that manages this adapter's weights (made once, shared by every patched clone)."""
    patcher = getattr(adapter, "_exemplar_patcher", None)
    if patcher is None or patcher.load_device != model.load_device:
        patcher = comfy.model_patcher.ModelPatcher(
            adapter, load_device=model.load_device, offload_device=model.offload_device
        )
        # kept on the adapter (a plain attribute: a ModelPatcher is no nn.Module, so it is not registered as a
        # submodule) so that every MODEL patched with this adapter shares one copy of its weights on the device
        adapter._exemplar_patcher = patcher
    return patcher.clone()


def apply_adapter(
    model, adapter: DtCAdapter, hint_image: torch.Tensor, masked_source_latent=None, strength: float = 1.0
):
    """A clone of `model` with the DtC hint path; returns (patched MODEL, the injection state).

    `masked_source_latent` (model space) is needed only by a model without masked-source input channels.
    """
    latent = None if masked_source_latent is None else (lambda: masked_source_latent)
    return _apply(model, adapter, hint_image, latent, strength)


def apply_hint(model, adapter: DtCAdapter, hint: DtCHint, strength: float = 1.0, vae=None):
    """apply_adapter for an EXEMPLAR_HINT; `vae` encodes its masked source when the model has no channels for it."""
    latent = None if vae is None else (lambda: model.model.process_latent_in(vae.encode(hint.masked_source)))
    return _apply(model, adapter, hint.hint_image, latent, strength)


def _apply(model, adapter: DtCAdapter, hint_image: torch.Tensor, masked_source_latent, strength: float):
    """`masked_source_latent`: None, or a function returning the latent, called only when the model needs it."""
    check_compatible(adapter, model)
    if hint_image.ndim != 4 or hint_image.shape[-1] < 3:
        raise ValueError(f"hint image must be an IMAGE [B, H, W, 3], got shape {tuple(hint_image.shape)}")
    offset = hint_channel_offset(model)
    base_latent = None
    if offset is None:
        if masked_source_latent is None:
            raise ValueError(
                "this MODEL has no masked-source input channels (not an inpainting model): connect the VAE so "
                "the masked source can be encoded"
            )
        offset = 0
        base_latent = masked_source_latent()
    patched = model.clone()
    injection = DtCInjection(adapter, hint_image, offset, base_latent, strength)
    if strength == 0:
        return patched, injection
    adapter_patcher = adapter_model_patcher(adapter, model)
    patched.set_additional_models(
        ADDITIONAL_MODELS_KEY, patched.get_additional_models_with_key(ADDITIONAL_MODELS_KEY) + [adapter_patcher]
    )
    patched.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, injection.diffusion_model_wrapper
    )
    patched.set_model_output_block_patch(injection.output_block_patch)
    return patched, injection
