"""DreamStyler training: ComfyUI's MODEL / CLIP / VAE as the frozen parts of multi-stage TI.

The text encoder forward used here is differentiable: ComfyUI's own CLIP layers add their residuals
in place (fine for inference, fatal for autograd), so `encode_differentiable` runs the same
submodules (layer norms, attention, MLP, final norm, clip-skip layer) with out-of-place residuals;
a test holds it equal to ComfyUI's encode. Models loaded inside ComfyUI's executor hold inference
tensors, which autograd cannot save, so training runs on private copies of the UNet and the text
transformer (the MODEL and CLIP you pass in are never modified).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ...models.dreamstyler import staged_embedding as se
from ...models.dreamstyler.context_prompts import DEFAULT_TEMPLATE
from ...models.dreamstyler.staged_inversion import InversionSettings, train_staged_inversion
from .staged_encoding import check_dim, tokenize_with_vectors

def _inner_clip(clip):
    outer = clip.cond_stage_model
    name = getattr(outer, "clip", None)
    inner = getattr(outer, name, None) if name else None
    if inner is None or not hasattr(inner, "process_tokens") or not hasattr(inner.transformer, "text_model"):
        raise ValueError(
            f"training needs an SD1.x-style CLIP text encoder (one CLIP-L/H tower); got {type(outer).__name__}"
        )
    return outer, inner


def _layer_options(clip, outer, inner):
    outer.reset_clip_options()
    if clip.layer_idx is not None:
        outer.set_clip_options({"layer": clip.layer_idx})
    layer, layer_idx = inner.layer, inner.layer_idx
    outer.reset_clip_options()
    if layer not in ("last", "hidden") or inner.enable_attention_masks or inner.zero_out_masked:
        raise ValueError(f"training does not support this CLIP's output options (layer {layer!r}, attention masks)")
    return layer, layer_idx, inner.layer_norm_hidden_state


def transformer_forward(transformer, embeds: torch.Tensor, layer: str, layer_idx, layer_norm_hidden_state: bool) -> torch.Tensor:
    """ComfyUI's CLIPTextModel forward (causal mask, no padding mask) with out-of-place residuals."""
    import comfy.ops
    from comfy.ldm.modules.attention import optimized_attention_for_device

    text_model = transformer.text_model
    x = embeds + comfy.ops.cast_to(text_model.embeddings.position_embedding.weight, dtype=embeds.dtype, device=embeds.device)
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
        return text_model.final_layer_norm(x)
    return text_model.final_layer_norm(intermediate) if layer_norm_hidden_state else intermediate


class DifferentiableTextEncoder:
    """Encodes prompts whose placeholder is replaced by (trainable) vectors; gradients reach the vectors."""

    def __init__(self, clip, transformer=None):
        self.clip = clip
        self.outer, self.inner = _inner_clip(clip)
        self.options = _layer_options(clip, self.outer, self.inner)
        self.transformer = transformer if transformer is not None else self.inner.transformer
        self.key = self.outer.clip_name

    def __call__(self, prompts: list[str], token: str, vectors: torch.Tensor) -> torch.Tensor:
        """prompts: B strings; vectors: [B, n, dim] -> context [B, 77, dim] (float32)."""
        rows = []
        for prompt, sample_vectors in zip(prompts, vectors):
            chunks = tokenize_with_vectors(self.clip, prompt, token, sample_vectors)[self.key]
            if len(chunks) != 1 or any(w != 1.0 for _, w in chunks[0]):
                raise ValueError(f"training prompt {prompt!r} must fit in one 77-token chunk and carry no (word:weight) syntax")
            rows.append([t for t, _ in chunks[0]])
        device = self.inner.transformer.get_input_embeddings().weight.device
        embeds, _, _, _ = self.inner.process_tokens(rows, device)
        return transformer_forward(self.transformer, embeds, *self.options).float()


def init_vectors_from_word(clip, word: str, stages: int, vectors_per_stage: int) -> torch.Tensor:
    """[T, n, dim]: the token-table rows of `word` (cycled to n vectors), the same for every stage."""
    outer, inner = _inner_clip(clip)
    ids = [t for t, _ in clip.tokenize(word)[outer.clip_name][0] if isinstance(t, int)]
    special = set(inner.special_tokens.values())
    ids = [t for t in ids if t not in special]
    if not ids:
        raise ValueError(f"init_word {word!r} has no tokens")
    table = inner.transformer.get_input_embeddings().weight
    rows = torch.stack([table[ids[i % len(ids)]].detach().float().cpu() for i in range(vectors_per_stage)])
    return rows[None].repeat(stages, 1, 1).clone()


def _prediction(model_sampling) -> str:
    import comfy.model_sampling as ms

    unsupported = (ms.EDM, ms.CONST, ms.X0)
    if not isinstance(model_sampling, unsupported):
        if isinstance(model_sampling, ms.V_PREDICTION):
            return "v"
        if isinstance(model_sampling, ms.EPS):
            return "eps"
    raise ValueError(f"training supports eps- and v-prediction models; this model samples with {type(model_sampling).__name__}")


def training_prompts(template: str, captions: list[str], token: str, images: int) -> list[str]:
    captions = [c.strip() for c in captions if c.strip()] or [""]
    if len(captions) not in (1, images):
        raise ValueError(f"captions: give one line per image ({images}) or a single line for all; got {len(captions)} lines")
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
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"token must be one word without spaces, e.g. <sks1>; got {token!r}")
    if vectors_per_stage < 1:
        raise ValueError(f"vectors_per_stage must be >= 1; got {vectors_per_stage}")
    model_sampling = model.get_model_object("model_sampling")
    sigmas = getattr(model_sampling, "sigmas", None)
    if sigmas is None or sigmas.shape[0] != se.NUM_TRAIN_TIMESTEPS:
        raise ValueError("training needs a discrete 1000-timestep model (SD1.x / SD2.x)")
    settings = InversionSettings(**{**settings.__dict__, "prediction": _prediction(model_sampling)})
    prompts = training_prompts(template, captions, token, images.shape[0])
    init = init_vectors_from_word(clip, init_word, settings.stages, vectors_per_stage)
    check_dim(clip, se.StagedEmbedding(token, init))

    with torch.no_grad():
        pixels = images[..., :3].clone()
        latents = model.model.process_latent_in(vae.encode(pixels)).clone()
        flipped = model.model.process_latent_in(vae.encode(pixels.flip(2))).clone()
    comfy.model_management.load_models_gpu([model])
    clip.load_model()
    unet = copy.deepcopy(model.model.diffusion_model).requires_grad_(False)
    _, inner = _inner_clip(clip)
    text = copy.deepcopy(inner.transformer).requires_grad_(False)
    if comfy.model_management.get_torch_device().type == "cpu":
        text = text.float()  # CPU: one fp32 copy instead of casting fp16 weights at every layer call
    encoder = DifferentiableTextEncoder(clip, text)
    device = next(unet.parameters()).device
    dtype = model.model.manual_cast_dtype or model.model.get_dtype()

    def encode(vectors, index):
        return encoder([prompts[i] for i in index.tolist()], token, vectors)

    def run_unet(noisy, t, context):
        return unet(noisy.to(dtype), t.float(), context=context.to(device=device, dtype=dtype))

    return TrainingSetup(
        settings, token, prompts, init, latents.to(device), flipped.to(device), 1.0 / (1.0 + sigmas.double() ** 2), encode, run_unet
    )


def train(model, clip, vae, images, captions, token, settings, template=DEFAULT_TEMPLATE, init_word="painting", vectors_per_stage=1, on_step=None):
    """Multi-stage TI on `images` ([N, H, W, 3] in 0..1). Returns (StagedEmbedding, losses)."""
    with torch.inference_mode(False), torch.enable_grad():
        setup = prepare(model, clip, vae, images, captions, token, settings, template, init_word, vectors_per_stage)
        try:
            vectors, losses = setup.run(on_step)
        finally:
            setup.encode = setup.unet = None  # drop the private model copies now
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
    if not name or os.path.basename(name) != name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain file name without folders; got {name!r}")
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
