"""Diffuse to Choose adapter training on ComfyUI's own MODEL / VAE / CLIP_VISION (shared by the node and the CLI).

Recipe (arXiv 2401.13795, docs/training.md): the main inpainting UNet stays frozen; per sample the source image, its
mask (models/common/train_masks.py: fine-grained or bounding box, 50/50) and the reference give the hint (reference
pasted into the mask's largest rectangle, models/diffuse_to_choose/hint.py) and the masked source; the adapter runs
exactly as at inference (adapter_patch.apply_adapter on a clone of the MODEL); DINOv2 tokens of the reference are
projected by the adapter into the cross-attention context, replaced by the projection of zero tokens for a fraction
of samples (condition dropout: the negative Diffuse to Choose Image Conditioning gives). Loss: epsilon-space MSE plus
`perceptual_weight` times the VGG16 perceptual loss between the decoded x0 prediction and the source image
(models/common/perceptual.py). Augmentations: horizontal flip of the (source, mask) pair and of the reference, and a
random rotation of the reference.

Randomness, data parallelism and checkpoints follow models/common/train_loop.py: step s draws from a generator seeded
by (seed, s, micro-batch, rank), gradients are averaged over torchrun ranks, a checkpoint is the adapter file with
`exemplar.step` in its header plus the optimizer state beside it, so a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

import comfy.model_management

from ...models.common import noising
from ...models.common.datasets import PairDataset, rotate_image
from ...models.common.perceptual import VGG16Features, perceptual_loss, vgg16_features
from ...models.common.train_loop import (
    TRAIN_DTYPES,
    TrainSettings,
    adamw,
    check_resumable,
    common_checks,
    file_metadata,
    first_x0,
    held_out_noise,
    load_optimizer_state,
    masked_mse,
    optimise,
    pick,
    rank_and_world,
    raise_first,
    resume_step,
    save_optimizer_state,
    step_generator,
    step_metadata,
)
from ...models.common.train_masks import random_box_mask, training_mask
from ...models.diffuse_to_choose.adapter import DtCAdapter, parse_metadata, save_adapter
from ...models.diffuse_to_choose.hint import build_hint
from ..common import training
from ..common.vector_conditioning import vector_kwargs
from ..common.training import call_model  # noqa: F401  (bench/bench_dtc_train.py calls it here)
from . import adapter_patch
from .vision_tokens import encode_tokens

# what trains, cumulatively: FiLM only, + the hint CNN, + the UNet-encoder copy, + the DINOv2 projection
TRAINABLE = {
    "film": ("film",),
    "film+hint_cnn": ("film", "hint_adapter"),
    "film+hint_cnn+encoder": ("film", "hint_adapter", "hint_encoder"),
    "all": ("film", "hint_adapter", "hint_encoder", "image_projection"),
}


@dataclass
class DtCSettings(TrainSettings):
    """Hyper-parameters; defaults follow the paper (AdamW, constant lr 1e-5, 512 px, masks 50/50)."""

    reference_size: int = 224
    trainable: str = "all"
    mask_mode: str = "mixed"
    fine_probability: float = 0.5
    flip_probability: float = 0.5
    rotation_degrees: float = 10.0
    condition_dropout: float = 0.1
    perceptual_weight: float = 0.0

    def validate(self):
        probabilities = ("fine_probability", "flip_probability", "condition_dropout")
        checks = common_checks(self, TRAINABLE, probabilities)
        checks += [
            (
                self.reference_size % 14 == 0 and self.reference_size >= 14,
                f"reference_size must be a multiple of DINOv2's 14 px patch, got {self.reference_size}",
            ),
            (0 <= self.rotation_degrees <= 180, f"rotation_degrees must be in [0, 180], got {self.rotation_degrees}"),
            (self.perceptual_weight >= 0, f"perceptual_weight must be >= 0, got {self.perceptual_weight}"),
        ]
        raise_first(checks)


@dataclass
class DtCTrainResult:
    adapter: DtCAdapter  # the trained adapter, float32, frozen (eval, no gradients)
    step: int
    metadata: dict[str, str]
    losses: list[dict] = field(default_factory=list)
    previews: list[torch.Tensor] = field(default_factory=list)
    optimizer_state: dict | None = None


@dataclass
class Batch:
    images: torch.Tensor  # [B, H, W, 3]
    masks: torch.Tensor  # [B, H, W], 1 = regenerate
    references: torch.Tensor  # [B, S, S, 3]
    keep_reference: torch.Tensor  # [B] bool: False = condition dropout


def draw_batch(dataset: PairDataset, settings: DtCSettings, batch: int, g: torch.Generator) -> Batch:
    """`batch` augmented samples; every random choice comes from `g`, in a fixed order."""
    images, masks, references = [], [], []
    size = settings.resolution
    for index in pick(len(dataset), batch, g).tolist():
        sample = dataset.load(index, size, size, settings.reference_size)
        mask = sample.mask if sample.mask is not None else random_box_mask(size, size, g)
        mask = training_mask(mask, settings.mask_mode, g, settings.fine_probability)
        image = sample.image
        flips = (torch.rand(2, generator=g) < settings.flip_probability).tolist()
        angle = (float(torch.rand(1, generator=g)) * 2 - 1) * settings.rotation_degrees
        if flips[0]:
            image, mask = image.flip(1), mask.flip(1)
        reference = sample.reference.flip(1) if flips[1] else sample.reference
        images.append(image)
        masks.append(mask)
        references.append(rotate_image(reference, angle) if angle else reference)
    keep = torch.rand(batch, generator=g) >= settings.condition_dropout
    return Batch(torch.stack(images), torch.stack(masks), torch.stack(references), keep)


def _trainable_parameters(adapter: DtCAdapter, trainable: str) -> list[torch.nn.Parameter]:
    adapter.requires_grad_(False)
    params = []
    for name in TRAINABLE[trainable]:
        module = getattr(adapter, name)
        module.requires_grad_(True)
        params += list(module.parameters())
    return params


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], int, dict | None]:
    """(adapter state, step, optimizer state) of a checkpoint this trainer wrote."""
    from safetensors.torch import load_file

    metadata = file_metadata(path)
    parse_metadata(metadata, source=Path(path).name)
    step = resume_step(metadata, Path(path).name, "adapters written by the Diffuse to Choose trainer")
    return load_file(str(path)), step, load_optimizer_state(path)


def save_checkpoint(path: str | Path, result: DtCTrainResult) -> Path:
    """The adapter file (float32, atomic) and, for resuming, the optimizer state beside it (atomic)."""
    extra = {k.removeprefix("exemplar."): v for k, v in result.metadata.items()}
    path = save_adapter(result.adapter, path, torch.float32, extra)
    if result.optimizer_state is not None:
        save_optimizer_state(path, result.optimizer_state)
    return path


class _Context:
    """Projected DINOv2 tokens of the references; dropped samples get the projection of zero tokens."""

    def __init__(self, clip_vision, adapter: DtCAdapter, reference_size: int):
        self.clip_vision, self.adapter, self.reference_size = clip_vision, adapter, reference_size

    def __call__(self, references: torch.Tensor, keep: torch.Tensor, device) -> torch.Tensor:
        with torch.no_grad():
            tokens = encode_tokens(self.clip_vision, references, self.reference_size, crop=True).float()
        tokens = tokens.to(device) * keep.to(device=device, dtype=tokens.dtype)[:, None, None]
        return self.adapter.project_image(tokens)


def _predict(
    patched,
    injection,
    vae: training.TrainingVAE,
    context_of,
    batch: Batch,
    noise,
    sigmas,
    dtype,
    text_conditioning=None,
):
    """x0 prediction of the patched model for the batch at `sigmas` (the hint path as at inference); SDXL's vector
    conditioning comes from `text_conditioning` (sizes default to the training resolution)."""
    model = patched.model
    device = patched.load_device
    hint = build_hint(batch.images, batch.masks, batch.references)
    injection.set_hint(hint.hint_image)
    x0 = model.process_latent_in(vae.encode(batch.images).to(device))
    masked = vae.encode(hint.masked_source).to(device)
    sigmas = sigmas.to(device)
    xt = noising.add_noise(x0, noise.to(device), sigmas)
    context = context_of(batch.references, batch.keep_reference, device)
    height, width = batch.images.shape[1:3]
    vector = vector_kwargs(patched, text_conditioning, width, height, xt.shape[0], "text_conditioning")
    conds = model.extra_conds(
        **vector,
        noise=xt,
        device=device,
        cross_attn=context,
        concat_latent_image=masked,
        concat_mask=batch.masks[:, None].to(device),
    )
    denoised = training.call_model(patched, xt, sigmas, dtype, **{k: v.cond for k, v in conds.items()})
    return x0, xt, denoised.float()


def _preview(patched, vae: training.TrainingVAE, batch: Batch, denoised) -> torch.Tensor:
    """[1, H, 3W, 3]: the source, its hint image, the decoded x0 prediction (first sample)."""
    with torch.no_grad():
        hint = build_hint(batch.images[:1], batch.masks[:1], batch.references[:1]).hint_image
        decoded = vae.decode(patched.model.process_latent_out(denoised[:1].detach())).movedim(1, -1).cpu()
    return torch.cat([batch.images[:1], hint, decoded], dim=2).clamp(0, 1)


class Session:
    """The patched MODEL clone, the training VAE (when given) and the hooks, set up once and released at the end."""

    def __init__(self, model, vae, adapter: DtCAdapter, dtype, gradient_checkpointing: bool):
        if adapter_patch.hint_channel_offset(model) is None:
            raise ValueError(
                "model: Diffuse to Choose training needs an inpainting model (9-channel input with a masked-source "
                "latent)"
            )
        placeholder = torch.zeros(1, 8, 8, 3)
        self.patched, self.injection = adapter_patch.apply_adapter(model, adapter, placeholder)
        self.patched.set_model_compute_dtype(dtype)
        self.wrappers = training.differentiable_frozen_weights(self.patched)
        self.patched.model.requires_grad_(False)
        self.checkpointed = []
        if gradient_checkpointing:
            from comfy_extras.nodes_train import find_all_highest_child_module_with_forward, patch

            self.checkpointed = find_all_highest_child_module_with_forward(self.patched.model.diffusion_model)
            self.checkpointed += find_all_highest_child_module_with_forward(adapter.hint_encoder)
            for m in self.checkpointed:
                patch(m)
        comfy.model_management.load_models_gpu([self.patched], force_full_load=True)
        self.vae = training.TrainingVAE(vae) if vae is not None else None
        self.sampling = self.patched.model.model_sampling

    def release(self):
        from comfy_extras.nodes_train import unpatch

        for m in self.checkpointed:
            unpatch(m)
        if self.vae is not None:
            self.vae.release()
        for extra in self.patched.get_additional_models_with_key(adapter_patch.ADDITIONAL_MODELS_KEY):
            training.release(extra, [])
        training.release(self.patched, self.wrappers)


def train_dtc(
    model,
    vae,
    clip_vision,
    adapter: DtCAdapter,
    dataset: PairDataset,
    settings: DtCSettings,
    vgg: VGG16Features | None = None,
    resume_from: str | Path | None = None,
    checkpoint: Callable[[DtCTrainResult], None] | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
    on_preview: Callable[[int, torch.Tensor], None] | None = None,
    extra_metadata: dict | None = None,
    progress=None,
    text_conditioning=None,
) -> DtCTrainResult:
    """Train a copy of `adapter` on `dataset`; `model`, `vae`, `clip_vision` and `adapter` are not modified.

    `text_conditioning` (a CONDITIONING, e.g. CLIP Text Encode (SDXL)) gives an SDXL model its pooled output and
    size values; SD1.x models need none.

    checkpoint(result) every `checkpoint_every` steps (rank 0); on_step(step, total, losses) after each optimizer step
    (may raise to cancel: the last checkpoint stays as it was written); on_preview(step, image) every
    `preview_every` steps and at the end; progress (nodes/common/progress.py): set-up status, loss, previews (the
    decoded one when due, else the latent x0), and on cancel it saves the last complete step from a snapshot.
    """
    settings.validate()
    if settings.perceptual_weight > 0 and vgg is None:
        raise ValueError("perceptual_weight > 0 needs the VGG16 weights (vgg16 input); set it to 0 to train without")
    training.prediction_type(model.get_model_object("model_sampling"))
    adapter_patch.check_compatible(adapter, model)
    vector_kwargs(model, text_conditioning, settings.resolution, settings.resolution, 1, "text_conditioning")
    rank, world = rank_and_world()
    state, start_step, optimizer_state = (None, 0, None) if not resume_from else read_checkpoint(resume_from)
    check_resumable(start_step, settings.steps)
    dtype = TRAIN_DTYPES[settings.dtype]
    if progress is not None:
        progress.status("loading the model, VAE and adapter for training")
    with torch.inference_mode(False), torch.enable_grad():
        trained = adapter_patch.training_copy(adapter, state)
        params = _trainable_parameters(trained, settings.trainable)
        session = Session(model, vae, trained, dtype, settings.gradient_checkpointing)
        try:
            optimizer = adamw(params, settings.learning_rate, optimizer_state)
            trained.train()
            context_of = _Context(clip_vision, trained, settings.reference_size)
            if vgg is not None:  # a copy with normal tensors (one built in ComfyUI's executor holds inference tensors)
                vgg = vgg16_features({k: v.clone() for k, v in vgg.state_dict().items()}, taps=vgg.taps)
                vgg = vgg.to(session.patched.load_device)

            def result(step, losses, previews):
                metadata = step_metadata(settings, step, world, extra_metadata)
                return DtCTrainResult(trained, step, metadata, losses, previews)

            def micro_step(g):
                batch = draw_batch(dataset, settings, settings.batch_size, g)
                channels = session.patched.model.latent_format.latent_channels
                size = settings.resolution // 8
                noise = torch.randn((settings.batch_size, channels, size, size), generator=g)
                sigmas = training.sample_sigmas(session.sampling, settings.batch_size, g)
                x0, xt, denoised = _predict(
                    session.patched, session.injection, session.vae, context_of, batch, noise, sigmas, dtype,
                    text_conditioning,
                )
                eps = noising.implied_noise(xt, denoised, sigmas.to(xt.device))
                diffusion = torch.nn.functional.mse_loss(eps, noise.to(eps.device))
                visual = torch.zeros(())
                if settings.perceptual_weight > 0:
                    generated = session.vae.decode(session.patched.model.process_latent_out(denoised))
                    target = batch.images.movedim(-1, 1).to(generated.device)
                    visual = perceptual_loss(vgg, generated, target)
                total = diffusion + settings.perceptual_weight * visual if settings.perceptual_weight > 0 else diffusion
                return {"loss": total, "diffusion": diffusion, "perceptual": visual}, (batch, denoised)

            final = optimise(
                settings,
                start_step,
                params,
                optimizer,
                micro_step,
                result,
                "DtC",
                preview=lambda state: _preview(session.patched, session.vae, *state),
                checkpoint=checkpoint,
                on_step=on_step,
                on_preview=on_preview,
                progress=progress,
                x0_of=first_x0,
            )
        finally:
            session.release()
        trained.requires_grad_(False)
        trained.train(False)
    return final


@torch.no_grad()
def masked_x0_error(
    model,
    vae,
    clip_vision,
    adapter: DtCAdapter,
    dataset: PairDataset,
    settings: DtCSettings,
    samples: int = 8,
    sigma_percent: float = 0.5,
    seed: int = 12345,
    text_conditioning=None,
) -> float:
    """Mean squared error of the x0 prediction inside the (latent-size) mask against the source latent.

    Held-out evaluation: `samples` draws (no dropout, no augmentation beyond the mask choice) at one noise level,
    with noise seeded by `seed`, so two adapters are compared on exactly the same inputs.
    """
    from ...models.common.masks import binary_mask

    plain = replace(settings, flip_probability=0.0, rotation_degrees=0.0, condition_dropout=0.0)
    with torch.inference_mode(False), torch.no_grad():
        evaluated = adapter_patch.training_copy(adapter).requires_grad_(False)
        session = Session(model, vae, evaluated, torch.float32, False)
        try:
            context_of = _Context(clip_vision, evaluated, plain.reference_size)
            errors = []
            for index in range(samples):
                g = step_generator(seed, index)
                batch = draw_batch(dataset, plain, 1, g)
                size = plain.resolution // 8
                shape = (1, session.patched.model.latent_format.latent_channels, size, size)
                noise, sigma = held_out_noise(g, shape, session.sampling, sigma_percent)
                x0, _xt, denoised = _predict(
                    session.patched,
                    session.injection,
                    session.vae,
                    context_of,
                    batch,
                    noise,
                    sigma,
                    torch.float32,
                    text_conditioning,
                )
                region = binary_mask(batch.masks, shape[-2:]).to(x0.device)[:, None]
                errors.append(masked_mse(denoised, x0, region))
        finally:
            session.release()
    return sum(errors) / len(errors)
