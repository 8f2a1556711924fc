"""What the trainers (DreamBooth, DreamStyler) need from ComfyUI beyond its inference path; one way each.

Two ComfyUI habits break autograd, and each has one workaround here; neither assigns to a ComfyUI
class or instance:

- Models loaded inside ComfyUI's executor hold inference tensors, which autograd cannot save for
  backward. `differentiable_frozen_weights` registers a weight wrapper on every frozen weight of a
  *cloned* patcher (`ModelPatcher.add_weight_wrapper`, the hook ComfyUI's own LoRA training uses);
  a layer with a wrapper runs ComfyUI's casting path, which hands the layer a fresh copy of its weight,
  and the wrapper copies whatever is still an inference tensor. `release` unloads the clone and takes
  the wrappers off again, so the MODEL / CLIP the user passed in stay as they were.
- ComfyUI's `CLIPLayer.forward` adds its residuals in place (`x += ...`). `transformer_forward` runs the
  same submodules (layer norms, attention, MLP, final norm, clip-skip layer) with out-of-place residuals,
  and `TextEncoder` encodes prompts through it; a test holds it equal to ComfyUI's own encode.

Under Dynamic VRAM (newer ComfyUI on NVIDIA) a loaded patcher streams its weights from the CPU, so the trainers
train on `comfyui_compat.training_clone` / `training_clip` (classic patchers, fully loaded) and
`check_on_load_device` refuses to train when the weights did not reach the load device.
"""

from __future__ import annotations

import torch

from . import comfyui_compat


class _NormalTensor:
    """Weight wrapper: an inference tensor is copied once into a normal tensor, reused while that weight stays."""

    def __init__(self):
        self.cached = None

    def __call__(self, weight):
        if not weight.is_inference():
            return weight
        if self.cached is None or self.cached[0] is not weight:
            self.cached = (weight, weight.clone())
        return self.cached[1]


def differentiable_frozen_weights(patcher, trained_keys=()) -> list:
    """Wrap every weight and bias of `patcher`'s layers except `trained_keys`; returns the wrappers (for `release`).

    Call on a training clone (`comfyui_compat.training_clone`, `training_clip(clip).patcher`) under
    torch.inference_mode(False), before loading it.
    """
    trained_keys = set(trained_keys)
    wrappers = []
    for path, module in patcher.model.named_modules():
        if not hasattr(module, "weight_function"):
            continue
        for name in ("weight", "bias"):
            key = f"{path}.{name}"
            if getattr(module, name, None) is not None and key not in trained_keys:
                wrapper = _NormalTensor()
                patcher.add_weight_wrapper(key, wrapper)
                wrappers.append(wrapper)
    return wrappers


def release(patcher, wrappers) -> None:
    """Unload the training clone and take `wrappers` off the modules it shares with the original."""
    comfyui_compat.unload(patcher)
    comfyui_compat.remove_weight_wrappers(patcher.model, wrappers)


def _same_device(a: torch.device, b: torch.device) -> bool:
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def check_on_load_device(patcher, what: str) -> torch.device:
    """The load device, once every weight of the loaded training clone is on it (else a clear error)."""
    device = torch.device(patcher.load_device)
    elsewhere = [(n, p.device) for n, p in patcher.model.named_parameters() if not _same_device(p.device, device)]
    if elsewhere:
        name, found = elsewhere[0]
        raise RuntimeError(
            f"{what}: {len(elsewhere)} weights stayed off the load device {device} after loading (e.g. {name} on "
            f"{found}); training would run there. ComfyUI kept the model offloaded: free memory or lower the batch"
        )
    return device


def prediction_type(model_sampling) -> str:
    """ "eps" or "v"; a clear error for the samplings the trainers' noising does not describe (EDM, flow, x0)."""
    import comfy.model_sampling as ms

    if not isinstance(model_sampling, (ms.EDM, ms.CONST, ms.X0)):
        if isinstance(model_sampling, ms.V_PREDICTION):
            return "v"
        if isinstance(model_sampling, ms.EPS):
            return "eps"
    raise ValueError(
        f"training supports eps- and v-prediction models; this model samples with {type(model_sampling).__name__}"
    )


def start_run(settings, model) -> tuple[int, torch.dtype]:
    """The pair-dataset trainers' first checks (their settings, the model's prediction type): (world size, dtype)."""
    from ...models.common.train_loop import TRAIN_DTYPES, rank_and_world

    settings.validate()
    prediction_type(model.get_model_object("model_sampling"))
    return rank_and_world()[1], TRAIN_DTYPES[settings.dtype]


def inner_clip(clip):
    """(outer, inner): the CLIP's SD1ClipModel-style wrapper and its one text tower (SD1.x: clip_l, SD2.x: clip_h)."""
    outer = comfyui_compat.clip_model(clip)
    name = getattr(outer, "clip", None)
    inner = getattr(outer, name, None) if name else None
    if inner is None or not hasattr(inner, "process_tokens") or not hasattr(inner.transformer, "text_model"):
        raise ValueError(
            f"training needs an SD1.x-style CLIP text encoder (one CLIP-L/H tower); got {type(outer).__name__}"
        )
    return outer, inner


def _layer_options(clip, outer, inner):
    """The output layer ComfyUI's encode would use for this CLIP (its clip-skip setting), read as encode sets it."""
    outer.reset_clip_options()
    if clip.layer_idx is not None:
        outer.set_clip_options({"layer": clip.layer_idx})
    layer, layer_idx = inner.layer, inner.layer_idx
    outer.reset_clip_options()
    if layer not in ("last", "hidden") or inner.enable_attention_masks or inner.zero_out_masked:
        raise ValueError(f"training does not support this CLIP's output options (layer {layer!r}, attention masks)")
    return layer, layer_idx, inner.layer_norm_hidden_state


def transformer_forward(
    transformer, embeds: torch.Tensor, layer: str, layer_idx, layer_norm_hidden_state: bool, num_tokens=None
):
    """ComfyUI's CLIPTextModel forward (causal mask, no padding mask) with out-of-place residuals.

    With `num_tokens` (process_tokens' per-row lengths) it returns (hidden, projected pooled output) like a tower
    whose pooled output is read (SDXL's bigG): the final-norm state at each row's last token, through
    `text_projection`."""
    from comfy.ldm.modules.attention import optimized_attention_for_device

    text_model = transformer.text_model
    position = comfyui_compat.cast_to(
        text_model.embeddings.position_embedding.weight, dtype=embeds.dtype, device=embeds.device
    )
    x = embeds + position
    length = x.shape[1]
    mask = torch.full((length, length), -torch.finfo(x.dtype).max, dtype=x.dtype, device=x.device).triu_(1)
    attention = optimized_attention_for_device(x.device, mask=True, small_input=True)
    layers = text_model.encoder.layers
    stop = None
    if layer == "hidden":
        stop = layer_idx + len(layers) if layer_idx < 0 else layer_idx
    intermediate = None
    for i, block in enumerate(layers):
        x = x + block.self_attn(block.layer_norm1(x), mask, attention)
        x = x + block.mlp(block.layer_norm2(x))
        if i == stop:
            intermediate = x
    if layer == "last":
        hidden = text_model.final_layer_norm(x)
    else:
        hidden = text_model.final_layer_norm(intermediate) if layer_norm_hidden_state else intermediate
    if num_tokens is None:
        return hidden
    last = text_model.final_layer_norm(x) if layer != "last" else hidden
    pooled = last[torch.arange(last.shape[0]), torch.tensor([n - 1 for n in num_tokens])]
    return hidden, transformer.text_projection(pooled)


class TextEncoder:
    """Differentiable prompt -> cross-attention context [B, 77, dim] through a ComfyUI CLIP (one 77-token chunk)."""

    def __init__(self, clip):
        self.clip = clip
        self.outer, self.inner = inner_clip(clip)
        self.options = _layer_options(clip, self.outer, self.inner)
        self.key = self.outer.clip_name

    def rows(self, prompt: str, tokens: dict) -> list:
        """The one chunk of `tokens` (clip.tokenize's output, or one built like it) as a row for `encode_rows`."""
        chunks = tokens[self.key]
        if len(chunks) != 1 or any(weight != 1.0 for _, weight in chunks[0]):
            raise ValueError(
                f"training prompt {prompt!r} must fit in one 77-token chunk and carry no (word:weight) syntax"
            )
        return [token for token, _ in chunks[0]]

    def encode_rows(self, rows: list[list]) -> torch.Tensor:
        """rows: one token list per sample (ids, or embedding tensors in place of ids) -> context, float32."""
        device = self.inner.transformer.get_input_embeddings().weight.device
        embeds, _, _, _ = self.inner.process_tokens(rows, device)
        return transformer_forward(self.inner.transformer, embeds, *self.options).float()

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return self.encode_rows([self.rows(p, self.clip.tokenize(p)) for p in prompts])


class SDXLTextEncoder:
    """SDXL's two towers differentiably: prompt -> (context [B, 77, 2048] = CLIP-L | bigG hidden states, bigG's
    projected pooled output [B, 1280]), as ComfyUI's SDXLClipModel encodes one 77-token chunk."""

    KEYS = ("l", "g")

    def __init__(self, clip):
        self.clip = clip
        outer = comfyui_compat.clip_model(clip)
        self.towers = {key: getattr(outer, f"clip_{key}", None) for key in self.KEYS}
        if any(t is None or not hasattr(t, "process_tokens") for t in self.towers.values()):
            raise ValueError(f"expected SDXL's two text encoders (clip_l, clip_g); got {type(outer).__name__}")
        outer.reset_clip_options()
        if clip.layer_idx is not None:
            outer.set_clip_options({"layer": clip.layer_idx})
        self.options = {k: (t.layer, t.layer_idx, t.layer_norm_hidden_state) for k, t in self.towers.items()}
        outer.reset_clip_options()
        if any(o[0] not in ("last", "hidden") for o in self.options.values()):
            raise ValueError(f"training does not support this CLIP's output options {self.options}")

    def rows(self, prompt: str, tokens: dict) -> dict:
        """{"l": row, "g": row}: the one chunk per tower of `tokens` (clip.tokenize's output or one built like it)."""
        out = {}
        for key in self.KEYS:
            chunks = tokens[key]
            if len(chunks) != 1 or any(weight != 1.0 for _, weight in chunks[0]):
                raise ValueError(
                    f"training prompt {prompt!r} must fit in one 77-token chunk and carry no (word:weight) syntax"
                )
            out[key] = [token for token, _ in chunks[0]]
        return out

    def encode_rows(self, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = {}
        for key, tower in self.towers.items():
            device = tower.transformer.get_input_embeddings().weight.device
            embeds, _, num_tokens, _ = tower.process_tokens([r[key] for r in rows], device)
            hidden[key] = transformer_forward(tower.transformer, embeds, *self.options[key], num_tokens=num_tokens)
        context = torch.cat([hidden["l"][0].float(), hidden["g"][0].float()], dim=-1)
        return context, hidden["g"][1].float()

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_rows([self.rows(p, self.clip.tokenize(p)) for p in prompts])


def is_sdxl_clip(clip) -> bool:
    outer = comfyui_compat.clip_model(clip)
    return hasattr(outer, "clip_l") and hasattr(outer, "clip_g")


def text_encoder(clip):
    """The differentiable encoder for this CLIP: `SDXLTextEncoder` for SDXL's two towers, else `TextEncoder`."""
    return SDXLTextEncoder(clip) if is_sdxl_clip(clip) else TextEncoder(clip)


def sdxl_size_conditioning(width: int, height: int) -> dict:
    """SDXL's size conditioning for an uncropped image shown at its own size (what encode_adm reads)."""
    return {"width": width, "height": height, "crop_w": 0, "crop_h": 0, "target_width": width, "target_height": height}


def sample_sigmas(model_sampling, batch: int, generator: torch.Generator) -> torch.Tensor:
    """One training sigma per sample: a uniform percent of the schedule mapped by the model's own sampling."""
    # percent_to_sigma returns sentinels at exactly 0 (a huge sigma) and 1 (sigma 0): stay strictly inside
    percents = torch.rand(batch, generator=generator).clamp(1e-6, 1 - 1e-6)
    return torch.tensor([float(model_sampling.percent_to_sigma(p.item())) for p in percents])


class TrainingVAE:
    """A VAE for a training loop: encodes without gradients, decodes with them (for image-space losses).

    Runs a private deep copy of the VAE's first-stage model on the VAE's device: the copy's tensors are normal ones
    even when the VAE was loaded inside ComfyUI's executor (inference tensors, which autograd cannot save, also sit
    outside the layers a weight wrapper reaches, e.g. TAESD's latent scale), and the user's VAE is never touched.
    The encode is ComfyUI's VAE.encode without tiling (crop to the compression factor, scale to [-1, 1],
    first-stage encode); the decode is VAE.decode's first-stage decode and `process_output`.
    """

    def __init__(self, vae):
        import copy

        self.vae = vae
        with torch.inference_mode(False):
            self.model = copy.deepcopy(vae.first_stage_model).to(device=vae.device).requires_grad_(False).train(False)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE [B, H, W, 3] -> raw latents (as VAEEncode returns them), float32 on the VAE's device."""
        vae = self.vae
        with torch.no_grad():
            x = vae.process_input(vae.vae_encode_crop_pixels(pixels[..., :3]).movedim(-1, 1))
            return self.model.encode(x.to(device=vae.device, dtype=vae.vae_dtype)).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents -> images [B, 3, H, W] in [0, 1], differentiable in the latents."""
        vae = self.vae
        return vae.process_output(self.model.decode(latents.to(device=vae.device, dtype=vae.vae_dtype)).float())

    def release(self) -> None:
        self.model = None


def call_model(patched, xt, sigmas, dtype, **conds):
    """patched.model.apply_model with what the sampler hands it (comfy.sampler_helpers.prepare_model_patcher): the
    clone's patches and its wrappers (the DtC hint path is one)."""
    import comfy.patcher_extension

    options = dict(patched.model_options["transformer_options"])
    options["wrappers"] = comfy.patcher_extension.copy_nested_dicts(patched.wrappers)
    with torch.autocast(xt.device.type, dtype=dtype, enabled=dtype != torch.float32):
        return patched.model.apply_model(xt, sigmas, transformer_options=options, **conds)


class LoraSession:
    """A loaded training clone of a MODEL: a UNet LoRA (the DreamBooth trainer's modules; settings.lora_rank,
    lora_alpha, seed) when `lora` (trained) or `resume_pairs` ask for one, the frozen weights made differentiable,
    optional gradient checkpointing, a TrainingVAE (None without a VAE). `release` leaves the MODEL as it was."""

    def __init__(self, model, vae, dtype, settings, lora: bool, resume_pairs: dict, what: str):
        from types import SimpleNamespace

        import comfy.model_management

        from ..dreambooth.trainer import _attach, unet_lora_names

        self.patched = comfyui_compat.training_clone(model)
        self.patched.set_model_compute_dtype(dtype)
        self.adapters = []
        if lora or resume_pairs:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                names = unet_lora_names(self.patched.model)
                shape = SimpleNamespace(rank=settings.lora_rank, alpha=settings.lora_alpha)
                self.adapters = _attach(self.patched, names, shape, resume_pairs)
            missing = set(resume_pairs) - {a.name for a in self.adapters}
            if missing:
                raise ValueError(f"resume_from: {len(missing)} LoRA entries do not fit this model, e.g. {min(missing)}")
            if not lora:
                for a in self.adapters:
                    a.module.requires_grad_(False)
        self.wrappers = differentiable_frozen_weights(self.patched, {a.weight_key for a in self.adapters})
        self.patched.model.requires_grad_(False)
        self.checkpointing = comfyui_compat.gradient_checkpointing(
            self.patched.model.diffusion_model, settings.gradient_checkpointing
        )
        self.checkpointing.__enter__()
        comfy.model_management.load_models_gpu([self.patched], force_full_load=True)
        self.device = check_on_load_device(self.patched, what)
        self.vae = TrainingVAE(vae) if vae is not None else None
        self.sampling = self.patched.model.model_sampling

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [p for a in self.adapters for p in (a.module.lora_up.weight, a.module.lora_down.weight)]

    def lora_pairs(self, alpha: float) -> dict:
        from ..dreambooth.trainer import _pairs

        return _pairs(self.adapters, alpha)

    def latent_shape(self, batch: int, resolution: int) -> tuple[int, int, int, int]:
        return (batch, self.patched.model.latent_format.latent_channels, resolution // 8, resolution // 8)

    def draw_noise(self, settings, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A micro-batch's noise and noise levels from `g`, in that order (a resumed run draws the same)."""
        noise = torch.randn(self.latent_shape(settings.batch_size, settings.resolution), generator=g)
        return noise, sample_sigmas(self.sampling, settings.batch_size, g)

    def preview_row(self, denoised: torch.Tensor, masked: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """[1, H, 3W, 3]: the masked source, the reference (resized), the decoded x0 prediction (first sample)."""
        with torch.no_grad():
            decoded = self.vae.decode(self.patched.model.process_latent_out(denoised[:1].detach()))
            decoded = decoded.movedim(1, -1).cpu()
            height, width = decoded.shape[1:3]
            resized = torch.nn.functional.interpolate(
                reference[:1].movedim(-1, 1), size=(height, width), mode="bilinear"
            )
        return torch.cat([masked[:1, :height, :width], resized.movedim(1, -1), decoded], dim=2).clamp(0, 1)

    def release(self):
        self.checkpointing.__exit__(None, None, None)
        if self.vae is not None:
            self.vae.release()
        release(self.patched, [a.module for a in self.adapters] + self.wrappers)
