"""DreamInpainter's learned parts trained on ComfyUI's own MODEL / VAE / CLIP (node and CLI share it).

What trains: the token projection (reference tokens -> cross-attention context, appended after the text) and the
learned token scorer, optionally a LoRA on the UNet's attention projections (the DreamBooth trainer's). Per sample:
the reference goes through the VAE and the model's own UNet at t = `timestep` once (block `block`, features as
tokens, nodes/dreaminpainter/unet_features.py; on the training clone, so a LoRA being trained is in it, without
gradients); the scorer picks K tokens by a straight-through Gumbel top-K (models/dreaminpainter/token_selector.py:
the forward pass uses exactly K hard-selected tokens, as the 'learned' criterion picks at inference, and the
gradient reaches the scores through a sigmoid relaxation around the K-th score); the projection maps them into the
context width and they are appended to the caption's context.

Decoupling regularisation: with probability `decoupling_probability` a sample is denoised over the whole image with
its full caption (the caption file's first line); otherwise only the masked region counts, with the subject caption
(the second line, else `subject_caption`). An inpainting model (9-channel input) also gets the masked source, the
whole image masked in a decoupled sample. Loss: epsilon MSE over that region.

Outputs: a token projection and a token scorer file in models/exemplar (the layouts Load Token Projection / Load Token
Scorer read: `<name>_projection.safetensors`, `<name>_scorer.safetensors`), and, when the LoRA trains, a LoRA in
models/loras (`<name>.safetensors`, LoraLoader's layout). The projection file holds `exemplar.step`; a run resumes
from it (its scorer and LoRA are found beside it by name). Randomness, data parallelism and optimizer-state side
files follow models/common/train_loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch


from ...models.common import noising
from ...models.common.atomic_file import save_safetensors_atomic
from ...models.common.datasets import PairDataset
from ...models.common.masks import binary_mask, masked_source
from ...models.common import train_loop
from ...models.common.train_masks import random_box_mask, training_mask
from ...models.dreambooth.lora_file import (
    LoraPair,
    load_lora_file,
    lora_metadata,
    lora_state_dict,
    read_lora_state_dict,
    save_lora_file,
)
from ...models.dreaminpainter.reference_tokens import feature_tokens
from ...models.dreaminpainter.token_projection import TokenProjection, init_token_projection, inject_context
from ...models.dreaminpainter.token_scorer import TokenScorer, init_token_scorer
from ...models.dreaminpainter.token_selector import straight_through_top_k
from ..common import training
from .unet_features import resolve_block, square_resize, unet_features

TRAINABLE = {
    "projection+scorer": ("projection", "scorer"),
    "projection": ("projection",),
    "projection+scorer+lora": ("projection", "scorer", "lora"),
}


@dataclass
class DISettings(train_loop.TrainSettings):
    """Hyper-parameters. The paper's are not known: K = 24 and the 2nd down-sampling stage at t = 0 are its; the
    rest are defaults (AdamW lr 1e-4, decoupling with p 0.5)."""

    learning_rate: float = 1e-4
    reference_resolution: int = 512
    block: str = "auto"
    timestep: int = 0
    k: int = 24
    trainable: str = "projection+scorer"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    selection_noise: float = 1.0
    selection_temperature: float = 1.0
    decoupling_probability: float = 0.5
    subject_caption: str = ""
    mask_mode: str = "mixed"
    fine_probability: float = 0.5
    flip_probability: float = 0.5

    def validate(self):
        probabilities = ("decoupling_probability", "fine_probability", "flip_probability")
        checks = train_loop.common_checks(self, TRAINABLE, probabilities)
        ref = self.reference_resolution
        checks += [
            (ref >= 64 and ref % 8 == 0, f"reference_resolution must be a multiple of 8, at least 64, got {ref}"),
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (0 <= self.timestep <= 999, f"timestep must be in 0..999, got {self.timestep}"),
            (self.selection_noise >= 0, f"selection_noise must be >= 0, got {self.selection_noise}"),
            (self.selection_temperature > 0, f"selection_temperature must be > 0, got {self.selection_temperature}"),
        ]
        train_loop.raise_first(checks)


def captions(text: str, subject_caption: str) -> tuple[str, str]:
    """(full caption, subject caption) of a caption file: its first line, and its second line, else the setting,
    else the first line too."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    full = lines[0] if lines else ""
    return full, lines[1] if len(lines) > 1 else (subject_caption or full)


@dataclass
class DIBatch:
    images: torch.Tensor  # [B, H, W, 3]
    masks: torch.Tensor  # [B, H, W]: the loss region (all ones for a decoupled sample)
    references: torch.Tensor  # [B, S, S, 3]
    prompts: list[str]
    decoupled: torch.Tensor  # [B] bool


def draw_batch(dataset: PairDataset, settings: DISettings, batch: int, g: torch.Generator, prompt=None) -> DIBatch:
    """`batch` samples; every random choice comes from `g`, in a fixed order. `prompt` replaces every caption."""
    images, masks, references, prompts, decoupled = [], [], [], [], []
    size = settings.resolution
    for index in train_loop.pick(len(dataset), batch, g).tolist():
        sample = dataset.load(index, size, size, settings.reference_resolution)
        given = sample.mask if sample.mask is not None else random_box_mask(size, size, g)
        mask = training_mask(given, settings.mask_mode, g, settings.fine_probability)
        flip, whole = (
            torch.rand(2, generator=g, dtype=torch.float64)
            < torch.tensor([settings.flip_probability, settings.decoupling_probability], dtype=torch.float64)
        ).tolist()
        image = sample.image
        if flip:
            image, mask = image.flip(1), mask.flip(1)
        full, subject = captions(sample.caption, settings.subject_caption)
        images.append(image)
        masks.append(torch.ones_like(mask) if whole else mask)
        references.append(sample.reference)
        prompts.append(prompt if prompt is not None else (full if whole else subject))
        decoupled.append(whole)
    return DIBatch(torch.stack(images), torch.stack(masks), torch.stack(references), prompts, torch.tensor(decoupled))


class _Prompts:
    """Text contexts of the captions through the user's CLIP (frozen), computed once per caption."""

    def __init__(self, clip):
        self.clip, self.cache = clip, {}

    def __call__(self, prompts: list[str], device) -> torch.Tensor:
        for prompt in set(prompts) - set(self.cache):
            with torch.no_grad():
                tokens = self.clip.tokenize(prompt)
                cond = self.clip.encode_from_tokens(tokens, return_pooled=False, return_dict=True)["cond"]
            self.cache[prompt] = cond.detach().float().clone()
        return torch.cat([self.cache[p] for p in prompts]).to(device)


class Session(training.LoraSession):
    """The MODEL clone (LoRA when trained or resumed), the training VAE and the frozen-weight wrappers."""

    def __init__(self, model, vae, settings: DISettings, resume_pairs: dict[str, LoraPair], dtype):
        self.block = resolve_block(model, settings.block)
        lora = "lora" in TRAINABLE[settings.trainable]
        super().__init__(model, vae, dtype, settings, lora, resume_pairs, "DreamInpainter training (MODEL)")
        self.context_dim = self.patched.model.model_config.unet_config.get("context_dim")

    def reference_tokens(self, references: torch.Tensor, settings: DISettings) -> torch.Tensor:
        """[B, N, D] UNet features of the references (one pass each, no gradient), as the encode node makes them."""
        size = settings.reference_resolution
        pixels = square_resize(references.movedim(-1, 1), size, "bicubic", True).movedim(1, -1).clamp(0, 1)
        latent = self.vae.encode(pixels)
        context = torch.zeros(1, 77, self.context_dim)
        with torch.no_grad():
            features = unet_features(self.patched, latent, self.block, settings.timestep, context, loaded=True)
        return feature_tokens(features, None, {}).tokens.to(self.device)

    def predict(self, parts, batch: DIBatch, text, settings: DISettings, noise, sigmas, dtype, g=None):
        """(x0, xt, denoised, latent loss region) with the selected, projected reference tokens appended to the
        captions' context. Without `g` (evaluation) a silent projection appends nothing, as Reference Cross-Attention
        Tokens does; in training the zero-gated tokens are appended so the gate gets its gradient."""
        scorer, projection = parts
        model, device = self.patched.model, self.device
        tokens = self.reference_tokens(batch.references, settings)
        if settings.k > tokens.shape[1]:
            raise ValueError(f"k={settings.k} is larger than the {tokens.shape[1]} reference tokens of {self.block}")
        scores = scorer(tokens)
        index, weight = straight_through_top_k(
            scores, settings.k, g, settings.selection_noise if g is not None else 0.0, settings.selection_temperature
        )
        picked = torch.gather(tokens, 1, index[..., None].expand(-1, -1, tokens.shape[-1])) * weight[..., None]
        context = text(batch.prompts, device)
        if g is not None or not projection.is_silent:
            context = inject_context(context, projection(picked), "append", 1.0)
        x0 = model.process_latent_in(self.vae.encode(batch.images).to(device))
        masked = self.vae.encode(masked_source(batch.images, batch.masks)).to(device)
        hole = binary_mask(batch.masks, tuple(x0.shape[-2:]))[:, None].to(device)
        sigmas = sigmas.to(device)
        xt = noising.add_noise(x0, noise.to(device), sigmas)
        conds = model.extra_conds(
            noise=xt, device=device, cross_attn=context, concat_latent_image=masked, concat_mask=hole
        )
        denoised = training.call_model(self.patched, xt, sigmas, dtype, **{k: v.cond for k, v in conds.items()})
        return x0, xt, denoised.float(), hole


@dataclass
class DITrainResult:
    scorer: TokenScorer
    projection: TokenProjection
    lora: dict[str, LoraPair]
    step: int
    metadata: dict[str, str]  # exemplar.* training fields for every file
    settings: DISettings | None = None
    losses: list[dict] = field(default_factory=list)
    previews: list[torch.Tensor] = field(default_factory=list)
    optimizer_state: dict | None = None


def file_paths(projection_path: str | Path) -> dict[str, Path]:
    """The files of one run from its projection file `<name>_projection.safetensors`: scorer beside it."""
    path = Path(projection_path)
    stem = path.stem.removesuffix("_projection")
    return {"projection": path, "scorer": path.with_name(f"{stem}_scorer{path.suffix}")}


def save_checkpoint(projection_path: str | Path, result: DITrainResult, lora_path: str | Path | None = None):
    """The projection and scorer files (atomic), the optimizer state beside the projection, the LoRA if any."""
    paths = file_paths(projection_path)
    for name, module in (("projection", result.projection), ("scorer", result.scorer)):
        tensors = {k: v.detach().cpu().float().contiguous() for k, v in module.state_dict().items()}
        save_safetensors_atomic(paths[name], tensors, {**module.metadata(), **result.metadata})
    if result.optimizer_state is not None:
        train_loop.save_optimizer_state(paths["projection"], result.optimizer_state)
    if lora_path is not None and result.lora:
        s = result.settings
        extra = {k.removeprefix("exemplar."): v for k, v in result.metadata.items() if k != "exemplar.step"}
        save_lora_file(
            lora_path, lora_state_dict(result.lora), lora_metadata(s.lora_rank, s.lora_alpha, result.step, extra)
        )
        paths["lora"] = Path(lora_path)
    return paths


def read_checkpoint(projection_path: str | Path, lora_path: str | Path | None = None):
    """(scorer, projection, LoRA pairs, step, optimizer state) of files this trainer wrote."""
    from safetensors.torch import load_file

    paths = file_paths(projection_path)
    written_by = "projections written by the DreamInpainter trainer"
    step = train_loop.resume_step(train_loop.file_metadata(paths["projection"]), paths["projection"].name, written_by)
    if not paths["scorer"].is_file():
        raise ValueError(f"resume_from: the scorer {paths['scorer'].name} written beside it is missing")
    projection = TokenProjection.from_state_dict(load_file(str(paths["projection"])))
    scorer = TokenScorer.from_state_dict(load_file(str(paths["scorer"])))
    pairs = {}
    if lora_path is not None and Path(lora_path).is_file():
        pairs = read_lora_state_dict(load_lora_file(lora_path)[0])
    return scorer, projection, pairs, step, train_loop.load_optimizer_state(paths["projection"])


def _preview(session: Session, batch: DIBatch, denoised) -> torch.Tensor:
    """[1, H, 3W, 3]: the source with the loss region greyed, the reference, the decoded x0 prediction."""
    return session.preview_row(denoised, masked_source(batch.images[:1], batch.masks[:1]), batch.references)


def _parts(dim: int, context_dim: int, settings: DISettings, scorer=None, projection=None):
    """Float32 copies of the scorer and projection (fresh ones when None), with normal tensors."""
    with torch.inference_mode(False):
        scorer = init_token_scorer(dim, seed=settings.seed) if scorer is None else _copy(scorer, TokenScorer)
        projection = (
            init_token_projection(dim, context_dim, seed=settings.seed)
            if projection is None
            else _copy(projection, TokenProjection)
        )
    for what, takes in (("scorer", scorer.dim), ("projection", projection.in_dim)):
        if takes != dim:
            raise ValueError(f"{what}: takes {takes}-dim tokens; block {settings.block} gives {dim}-dim ones")
    if projection.out_dim != context_dim:
        raise ValueError(f"projection: outputs dim {projection.out_dim}, the model's context is {context_dim}")
    return scorer, projection


def _copy(module, cls):
    return cls.from_state_dict({k: v.detach().clone().float() for k, v in module.state_dict().items()})


def train_dreaminpainter(
    model,
    vae,
    clip,
    dataset: PairDataset,
    settings: DISettings,
    scorer: TokenScorer | None = None,
    projection: TokenProjection | None = None,
    resume_from: str | Path | None = None,
    resume_lora: str | Path | None = None,
    checkpoint: Callable[[DITrainResult], None] | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
    on_preview: Callable[[int, torch.Tensor], None] | None = None,
    extra_metadata: dict | None = None,
    progress=None,
) -> DITrainResult:
    """Train copies of `scorer` / `projection` (fresh, zero-gated ones when None) and optionally a UNet LoRA.

    checkpoint(result) every `checkpoint_every` steps (rank 0); on_step(step, total, losses) after each optimizer step
    (may raise to cancel); on_preview(step, image) every `preview_every` steps and at the end.
    """
    world, dtype = training.start_run(settings, model)
    if training.is_sdxl_clip(clip) or model.model.model_config.unet_config.get("adm_in_channels"):
        raise ValueError(
            "model / clip: DreamInpainter training runs on SD1.x / SD2.x models (one text encoder, no vector "
            "conditioning); this is an SDXL (or other vector-conditioned) model or CLIP. On SDXL, reference "
            "inpainting works without trained parts (the saliency selection and the self-attention injection)"
        )
    pairs, start_step, optimizer_state = {}, 0, None
    if resume_from:
        scorer, projection, pairs, start_step, optimizer_state = read_checkpoint(resume_from, resume_lora)
    train_loop.check_resumable(start_step, settings.steps)
    parts = TRAINABLE[settings.trainable]
    with torch.inference_mode(False), torch.enable_grad():
        session = Session(model, vae, settings, pairs, dtype)
        try:
            probe = session.reference_tokens(torch.zeros(1, 8, 8, 3), settings)
            scorer, projection = _parts(probe.shape[-1], session.context_dim, settings, scorer, projection)
            scorer.to(session.device).requires_grad_("scorer" in parts).train()
            projection.to(session.device).requires_grad_(True).train()
            params = list(projection.parameters()) + (list(scorer.parameters()) if "scorer" in parts else [])
            params += session.lora_parameters() if "lora" in parts else []
            optimizer = train_loop.adamw(params, settings.learning_rate, optimizer_state)
            text = _Prompts(clip)

            def result(step, losses, previews):
                metadata = train_loop.step_metadata(settings, step, world, extra_metadata, resolved_block=session.block)
                pairs = session.lora_pairs(settings.lora_alpha)
                scorer_copy, projection_copy = _copy(scorer, TokenScorer), _copy(projection, TokenProjection)
                return DITrainResult(scorer_copy, projection_copy, pairs, step, metadata, settings, losses, previews)

            def micro_step(g):
                batch = draw_batch(dataset, settings, settings.batch_size, g)
                noise, sigmas = session.draw_noise(settings, g)
                _x0, xt, denoised, region = session.predict(
                    (scorer, projection), batch, text, settings, noise, sigmas, dtype, g
                )
                eps = noising.implied_noise(xt, denoised, sigmas.to(xt.device))
                error = (eps - noise.to(eps.device)) ** 2 * region
                loss = error.sum() / (region.sum() * eps.shape[1]).clamp_min(1)
                return {"loss": loss, "decoupled": batch.decoupled.float().mean()}, (batch, denoised)

            callbacks = (lambda state: _preview(session, *state), checkpoint, on_step, on_preview)
            final = train_loop.optimise(
                settings, start_step, params, optimizer, micro_step, result, "DreamInpainter", *callbacks,
                progress=progress, x0_of=train_loop.first_x0,
            )
        finally:
            session.release()
    return final


def held_out_predictions(
    model,
    vae,
    clip,
    dataset: PairDataset,
    settings: DISettings,
    result: DITrainResult | None,
    prompts: tuple | None = None,
    samples: int = 4,
    sigma_percent: float = 0.5,
    seed: int = 12345,
) -> list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """x0 predictions on `samples` fixed draws (masked region, no flip, no decoupling, no selection noise):
    for each prompt of `prompts` (None = each sample's subject caption), a list of (x0, denoised, latent mask).
    `result` None = the untrained state (zero-gated projection: the base model)."""
    plain = replace(settings, flip_probability=0.0, decoupling_probability=0.0)
    out = []
    with torch.inference_mode(False), torch.no_grad():
        session = Session(model, vae, plain, {} if result is None else result.lora, torch.float32)
        try:
            probe = session.reference_tokens(torch.zeros(1, 8, 8, 3), plain)
            parts = _parts(
                probe.shape[-1],
                session.context_dim,
                plain,
                None if result is None else result.scorer,
                None if result is None else result.projection,
            )
            for module in parts:
                module.to(session.device).train(False)
            text = _Prompts(clip)
            for prompt in prompts or (None,):
                rows = []
                for index in range(samples):
                    g = train_loop.step_generator(seed, index)
                    batch = draw_batch(dataset, plain, 1, g, prompt)
                    shape = session.latent_shape(1, plain.resolution)
                    noise, sigma = train_loop.held_out_noise(g, shape, session.sampling, sigma_percent)
                    x0, _xt, denoised, region = session.predict(parts, batch, text, plain, noise, sigma, torch.float32)
                    rows.append((x0, denoised, region))
                out.append(rows)
        finally:
            session.release()
    return out


def masked_x0_error(model, vae, clip, dataset, settings, result=None, samples: int = 4) -> float:
    """Mean squared x0 error inside the mask (subject captions) on fixed held-out draws."""
    rows = held_out_predictions(model, vae, clip, dataset, settings, result, None, samples)[0]
    errors = [train_loop.masked_mse(d, x0, r) for x0, d, r in rows]
    return sum(errors) / len(errors)


def text_sensitivity(model, vae, clip, dataset, settings, result, prompts: tuple[str, str], samples: int = 4) -> float:
    """Mean absolute change of the x0 prediction inside the mask when the caption changes from prompts[0] to [1]."""
    first, second = held_out_predictions(model, vae, clip, dataset, settings, result, prompts, samples)
    changes = [float(((a[1] - b[1]).abs() * a[2]).sum() / (a[2].sum() * a[1].shape[1])) for a, b in zip(first, second)]
    return sum(changes) / len(changes)
