"""Tiny models for the evaluation metrics: a CLIP text encoder whose projection matches the tiny CLIP vision
model (for CLIP-T), and a VGG16 with random weights in torchvision's layout (for the style score)."""

from __future__ import annotations

import functools
import types
from pathlib import Path

import torch

from .host import boot, pack_submodule
from .tiny_models import TINY_CLIP_VISION_CONFIG, atomic_save, is_current, random_state_dict
from . import model_files

RANDOM_VGG16_NAME = model_files.VGG16.name
BUILDER_VERSION = "1"

TINY_CLIP_TEXT_CONFIG = {
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
    "hidden_act": "quick_gelu",
    "hidden_size": 64,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "projection_dim": TINY_CLIP_VISION_CONFIG["projection_dim"],
    "vocab_size": 49408,
}


def tiny_clip_text_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    """Weights of the tiny text encoder in ComfyUI's CLIPTextModel names, text projection [32, 64] included."""
    boot()
    import comfy.ops
    from comfy.clip_model import CLIPTextModel

    model = CLIPTextModel(TINY_CLIP_TEXT_CONFIG, torch.float32, "meta", comfy.ops.disable_weight_init)
    sd = random_state_dict(model, "", seed)
    # ComfyUI's CLIPTextModel has a square projection; CLIP's projects hidden_size -> projection_dim
    sd["text_projection.weight"] = torch.randn(
        TINY_CLIP_TEXT_CONFIG["projection_dim"], TINY_CLIP_TEXT_CONFIG["hidden_size"],
        generator=torch.Generator().manual_seed(seed),
    ) / TINY_CLIP_TEXT_CONFIG["hidden_size"] ** 0.5
    return sd


def tiny_clip_text(seed: int = 1, state_dict: dict[str, torch.Tensor] | None = None):
    """A ComfyUI CLIP object (SD1 tokenizer, one text encoder `clip_l`) at a tiny width, fp32."""
    boot()
    import comfy.sd
    import comfy.sd1_clip

    config = dict(TINY_CLIP_TEXT_CONFIG)
    encoder = functools.partial(comfy.sd1_clip.SDClipModel, textmodel_json_config=config, return_projected_pooled=False)
    target = types.SimpleNamespace(
        clip=functools.partial(comfy.sd1_clip.SD1ClipModel, clip_model=encoder),
        tokenizer=comfy.sd1_clip.SD1Tokenizer,
        params={},
    )
    clip = comfy.sd.CLIP(target, model_options={"dtype": torch.float32})
    inner = clip.cond_stage_model.clip_l.transformer
    sd = state_dict or tiny_clip_text_state_dict(seed)
    projection = sd["text_projection.weight"]
    inner.text_projection = torch.nn.Linear(projection.shape[1], projection.shape[0], bias=False)
    missing, unexpected = inner.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return clip


def random_vgg16_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    vgg = pack_submodule("models.common.perceptual").VGG16Features(taps=(30,))
    return random_state_dict(vgg, "", seed)


def write_random_vgg16(directory: Path, seed: int = 0) -> Path:
    """VGG16 `features.*` in torchvision's layout with deterministic random weights, fp16 (about 29 MB)."""
    path = Path(directory) / RANDOM_VGG16_NAME
    meta = {"exemplar.kind": "random_vgg16", "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}
    if is_current(path, meta):
        return path
    return atomic_save({k: v.half() for k, v in random_vgg16_state_dict(seed).items()}, path, meta)
