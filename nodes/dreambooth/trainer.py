"""DreamBooth LoRA training on ComfyUI's own MODEL / CLIP patchers (shared by the node and the CLI).

ComfyUI pieces reused, as `comfy_extras/nodes_train.py` (TrainLoraNode) uses them:
`comfy.weight_adapter.LoRAAdapter.create_train` builds each trainable low-rank module (LoraDiff:
up kaiming-initialised, down zero, so the untrained LoRA is exactly the base model);
`ModelPatcher.add_weight_wrapper` puts it in front of the frozen weight on a clone of the MODEL
(and of the CLIP's patcher for text-encoder LoRA); `load_models_gpu(force_full_load)` loads the
clone (a classic patcher under Dynamic VRAM, `comfyui_compat.training_clone`) and training checks that
its weights reached the load device; the model's own `model_sampling` picks sigmas,
`models/common/noising.py` noises latents and `apply_model` predicts; the optional gradient
checkpointing is nodes_train's own per-block patch (through `comfyui_compat.gradient_checkpointing`).
The inference-tensor and in-place-residual workarounds, and the differentiable text encoder, are the
ones the DreamStyler trainer uses too (`nodes/common/training.py`).

What DreamBooth adds (Ruiz et al. 2022, diffusers' examples as practised): every micro-batch is
[instance images with "a [identifier] [class noun]"; class images with "a [class noun]"] and the
loss is mse(instance) + lambda * mse(class) in epsilon space (models/prior_preservation.py);
LoRA only on the attention q/k/v/out projections; optional LoRA on the CLIP text encoder's
attention (SDXL: on both text encoders, and every UNet input carries SDXL's size conditioning of the training
images, uncropped, as the class images are generated with).
Noise, timesteps and image choice of step s come from a generator seeded by
(seed, s, micro-batch, rank), so a resumed run continues exactly where a checkpoint left off.
Under torch.distributed (torchrun, any backend) each rank draws its own data and the gradients are
averaged with all_reduce before every optimizer step, so all ranks hold identical weights.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

import comfy.model_management
import comfy.utils
from comfy.weight_adapter import LoRAAdapter

from ...models.common import noising
from ...models.common.train_loop import (
    TRAIN_DTYPES,
    average_gradients,
    distributed,
    load_optimizer_state,
    output_path,
    pick,
    save_optimizer_state,
    step_generator,
)
from ...models.common.image_folder import IMAGE_SUFFIXES, fit_images, image_files, load_images
from ...models.dreambooth.lora_file import (
    SDXL_TEXT_ENCODER_PREFIXES,
    UNET_PREFIX,
    LoraPair,
    is_text_attention_projection,
    is_unet_attention_projection,
    kohya_name,
    load_lora_file,
    lora_metadata,
    lora_state_dict,
    read_lora_state_dict,
    save_lora_file,
    text_encoder_kohya_name,
)
from ...models.dreambooth.prior_preservation import prior_preservation_loss
from ..common import comfyui_compat, training


@dataclass
class DreamBoothSettings:
    """Training hyper-parameters (defaults: diffusers' DreamBooth-LoRA recipe, lr 1e-4)."""

    rank: int = 4
    alpha: float = 4.0
    learning_rate: float = 1e-4
    steps: int = 400
    batch_size: int = 1
    grad_accumulation: int = 1
    prior_loss_weight: float = 1.0
    train_text_encoder: bool = False
    seed: int = 0
    dtype: str = "fp32"
    checkpoint_every: int = 0
    gradient_checkpointing: bool = False

    def validate(self):
        checks = [
            (self.rank >= 1, f"rank must be >= 1, got {self.rank}"),
            (self.alpha > 0, f"alpha must be > 0, got {self.alpha}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.grad_accumulation >= 1, f"grad_accumulation must be >= 1, got {self.grad_accumulation}"),
            (self.prior_loss_weight >= 0, f"prior_loss_weight must be >= 0, got {self.prior_loss_weight}"),
            (self.dtype in TRAIN_DTYPES, f"dtype must be one of {list(TRAIN_DTYPES)}, got {self.dtype!r}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class PromptSet:
    """Prompt texts, or fixed conditionings ([[tensor, {pooled_output: ...}]]) when no CLIP is trained."""

    instance_prompt: str = ""
    class_prompt: str = ""
    instance_conditioning: list | None = None
    class_conditioning: list | None = None


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, str]
    step: int
    losses: list[dict] = field(default_factory=list)
    optimizer_state: dict | None = None


@dataclass
class _Adapter:
    name: str  # kohya name in the file
    weight_key: str  # key on the patcher
    module: torch.nn.Module  # comfy LoraDiff


def _diffusers_names(model) -> dict[str, str]:
    """ldm UNet module path -> diffusers module path (ComfyUI's own table), for kohya-style names."""
    try:
        table = comfy.utils.unet_to_diffusers(model.model_config.unet_config)
    except Exception:  # not a UNet ComfyUI can map (then the ldm path itself is used; the loader accepts both)
        return {}
    return {
        ldm[: -len(".weight")]: diffusers[: -len(".weight")]
        for diffusers, ldm in table.items()
        if ldm.endswith(".weight")
    }


def unet_lora_names(model) -> dict[str, str]:
    """{weight key on the MODEL patcher: kohya name} for every UNet attention projection."""
    diffusers = _diffusers_names(model)
    out = {}
    for path, module in model.diffusion_model.named_modules():
        if is_unet_attention_projection(path) and getattr(module, "weight", None) is not None:
            out[f"diffusion_model.{path}.weight"] = kohya_name(UNET_PREFIX, diffusers.get(path, path))
    if not out:
        raise ValueError("model: found no attention q/k/v/out projections to put a LoRA on")
    return out


def text_encoder_lora_names(clip) -> dict[str, str]:
    """{weight key on the CLIP patcher: kohya name} for every text-encoder self-attention projection (SDXL: both
    encoders, lora_te1_ / lora_te2_)."""
    found = {}
    for path, module in clip.patcher.model.named_modules():
        if is_text_attention_projection(path) and getattr(module, "weight", None) is not None:
            found[path] = path.split(".", 1)[0]
    encoders = set(found.values())
    if not found:
        raise ValueError("clip: found no text-encoder attention projections to put a LoRA on")
    if len(encoders) == 1:
        return {f"{path}.weight": text_encoder_kohya_name(path) for path in found}
    if encoders == set(SDXL_TEXT_ENCODER_PREFIXES):
        return {
            f"{path}.weight": text_encoder_kohya_name(path, SDXL_TEXT_ENCODER_PREFIXES[encoder])
            for path, encoder in found.items()
        }
    raise ValueError(
        f"clip: text-encoder LoRA supports one CLIP text model (SD1.x/2.x) or SDXL's clip_l + clip_g; this CLIP has "
        f"{sorted(encoders)}"
    )


def _attach(
    patcher, names: dict[str, str], settings: DreamBoothSettings, resume: dict[str, LoraPair]
) -> list[_Adapter]:
    adapters = []
    modules = dict(patcher.model.named_modules())
    for weight_key in sorted(names):
        weight = modules[weight_key[: -len(".weight")]].weight
        module = LoRAAdapter.create_train(weight, rank=settings.rank, alpha=settings.alpha)
        previous = resume.get(names[weight_key])
        if previous is not None:
            if previous.up.shape != module.lora_up.weight.shape or previous.down.shape != module.lora_down.weight.shape:
                raise ValueError(
                    f"resume_from: {names[weight_key]} has rank {previous.rank} / shape {tuple(previous.up.shape)}x"
                    f"{tuple(previous.down.shape)}; this run needs rank {settings.rank}"
                )
            module.lora_up.weight.data.copy_(previous.up)
            module.lora_down.weight.data.copy_(previous.down)
        module.requires_grad_(True)
        module.alpha.requires_grad_(False)
        patcher.add_weight_wrapper(weight_key, module)
        adapters.append(_Adapter(names[weight_key], weight_key, module))
    return adapters


def _pairs(adapters: list[_Adapter], alpha: float) -> dict[str, LoraPair]:
    return {
        a.name: LoraPair(a.module.lora_down.weight.detach().float(), a.module.lora_up.weight.detach().float(), alpha)
        for a in adapters
    }


def load_resume(path: str | Path | None) -> tuple[dict[str, LoraPair], int, dict | None]:
    """LoRA pairs, the step they were saved at and the optimizer state (if its side file exists)."""
    if not path:
        return {}, 0, None
    state_dict, metadata = load_lora_file(path)
    if "exemplar.step" not in metadata:
        raise ValueError(
            f"resume_from: {Path(path).name} has no 'exemplar.step' in its header; only the pack's DreamBooth "
            f"checkpoints can be resumed"
        )
    return read_lora_state_dict(state_dict), int(metadata["exemplar.step"]), load_optimizer_state(path)


def save_checkpoint(path: str | Path, result: TrainResult, optimizer_state: dict | None = None) -> Path:
    """The LoRA file (atomic) and, for resuming, the optimizer state beside it (atomic)."""
    path = save_lora_file(path, result.state_dict, result.metadata)
    if optimizer_state is not None:
        save_optimizer_state(path, optimizer_state)
    return path


def train_dreambooth(
    model,
    instance_latents: torch.Tensor,
    prompts: PromptSet,
    settings: DreamBoothSettings,
    clip=None,
    class_latents: torch.Tensor | None = None,
    resume_from: str | Path | None = None,
    checkpoint: Callable[[TrainResult, dict], None] | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
    extra_metadata: dict | None = None,
    progress=None,
) -> TrainResult:
    """Train a DreamBooth LoRA; `model` and `clip` are never modified (clones are patched).

    instance_latents / class_latents: raw VAE latents [N, C, h, w] (as VAEEncode gives them).
    checkpoint(result, optimizer_state) is called every `checkpoint_every` steps (rank 0 only);
    on_step(step, total, losses) after each optimizer step (may raise to cancel);
    progress (nodes/common/progress.py): set-up status, loss, x0 previews, and on cancel it saves the last complete
    step from a snapshot (TrainResult, optimizer state).
    """
    settings.validate()
    if instance_latents is None or instance_latents.ndim != 4 or instance_latents.shape[0] == 0:
        raise ValueError("instance images: expected at least one image (latent batch [N, C, h, w])")
    use_prior = class_latents is not None and class_latents.shape[0] > 0 and settings.prior_loss_weight > 0
    if use_prior and class_latents.shape[1:] != instance_latents.shape[1:]:
        raise ValueError(
            f"class images: latent size {tuple(class_latents.shape[1:])} differs from the instance images' "
            f"{tuple(instance_latents.shape[1:])}; resize both to the same width and height"
        )
    if settings.train_text_encoder and clip is None:
        raise ValueError("train_text_encoder needs a CLIP input")
    if clip is None and (prompts.instance_conditioning is None or (use_prior and prompts.class_conditioning is None)):
        raise ValueError("without a CLIP, pass the instance (and class) conditionings")

    training.prediction_type(model.get_model_object("model_sampling"))  # the noising below is eps/v-space
    dist = distributed()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)
    resume_pairs, start_step, optimizer_state = load_resume(resume_from)
    if start_step >= settings.steps:
        raise ValueError(
            f"resume_from is at step {start_step}; steps must be larger to train further (got {settings.steps})"
        )

    dtype = TRAIN_DTYPES[settings.dtype]
    with torch.inference_mode(False), torch.enable_grad():
        mp = comfyui_compat.training_clone(model)
        mp.set_model_compute_dtype(dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            adapters = _attach(mp, unet_lora_names(mp.model), settings, resume_pairs)
            te = None
            if settings.train_text_encoder:
                te = comfyui_compat.training_clip(clip)
                adapters += _attach(te.patcher, text_encoder_lora_names(te), settings, resume_pairs)
        frozen = training.differentiable_frozen_weights(mp, {a.weight_key for a in adapters})
        if te is not None:
            frozen += training.differentiable_frozen_weights(te.patcher, {a.weight_key for a in adapters})
        missing = set(resume_pairs) - {a.name for a in adapters}
        if missing:
            raise ValueError(
                f"resume_from: {len(missing)} LoRA entries do not match this model/settings, e.g. {sorted(missing)[0]}"
            )
        params = [p for a in adapters for p in (a.module.lora_up.weight, a.module.lora_down.weight)]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)

        text = training.text_encoder(te) if te is not None else None
        checkpointing = contextlib.ExitStack()
        checkpointing.enter_context(
            comfyui_compat.gradient_checkpointing(mp.model.diffusion_model, settings.gradient_checkpointing)
        )
        mp.model.requires_grad_(False)
        try:
            if progress is not None:
                progress.status("loading the model for training")
            comfy.model_management.load_models_gpu(
                [mp] + ([te.patcher] if te is not None else []), force_full_load=True
            )
            device = training.check_on_load_device(mp, "DreamBooth training (MODEL)")
            if te is not None:
                training.check_on_load_device(te.patcher, "DreamBooth training (CLIP)")
            sampling = mp.model.model_sampling
            instance_x0 = mp.model.process_latent_in(instance_latents.detach().clone().float()).to(device)
            class_x0 = (
                mp.model.process_latent_in(class_latents.detach().clone().float()).to(device) if use_prior else None
            )

            fixed = None
            if te is None:
                fixed = (
                    _conditioning(clip, prompts.instance_prompt, prompts.instance_conditioning),
                    _conditioning(clip, prompts.class_prompt, prompts.class_conditioning) if use_prior else None,
                )
            losses = []
            if progress is not None:
                progress.status(f"training from step {start_step} to {settings.steps}")
            for step in range(start_step, settings.steps):
                summed = {"loss": 0.0, "instance": 0.0, "prior": 0.0}
                for micro in range(settings.grad_accumulation):
                    g = step_generator(settings.seed, step, micro, rank)
                    if te is not None:
                        conds = (
                            _text_context(text, prompts.instance_prompt),
                            _text_context(text, prompts.class_prompt) if use_prior else None,
                        )
                    else:
                        conds = fixed
                    x0 = instance_x0[pick(instance_x0.shape[0], settings.batch_size, g).to(device)]
                    n_instance = x0.shape[0]
                    context = [_repeat(conds[0], n_instance)]
                    if use_prior:
                        x0 = torch.cat([x0, class_x0[pick(class_x0.shape[0], settings.batch_size, g).to(device)]])
                        context.append(_repeat(conds[1], x0.shape[0] - n_instance))
                    loss, denoised = _micro_step(mp, sampling, x0, context, n_instance, settings, g, dtype)
                    (loss.total / settings.grad_accumulation).backward()
                    summed["loss"] += loss.total.item() / settings.grad_accumulation
                    summed["instance"] += loss.instance.item() / settings.grad_accumulation
                    summed["prior"] += (
                        loss.prior.item() if loss.prior is not None else 0.0
                    ) / settings.grad_accumulation
                average_gradients(params)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                summed["step"] = step + 1
                losses.append(summed)
                if not all(math.isfinite(summed[k]) for k in ("loss", "instance", "prior")):
                    raise FloatingPointError(
                        f"DreamBooth loss became {summed['loss']} at step {step + 1}; lower the learning rate or "
                        f"use fp32"
                    )
                if on_step is not None:
                    on_step(step + 1, settings.steps, summed)
                done = step + 1
                if progress is not None:
                    progress.step(
                        done,
                        summed["loss"],
                        x0=denoised[:1],
                        snapshot=lambda: (
                            _result(adapters, settings, done, losses, prompts, world, extra_metadata),
                            optimizer.state_dict(),
                        ),
                    )
                if (
                    checkpoint is not None
                    and rank == 0
                    and settings.checkpoint_every
                    and done % settings.checkpoint_every == 0
                    and done < settings.steps
                ):
                    checkpoint(
                        _result(adapters, settings, done, losses, prompts, world, extra_metadata),
                        optimizer.state_dict(),
                    )
            result = _result(adapters, settings, settings.steps, losses, prompts, world, extra_metadata)
            result.optimizer_state = optimizer.state_dict()
            return result
        finally:
            checkpointing.close()
            training.release(mp, [a.module for a in adapters] + frozen)
            if te is not None:
                training.release(te.patcher, [a.module for a in adapters] + frozen)


def _result(adapters, settings, step, losses, prompts, world, extra) -> TrainResult:
    info = {k: v for k, v in asdict(settings).items() if k not in ("steps",)}
    info.update(instance_prompt=prompts.instance_prompt, class_prompt=prompts.class_prompt, world_size=world)
    info.update(extra or {})
    metadata = lora_metadata(settings.rank, settings.alpha, step, info)
    return TrainResult(lora_state_dict(_pairs(adapters, settings.alpha)), metadata, step, list(losses))


def _conditioning(clip, prompt: str, given: list | None):
    if given is not None:
        cond, extra = given[0][0], given[0][1]
        return {"cross_attn": cond.detach().clone(), "pooled_output": extra.get("pooled_output")}
    if clip is None:
        raise ValueError("a CLIP is needed to encode the prompts")
    with torch.no_grad():
        return _encode(clip, prompt)


def _text_context(text, prompt: str) -> dict:
    """The differentiable conditioning of a trained text encoder (SD1.x/2.x UNets read no pooled output; SDXL's
    reads bigG's)."""
    if isinstance(text, training.SDXLTextEncoder):
        context, pooled = text([prompt])
        return {"cross_attn": context, "pooled_output": pooled}
    return {"cross_attn": text([prompt])}


def _is_sdxl(model_base) -> bool:
    import comfy.model_base

    return isinstance(model_base, comfy.model_base.SDXL)


def _pixel_size(model_base, latents: torch.Tensor) -> tuple[int, int]:
    factor = getattr(model_base.latent_format, "spacial_downscale_ratio", 8)
    return latents.shape[-1] * factor, latents.shape[-2] * factor


def _encode(clip, prompt: str) -> dict:
    out = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True, return_dict=True)
    return {"cross_attn": out["cond"], "pooled_output": out.get("pooled_output")}


def _repeat(cond: dict, n: int) -> dict:
    return {
        k: (v.repeat(n, *([1] * (v.ndim - 1))) if torch.is_tensor(v) and v.shape[0] == 1 else v)
        for k, v in cond.items()
    }


def _micro_step(mp, sampling, x0, context: list[dict], n_instance, settings, g, dtype):
    """One [instance; class] forward: noise at random timesteps, predict, epsilon-space prior-preservation loss."""
    device = x0.device
    batch = x0.shape[0]
    noise = torch.randn(x0.shape, generator=g).to(device)
    sigmas = training.sample_sigmas(sampling, batch, g).to(device)
    xt = noising.add_noise(x0, noise, sigmas)
    cond = {}
    for key in context[0]:
        parts = [c[key] for c in context]
        if all(torch.is_tensor(p) for p in parts):
            cond[key] = torch.cat([p.to(device) for p in parts])
    if _is_sdxl(mp.model):
        cond.update(training.sdxl_size_conditioning(*_pixel_size(mp.model, x0)))
    kwargs = {k: v.cond for k, v in mp.model.extra_conds(noise=xt, device=device, **cond).items()}
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        denoised = mp.model.apply_model(xt, sigmas, **kwargs)
    eps = noising.implied_noise(xt, denoised.float(), sigmas)
    return prior_preservation_loss(eps, noise, n_instance, settings.prior_loss_weight), denoised.detach()


def square_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> [B, resolution, resolution, 3]: centre-cropped square, resized as
    models/common/image_folder.py does."""
    if resolution % 8:
        raise ValueError(f"resolution must be a multiple of 8, got {resolution}")
    return fit_images(images, resolution, resolution)


def encode_images(vae, images: torch.Tensor, resolution: int, batch: int = 4) -> torch.Tensor:
    """Square, then VAE-encode in chunks: raw latents as VAEEncode returns them."""
    pixels = square_images(images, resolution)
    with torch.no_grad():
        return torch.cat([vae.encode(pixels[i : i + batch]) for i in range(0, pixels.shape[0], batch)]).float()


@torch.no_grad()
def generate_class_images(
    model,
    clip,
    vae,
    prompt: str,
    count: int,
    width: int,
    height: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    seed: int,
    batch_size: int,
    negative: str = "",
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """`count` images of `prompt` from the frozen model through the stock sampler; image i uses seed + i."""
    import comfy.sample

    if count < 1 or batch_size < 1:
        raise ValueError(f"count and batch_size must be >= 1, got {count} and {batch_size}")

    def conditioning(text):
        out = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True, return_dict=True)
        cond = out.pop("cond")
        if _is_sdxl(model.model):
            out.update(training.sdxl_size_conditioning(width, height))
        return [[cond, out]]

    positive, negative_cond = conditioning(prompt), conditioning(negative)
    channels = model.model.latent_format.latent_channels
    factor = vae.downscale_ratio if isinstance(getattr(vae, "downscale_ratio", None), int) else 8
    if width % factor or height % factor:
        raise ValueError(f"width and height must be multiples of {factor}, got {width}x{height}")
    total = count * steps
    done = 0
    images = []
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        latent = torch.zeros(n, channels, height // factor, width // factor)
        noise = torch.cat([comfy.sample.prepare_noise(latent[:1], seed + start + i) for i in range(n)])

        def callback(step, x0, x, total_steps, base=done, n=n):
            if on_step is not None:
                on_step(base + (step + 1) * n, total)

        samples = comfy.sample.sample(
            model,
            noise,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative_cond,
            latent,
            callback=callback,
            disable_pbar=True,
            seed=seed + start,
        )
        done += n * steps
        images.append(vae.decode(samples))
    return torch.cat(images)[:count].float()


def class_image_folder(folder: str, input_dir: str | Path) -> Path:
    """`folder`, a subfolder name of ComfyUI's input directory, as a path that stays inside it. The server passes
    any string through, so absolute names, `..` and symlinks that lead out are refused; the message repeats only
    what the user typed."""
    wrong = f"folder: expected a subfolder of the input folder, got {folder!r}"
    clean = folder.replace("\\", "/")
    if "\0" in clean or clean.startswith("/") or Path(clean).is_absolute() or ".." in clean.split("/"):
        raise ValueError(wrong)
    root = Path(input_dir).resolve()
    path = (root / clean).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(wrong)
    if not path.is_dir():
        raise ValueError(f"folder: {folder!r} is not a subfolder of the input folder")
    return path


def class_image_files(folder: Path, root: str | Path) -> list[Path]:
    """The image files of `folder`, refusing one whose symlink leads out of `root`."""
    root = Path(root).resolve()
    files = image_files(folder)
    for f in files:
        if not f.resolve().is_relative_to(root):
            raise ValueError(f"folder: {f.name!r} in {folder.name!r} links outside the input folder")
    return files


def supplied_class_images(
    images: torch.Tensor | None, folder: Path | None, root: str | Path, count: int, width: int, height: int
) -> torch.Tensor | None:
    """The class images the user gave, at most `count`: `images` first, then the files of `folder` (each inside
    `root`), all fitted to width x height."""
    supplied = None if images is None else fit_images(images, width, height)[:count]
    if folder is not None:
        files = class_image_files(folder, root)
        loaded = load_images(files, width, height) if files else None
        if loaded is None:
            raise ValueError(
                f"folder: {folder.name!r} holds no images ({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})"
            )
        supplied = loaded if supplied is None else torch.cat([supplied, loaded.to(supplied)])
        supplied = supplied[:count]
    return supplied


def lora_output_path(name: str, root: str | Path) -> tuple[Path, str]:
    """`name` (relative, no extension needed) -> (path under the loras folder `root`, name as LoraLoader lists it)."""
    return output_path(name, root, "lora_name", "dreambooth/sks_dog")
