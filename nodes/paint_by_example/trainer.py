"""Paint by Example fine-tuning on ComfyUI's own MODEL / VAE and the pack's exemplar encoder (node and CLI share it).

Official recipe (docs/training.md, shared spec section 1): the whole UNet, the mapper, final_ln, proj_out and the
learnable vector train with AdamW at lr 1e-5; 20 % of the references are replaced by the learnable vector (the
unconditional context of guidance); references are augmented (models/paint_by_example/augment.py) and masks are
the irregular box / Bezier masks of models/common/train_masks.py. The loss is the epsilon MSE over the whole latent.
The whole UNet is too large to fine-tune on many GPUs, so what trains is selectable: a LoRA on the UNet's attention
projections (the DreamBooth trainer's, ComfyUI's LoRA training modules), the encoder head (mapper, final_ln,
proj_out) and the learnable vector; the CLIP vision tower and the VAE stay frozen.

The output is a Paint-by-Example checkpoint in the official layout (the LoRA merged into the UNet's weights) that
Load Paint-by-Example Checkpoint reads; it also holds the LoRA factors under `exemplar_lora.` (kohya names, ignored
by the loader) and `exemplar.step`, so a run resumes exactly from it on the same base model.
Randomness, data parallelism and optimizer-state checkpoints follow models/common/train_loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch


from ...models.common import noising
from ...models.common.artefact_header import write_header
from ...models.common.atomic_file import save_safetensors_atomic
from ...models.common.datasets import PairDataset
from ...models.common.masks import binary_mask
from ...models.common import train_loop
from ...models.common.train_masks import random_box_mask, training_mask
from ...models.dreambooth.lora_file import LoraPair, lora_state_dict, read_lora_state_dict
from ...models.paint_by_example import checkpoint as pbe_checkpoint
from ...models.paint_by_example.augment import ReferenceAugmentation, augment_reference, crop_to_box
from ...models.paint_by_example.encoder import ExemplarEncoder, encoder_from_state_dict
from ...models.paint_by_example.inputs import inpaint_inputs, reference_pixels
from ..common import training

TRAINABLE = {
    "lora+head+vector": ("lora", "head", "vector"),
    "head+vector": ("head", "vector"),
    "lora+vector": ("lora", "vector"),
    "lora": ("lora",),
    "vector": ("vector",),
}
HEAD = ("mapper", "final_ln", "proj_out")
REFERENCE_SOURCES = ("reference", "image_box")
LORA_PREFIX = "exemplar_lora."


@dataclass
class PbESettings(train_loop.TrainSettings):
    """Hyper-parameters; defaults follow the official recipe (AdamW lr 1e-5, 20 % learnable vector, 512 px)."""

    trainable: str = "lora+head+vector"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    mask_mode: str = "irregular"
    reference_source: str = "reference"
    reference_dropout: float = 0.2
    flip_probability: float = 0.5
    rotation_degrees: float = 20.0
    blur_probability: float = 0.3
    elastic_probability: float = 0.3

    def augmentation(self, size: int) -> ReferenceAugmentation:
        return ReferenceAugmentation(
            size, self.flip_probability, self.rotation_degrees, self.blur_probability, self.elastic_probability
        )

    def validate(self):
        checks = train_loop.common_checks(self, TRAINABLE, ("reference_dropout",))
        sources = list(REFERENCE_SOURCES)
        checks.append(
            (
                self.reference_source in sources,
                f"reference_source must be one of {sources}, got {self.reference_source!r}",
            )
        )
        train_loop.raise_first(checks)
        self.augmentation(224).validate()


@dataclass
class PbEBatch:
    images: torch.Tensor  # [B, H, W, 3]
    masks: torch.Tensor  # [B, H, W], 1 = regenerate
    references: torch.Tensor  # [B, S, S, 3], augmented
    keep_reference: torch.Tensor  # [B] bool: False = the learnable vector instead


def draw_batch(
    dataset: PairDataset, settings: PbESettings, batch: int, reference_size: int, g: torch.Generator
) -> PbEBatch:
    """`batch` augmented samples; every random choice comes from `g`, in a fixed order."""
    images, masks, references = [], [], []
    size = settings.resolution
    augmentation = settings.augmentation(reference_size)
    for index in train_loop.pick(len(dataset), batch, g).tolist():
        sample = dataset.load(index, size, size, reference_size)
        given = sample.mask if sample.mask is not None else random_box_mask(size, size, g)
        reference = sample.reference
        if settings.reference_source == "image_box":
            reference = crop_to_box(sample.image, given)
        images.append(sample.image)
        masks.append(training_mask(given, settings.mask_mode, g))
        references.append(augment_reference(reference, augmentation, g))
    keep = torch.rand(batch, generator=g) >= settings.reference_dropout
    return PbEBatch(torch.stack(images), torch.stack(masks), torch.stack(references), keep)


def training_encoder(encoder, state: dict | None = None) -> ExemplarEncoder:
    """A float32 copy of the exemplar encoder (normal tensors, frozen), with `state` (head / vector) loaded."""
    with torch.inference_mode(False):
        sd = {k: v.detach().clone().float() for k, v in encoder.model.state_dict().items()}
        if state:
            sd.update({k: v.float().clone() for k, v in state.items()})
        copy = encoder_from_state_dict(sd)
    return copy


def _encoder_parameters(encoder: ExemplarEncoder, parts) -> list[torch.nn.Parameter]:
    encoder.requires_grad_(False)
    params = []
    if "head" in parts:
        for name in HEAD:
            module = getattr(encoder, name).requires_grad_(True)
            params += list(module.parameters())
    if "vector" in parts:
        encoder.learnable_vector.requires_grad_(True)
        params.append(encoder.learnable_vector)
    return params


def context_of(encoder: ExemplarEncoder, references: torch.Tensor, keep: torch.Tensor, device) -> torch.Tensor:
    """[B, 1, C]: the encoded references, the learnable vector where `keep` is False (the CLIP tower frozen)."""
    pixels = reference_pixels(references, encoder.image_size, "squash").to(device)
    with torch.no_grad():
        pooled = encoder.transformer(pixels)
    encoded = encoder.proj_out(encoder.final_ln(encoder.mapper(pooled[:, None])))
    keep = keep.to(device)[:, None, None]
    return torch.where(keep, encoded, encoder.unconditional(encoded.shape[0]).to(encoded.dtype))


class Session(training.LoraSession):
    """The LoRA-wrapped MODEL clone, the training VAE and the frozen-weight wrappers, released at the end."""

    def __init__(self, model, vae, settings: PbESettings, resume_pairs: dict[str, LoraPair], dtype):
        lora = "lora" in TRAINABLE[settings.trainable]
        super().__init__(model, vae, dtype, settings, lora, resume_pairs, "Paint-by-Example training (MODEL)")

    def predict(self, encoder: ExemplarEncoder, batch: PbEBatch, noise, sigmas, dtype):
        """(x0, xt, denoised) of the LoRA-wrapped PbE UNet on the batch at `sigmas`."""
        model, device = self.patched.model, self.device
        prepared = inpaint_inputs(batch.images, batch.masks)
        x0 = model.process_latent_in(self.vae.encode(prepared.pixels).to(device))
        masked = self.vae.encode(prepared.masked).to(device)
        hole = binary_mask(prepared.hole, tuple(masked.shape[-2:]))[:, None].to(device)
        sigmas = sigmas.to(device)
        xt = noising.add_noise(x0, noise.to(device), sigmas)
        context = context_of(encoder, batch.references, batch.keep_reference, device)
        conds = model.extra_conds(
            noise=xt, device=device, cross_attn=context, concat_latent_image=masked, concat_mask=hole
        )
        denoised = training.call_model(self.patched, xt, sigmas, dtype, **{k: v.cond for k, v in conds.items()})
        return x0, xt, denoised.float()


@dataclass
class PbETrainResult:
    encoder_state: dict[str, torch.Tensor]  # encoder layout (encoder.py), float32
    lora: dict[str, LoraPair]  # kohya name -> pair; empty when no LoRA trained
    lora_keys: dict[str, str]  # kohya name -> UNet weight key (no "diffusion_model." prefix)
    step: int
    metadata: dict[str, str]
    losses: list[dict] = field(default_factory=list)
    previews: list[torch.Tensor] = field(default_factory=list)
    optimizer_state: dict | None = None


def merged_unet(model, result: PbETrainResult) -> dict[str, torch.Tensor]:
    """The base MODEL's UNet weights with the LoRA merged in (W + alpha / rank * up @ down), in their dtypes."""
    unet = {k: v.detach().cpu().clone() for k, v in model.model.diffusion_model.state_dict().items()}
    for name, pair in result.lora.items():
        key = result.lora_keys[name]
        base = unet[key]
        delta = (pair.alpha / pair.rank) * (pair.up.float() @ pair.down.float())
        unet[key] = (base.float() + delta.reshape(base.shape)).to(base.dtype)
    return unet


def save_checkpoint(path: str | Path, model, vae, result: PbETrainResult) -> Path:
    """The fine-tuned checkpoint (official layout, atomic) and the optimizer state beside it (atomic)."""
    vae_sd = {k: v.detach().cpu().clone() for k, v in vae.first_stage_model.state_dict().items()}
    sd = pbe_checkpoint.official_state_dict(merged_unet(model, result), vae_sd, result.encoder_state)
    sd.update({LORA_PREFIX + k: v for k, v in lora_state_dict(result.lora).items()})
    sd = {k: v.contiguous() for k, v in sd.items()}
    path = save_safetensors_atomic(path, sd, result.metadata)
    if result.optimizer_state is not None:
        train_loop.save_optimizer_state(path, result.optimizer_state)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, LoraPair], int, dict | None]:
    """(encoder head + vector, LoRA pairs, step, optimizer state) of a checkpoint this trainer wrote."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        written_by = "checkpoints written by the Paint-by-Example trainer"
        step = train_loop.resume_step(f.metadata() or {}, Path(path).name, written_by)
        keys = list(f.keys())
        lora = {k[len(LORA_PREFIX) :]: f.get_tensor(k) for k in keys if k.startswith(LORA_PREFIX)}
        head = {}
        for key in keys:
            short = key.removeprefix(pbe_checkpoint.COND_PREFIX)
            if short.startswith(tuple(f"{name}." for name in HEAD)) or short == "learnable_vector":
                head[short] = f.get_tensor(key)
    return head, read_lora_state_dict(lora), step, train_loop.load_optimizer_state(path)


def _metadata(settings: PbESettings, step: int, world: int, extra: dict | None) -> dict[str, str]:
    training_ = train_loop.training_record(settings, world, extra)
    fields_ = {"step": step, "fine_tuned": "paint_by_example", "training": training_}
    return write_header(pbe_checkpoint.CONVERTED_KIND, pbe_checkpoint.CONVERTED_VERSION, fields_)


def _preview(session: Session, batch: PbEBatch, denoised) -> torch.Tensor:
    """[1, H, 3W, 3]: the masked source, the reference (resized), the decoded x0 prediction (first sample)."""
    masked = inpaint_inputs(batch.images[:1], batch.masks[:1]).masked
    return session.preview_row(denoised, masked, batch.references)


def train_pbe(
    model,
    vae,
    encoder,
    dataset: PairDataset,
    settings: PbESettings,
    resume_from: str | Path | None = None,
    checkpoint: Callable[[PbETrainResult], None] | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
    on_preview: Callable[[int, torch.Tensor], None] | None = None,
    extra_metadata: dict | None = None,
    progress=None,
) -> PbETrainResult:
    """Fine-tune the selected parts of a Paint-by-Example MODEL + exemplar encoder; the inputs are not modified.

    checkpoint(result) every `checkpoint_every` steps (rank 0); on_step(step, total, losses) after each optimizer step
    (may raise to cancel: the last checkpoint stays as written); on_preview(step, image) every `preview_every` steps
    and at the end.
    """
    world, dtype = training.start_run(settings, model)
    head, resume_pairs, start_step, optimizer_state = ({}, {}, 0, None)
    if resume_from:
        head, resume_pairs, start_step, optimizer_state = read_checkpoint(resume_from)
    train_loop.check_resumable(start_step, settings.steps)
    parts = TRAINABLE[settings.trainable]
    with torch.inference_mode(False), torch.enable_grad():
        trained = training_encoder(encoder, head)
        session = Session(model, vae, settings, resume_pairs, dtype)
        try:
            trained.to(session.device)
            params = _encoder_parameters(trained, parts) + (session.lora_parameters() if "lora" in parts else [])
            optimizer = train_loop.adamw(params, settings.learning_rate, optimizer_state)
            lora_keys = {a.name: a.weight_key.removeprefix("diffusion_model.") for a in session.adapters}

            def result(step, losses, previews):
                state = {k: v.detach().cpu().clone() for k, v in trained.state_dict().items()}
                pairs = session.lora_pairs(settings.lora_alpha)
                metadata = _metadata(settings, step, world, extra_metadata)
                return PbETrainResult(state, pairs, lora_keys, step, metadata, losses, previews)

            def micro_step(g):
                batch = draw_batch(dataset, settings, settings.batch_size, trained.image_size, g)
                noise, sigmas = session.draw_noise(settings, g)
                _x0, xt, denoised = session.predict(trained, batch, noise, sigmas, dtype)
                eps = noising.implied_noise(xt, denoised, sigmas.to(xt.device))
                return {"loss": torch.nn.functional.mse_loss(eps, noise.to(eps.device))}, (batch, denoised)

            callbacks = (lambda state: _preview(session, *state), checkpoint, on_step, on_preview)
            final = train_loop.optimise(
                settings, start_step, params, optimizer, micro_step, result, "PbE", *callbacks,
                progress=progress, x0_of=train_loop.first_x0,
            )
        finally:
            session.release()
    return final


@torch.no_grad()
def masked_x0_error(
    model,
    vae,
    encoder,
    dataset: PairDataset,
    settings: PbESettings,
    result: PbETrainResult | None = None,
    samples: int = 8,
    sigma_percent: float = 0.5,
    seed: int = 12345,
) -> float:
    """Mean squared x0 error inside the latent-size mask on `samples` fixed draws (no augmentation, no dropout),
    of the base model (`result` None) or of a trained result; the same inputs for both."""
    plain = replace(
        settings,
        reference_dropout=0.0,
        flip_probability=0.0,
        rotation_degrees=0.0,
        blur_probability=0.0,
        elastic_probability=0.0,
    )
    head = {} if result is None else result.encoder_state
    pairs = {} if result is None else result.lora
    with torch.inference_mode(False), torch.no_grad():
        evaluated = training_encoder(encoder, head)
        session = Session(model, vae, plain, pairs, torch.float32)
        try:
            evaluated.to(session.device)
            errors = []
            for index in range(samples):
                g = train_loop.step_generator(seed, index)
                batch = draw_batch(dataset, plain, 1, evaluated.image_size, g)
                shape = session.latent_shape(1, plain.resolution)
                noise, sigma = train_loop.held_out_noise(g, shape, session.sampling, sigma_percent)
                x0, _xt, denoised = session.predict(evaluated, batch, noise, sigma, torch.float32)
                region = binary_mask(batch.masks, tuple(x0.shape[-2:])).to(x0.device)[:, None]
                errors.append(train_loop.masked_mse(denoised, x0, region))
        finally:
            session.release()
    return sum(errors) / len(errors)
