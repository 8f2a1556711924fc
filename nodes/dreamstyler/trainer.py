"""DreamStyler training: ComfyUI's MODEL / CLIP / VAE as the frozen parts of multi-stage TI.

Training runs on clones of the MODEL and CLIP patchers (classic, fully loaded ones under Dynamic VRAM) made
differentiable the one way the pack's trainers share (`nodes/common/training.py`: weight wrappers for ComfyUI's
inference tensors, a CLIP text forward with out-of-place residuals); the MODEL and CLIP you pass in are never
modified. The noise schedule is the model's own: its 1000 discrete sigmas, as cumulative alphas for the pure loop.

On SDXL both text encoders take the token: each stage trains a CLIP-L vector and a bigG vector, which the pure loop
sees as one [n, 768 + 1280] vector (split again for the two tokenizers), and the UNet gets bigG's pooled output and
the images' size conditioning as SDXL's vector input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ...models.common import noising
from ...models.dreamstyler import staged_embedding as se
from ...models.dreamstyler.context_prompts import DEFAULT_TEMPLATE
from ...models.dreamstyler.staged_inversion import InversionSettings, train_staged_inversion
from ..common import comfyui_compat, training
from ..common.output_names import check_output_name
from .staged_encoding import check_dim, tokenize_with_vectors


class DifferentiableTextEncoder(training.TextEncoder):
    """Encodes prompts whose placeholder is replaced by (trainable) vectors; gradients reach the vectors."""

    def __call__(self, prompts: list[str], token: str, vectors: torch.Tensor) -> torch.Tensor:
        """prompts: B strings; vectors: [B, n, dim] -> context [B, 77, dim] (float32)."""
        rows = [self.rows(p, tokenize_with_vectors(self.clip, p, token, v)) for p, v in zip(prompts, vectors)]
        return self.encode_rows(rows)


class DifferentiableSDXLTextEncoder(training.SDXLTextEncoder):
    """The same for SDXL: vectors [B, n, 768 + 1280] (CLIP-L | bigG) -> (context [B, 77, 2048], pooled [B, 1280])."""

    def __call__(self, prompts: list[str], token: str, vectors: torch.Tensor):
        width_l = self.towers["l"].transformer.get_input_embeddings().weight.shape[1]
        rows = []
        for p, v in zip(prompts, vectors):
            parts = {"clip_l": v[:, :width_l], "clip_g": v[:, width_l:]}
            rows.append(self.rows(p, tokenize_with_vectors(self.clip, p, token, parts)))
        return self.encode_rows(rows)


def _table_rows(clip, tokens_key: str, table: torch.Tensor, special: set, word: str, n: int) -> torch.Tensor:
    ids = [t for t, _ in clip.tokenize(word)[tokens_key][0] if isinstance(t, int) and t not in special]
    if not ids:
        raise ValueError(f"init_word {word!r} has no tokens")
    return torch.stack([table[ids[i % len(ids)]].detach().float().cpu() for i in range(n)])


def init_vectors_from_word(clip, word: str, stages: int, vectors_per_stage: int) -> torch.Tensor:
    """[T, n, dim]: the token-table rows of `word` (cycled to n vectors), the same for every stage (SDXL: CLIP-L's
    and bigG's rows side by side, dim 768 + 1280)."""
    if training.is_sdxl_clip(clip):
        outer = comfyui_compat.clip_model(clip)
        parts = []
        for key in ("l", "g"):
            tower = getattr(outer, f"clip_{key}")
            table = tower.transformer.get_input_embeddings().weight
            parts.append(_table_rows(clip, key, table, set(tower.special_tokens.values()), word, vectors_per_stage))
        return torch.cat(parts, dim=-1)[None].repeat(stages, 1, 1).clone()
    outer, inner = training.inner_clip(clip)
    ids = [t for t, _ in clip.tokenize(word)[outer.clip_name][0] if isinstance(t, int)]
    special = set(inner.special_tokens.values())
    ids = [t for t in ids if t not in special]
    if not ids:
        raise ValueError(f"init_word {word!r} has no tokens")
    table = inner.transformer.get_input_embeddings().weight
    rows = torch.stack([table[ids[i % len(ids)]].detach().float().cpu() for i in range(vectors_per_stage)])
    return rows[None].repeat(stages, 1, 1).clone()


def training_prompts(template: str, captions: list[str], token: str, images: int) -> list[str]:
    captions = [c.strip() for c in captions if c.strip()] or [""]
    if len(captions) not in (1, images):
        raise ValueError(
            f"captions: give one line per image ({images}) or a single line for all; got {len(captions)} lines"
        )
    if "{token}" not in template:
        raise ValueError(f"template must contain {{token}}; got {template!r}")
    captions = captions * images if len(captions) == 1 else captions
    return [" ".join(template.replace("{caption}", c).replace("{token}", token).split()) for c in captions]


@dataclass
class TrainingSetup:
    """Everything the pure loop needs, built from ComfyUI objects (use under torch.inference_mode(False))."""

    settings: InversionSettings
    token: str
    prompts: list[str]
    init: torch.Tensor
    latents: torch.Tensor
    flipped: torch.Tensor
    alphas_cumprod: torch.Tensor
    encode: Callable
    unet: Callable
    release: Callable[[], None]  # unloads the training clones and takes their weight wrappers off

    last_x0: Callable[[], torch.Tensor | None] = lambda: None  # the x0 prediction of the latest UNet call
    sdxl: bool = False  # vectors hold CLIP-L (768) then bigG (1280) parts

    def run(self, on_step=None, after_step=None):
        return train_staged_inversion(
            self.init,
            self.latents,
            self.flipped,
            self.encode,
            self.unet,
            self.alphas_cumprod,
            self.settings,
            on_step,
            after_step,
        )


def prepare(
    model,
    clip,
    vae,
    images: torch.Tensor,
    captions: list[str],
    token: str,
    settings: InversionSettings,
    template: str = DEFAULT_TEMPLATE,
    init_word: str = "painting",
    vectors_per_stage: int = 1,
) -> TrainingSetup:
    import comfy.model_management

    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"images must be an IMAGE batch [N, H, W, 3]; got {tuple(images.shape)}")
    if min(images.shape[1:3]) < 8:
        raise ValueError(
            f"images must be at least 8x8 px (one latent cell of the VAE); got {images.shape[2]}x{images.shape[1]} px"
        )
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"token must be one word without spaces, e.g. <sks1>; got {token!r}")
    if vectors_per_stage < 1:
        raise ValueError(f"vectors_per_stage must be >= 1; got {vectors_per_stage}")
    model_sampling = model.get_model_object("model_sampling")
    sigmas = getattr(model_sampling, "sigmas", None)
    if sigmas is None or sigmas.shape[0] != se.NUM_TRAIN_TIMESTEPS:
        raise ValueError("training needs a discrete 1000-timestep model (SD1.x / SD2.x)")
    settings = InversionSettings(**{**settings.__dict__, "prediction": training.prediction_type(model_sampling)})
    prompts = training_prompts(template, captions, token, images.shape[0])
    sdxl = training.is_sdxl_clip(clip)
    init = init_vectors_from_word(clip, init_word, settings.stages, vectors_per_stage)
    check_dim(clip, staged(token, init, sdxl))

    with torch.no_grad():
        pixels = images[..., :3].clone()
        latents = model.model.process_latent_in(vae.encode(pixels)).clone()
        flipped = model.model.process_latent_in(vae.encode(pixels.flip(2))).clone()
    unet_patcher, text_clip = comfyui_compat.training_clone(model), comfyui_compat.training_clip(clip)
    wrappers = training.differentiable_frozen_weights(unet_patcher) + training.differentiable_frozen_weights(
        text_clip.patcher
    )
    unet_patcher.model.requires_grad_(False)
    text_clip.patcher.model.requires_grad_(False)
    comfy.model_management.load_models_gpu([unet_patcher, text_clip.patcher], force_full_load=True)
    device = training.check_on_load_device(unet_patcher, "DreamStyler training (MODEL)")
    training.check_on_load_device(text_clip.patcher, "DreamStyler training (CLIP)")
    unet = unet_patcher.model.diffusion_model
    encoder = (DifferentiableSDXLTextEncoder if sdxl else DifferentiableTextEncoder)(text_clip)
    dtype = model.model.manual_cast_dtype or model.model.get_dtype()
    alphas = noising.alphas_cumprod(sigmas)
    latest = {}
    # SDXL's vector input: bigG's pooled output and the training images' own size (uncropped)
    size = training.sdxl_size_conditioning(images.shape[2], images.shape[1])

    def encode(vectors, index):
        return encoder([prompts[i] for i in index.tolist()], token, vectors)

    def run_unet(noisy, t, context):
        if sdxl:
            context, pooled = context
            y = unet_patcher.model.encode_adm(pooled_output=pooled, **size).to(device=device, dtype=dtype)
            output = unet(noisy.to(dtype), t.float(), context=context.to(device=device, dtype=dtype), y=y)
        else:
            output = unet(noisy.to(dtype), t.float(), context=context.to(device=device, dtype=dtype))
        latest.update(noisy=noisy[:1].detach(), t=t[:1].detach(), output=output[:1].detach())
        return output

    def last_x0():
        if not latest:
            return None
        a = alphas.to(device=latest["noisy"].device, dtype=torch.float32)[latest["t"]].view(-1, 1, 1, 1)
        noisy, output = latest["noisy"].float(), latest["output"].float()
        if settings.prediction == "v":
            return a.sqrt() * noisy - (1 - a).sqrt() * output
        return (noisy - (1 - a).sqrt() * output) / a.sqrt()

    def release():
        training.release(unet_patcher, wrappers)
        training.release(text_clip.patcher, wrappers)

    return TrainingSetup(
        settings,
        token,
        prompts,
        init,
        latents.to(device),
        flipped.to(device),
        alphas,
        encode,
        run_unet,
        release,
        last_x0,
        sdxl,
    )


def train(
    model,
    clip,
    vae,
    images,
    captions,
    token,
    settings,
    template=DEFAULT_TEMPLATE,
    init_word="painting",
    vectors_per_stage=1,
    on_step=None,
    progress=None,
):
    """Multi-stage TI on `images` ([N, H, W, 3] in 0..1). Returns (StagedEmbedding, losses).

    progress (nodes/common/progress.py): set-up status, loss, x0 previews; on cancel it saves the StagedEmbedding of
    the last complete step.
    """
    after_step = None
    with torch.inference_mode(False), torch.enable_grad():
        if progress is not None:
            progress.status(f"encoding {images.shape[0]} images, loading the model for training")
        setup = prepare(model, clip, vae, images, captions, token, settings, template, init_word, vectors_per_stage)
        if progress is not None:

            def after_step(done, loss, vectors):
                progress.step(
                    done,
                    loss,
                    x0=setup.last_x0,
                    snapshot=lambda: embedding_of(setup, vectors, [loss], init_word, template, done),
                )

            progress.status(f"training {setup.settings.steps} steps")
        try:
            vectors, losses = setup.run(on_step, after_step)
        finally:
            setup.release()
    return embedding_of(setup, vectors, losses, init_word, template), losses


def embedding_of(setup: TrainingSetup, vectors, losses, init_word, template, step=None) -> se.StagedEmbedding:
    """The StagedEmbedding of `vectors` with the run's metadata (`step`: a cancelled run's last complete step)."""
    metadata = {
        "steps": setup.settings.steps if step is None else step,
        "learning_rate": setup.settings.learning_rate,
        "batch_size": setup.settings.batch_size,
        "flip_probability": setup.settings.flip_probability,
        "seed": setup.settings.seed,
        "init_word": init_word,
        "template": template,
        "final_loss": f"{losses[-1]:.6f}",
        "trainer": "comfyui-exemplar",
    }
    return staged(setup.token, vectors, setup.sdxl, metadata)


def staged(token: str, vectors: torch.Tensor, sdxl: bool, metadata: dict | None = None) -> se.StagedEmbedding:
    """A StagedEmbedding of trained vectors [T, n, dim] (SDXL: [T, n, 768 + 1280], split into clip_l and clip_g)."""
    metadata = metadata or {}
    vectors = vectors.float().cpu()
    if sdxl:
        return se.StagedEmbedding(token, vectors[..., :768], base="sdxl", metadata=metadata, clip_g=vectors[..., 768:])
    base = {768: "sd1", 1024: "sd2"}.get(vectors.shape[-1], "")
    return se.StagedEmbedding(token, vectors, base=base, metadata=metadata)


def check_target(directory, name: str, overwrite: bool) -> tuple[Path, Path]:
    """The two output paths; a clear error for a bad name or (without overwrite) existing files."""
    name = check_output_name(name, "name", "my_style", folders=False)
    if name.startswith("."):
        raise ValueError(f"name: a hidden file name (starting with '.') is not allowed; got {name!r}")
    directory = Path(directory)
    ours, official = directory / f"{name}.safetensors", directory / f"{name}.bin"
    existing = [p.name for p in (ours, official) if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"{', '.join(existing)} already exist in {directory}; choose another name or enable overwrite")
    return ours, official


def write_files(embedding, directory, name: str, overwrite: bool = False) -> tuple[Path, Path]:
    """`<name>.safetensors` (ours, with metadata) and `<name>.bin` (the official layout), both atomic."""
    ours, official = check_target(directory, name, overwrite)
    se.save_safetensors(embedding, ours)
    se.save_official(embedding, official)
    return ours, official


def loss_summary(losses: list[float], window: int = 10) -> str:
    if not losses:
        return "no steps"
    head = sum(losses[:window]) / min(window, len(losses))
    tail = sum(losses[-window:]) / min(window, len(losses))
    return f"{len(losses)} steps, mean loss first {min(window, len(losses))}: {head:.4f}, last: {tail:.4f}" + (
        "" if math.isfinite(tail) else " (diverged)"
    )
