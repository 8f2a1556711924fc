"""DreamStyler training: ComfyUI's MODEL / CLIP / VAE as the frozen parts of multi-stage TI.

Training runs on clones of the MODEL and CLIP patchers (classic, fully loaded ones under Dynamic VRAM) made
differentiable the one way the pack's trainers share (`nodes/common/training.py`: weight wrappers for ComfyUI's
inference tensors, a CLIP text forward with out-of-place residuals); the MODEL and CLIP you pass in are never
modified. The noise schedule is the model's own: its 1000 discrete sigmas, as cumulative alphas for the pure loop.
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


def init_vectors_from_word(clip, word: str, stages: int, vectors_per_stage: int) -> torch.Tensor:
    """[T, n, dim]: the token-table rows of `word` (cycled to n vectors), the same for every stage."""
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

    def run(self, on_step=None):
        return train_staged_inversion(
            self.init, self.latents, self.flipped, self.encode, self.unet, self.alphas_cumprod, self.settings, on_step
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
    init = init_vectors_from_word(clip, init_word, settings.stages, vectors_per_stage)
    check_dim(clip, se.StagedEmbedding(token, init))

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
    encoder = DifferentiableTextEncoder(text_clip)
    dtype = model.model.manual_cast_dtype or model.model.get_dtype()

    def encode(vectors, index):
        return encoder([prompts[i] for i in index.tolist()], token, vectors)

    def run_unet(noisy, t, context):
        return unet(noisy.to(dtype), t.float(), context=context.to(device=device, dtype=dtype))

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
        noising.alphas_cumprod(sigmas),
        encode,
        run_unet,
        release,
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
):
    """Multi-stage TI on `images` ([N, H, W, 3] in 0..1). Returns (StagedEmbedding, losses)."""
    with torch.inference_mode(False), torch.enable_grad():
        setup = prepare(model, clip, vae, images, captions, token, settings, template, init_word, vectors_per_stage)
        try:
            vectors, losses = setup.run(on_step)
        finally:
            setup.release()
    metadata = {
        "steps": setup.settings.steps,
        "learning_rate": setup.settings.learning_rate,
        "batch_size": setup.settings.batch_size,
        "flip_probability": setup.settings.flip_probability,
        "seed": setup.settings.seed,
        "init_word": init_word,
        "template": template,
        "final_loss": f"{losses[-1]:.6f}",
        "trainer": "comfyui-exemplar",
    }
    base = {768: "sd1", 1024: "sd2"}.get(vectors.shape[-1], "")
    return se.StagedEmbedding(setup.token, vectors, base=base, metadata=metadata), losses


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
