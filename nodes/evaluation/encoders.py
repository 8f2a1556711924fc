"""Embeddings for the metrics from encoders the user already loaded: CLIP_VISION, a CLIP text encoder, VGG16.

Each goes through ComfyUI's model management (loaded to the compute device before use, offloaded after, like
any encoder). SD1.x checkpoints drop CLIP's text projection, so their CLIP cannot place text in the image
embedding space; the CLIP-T encoder is then refused with a message saying what to load instead.
"""

from __future__ import annotations

import os

import torch

import comfy.clip_model
import comfy.model_management
import comfy.model_patcher

from ...models.common.perceptual import VGG16Features, read_weight_file, vgg16_features
from ...models.evaluation.style import STYLE_LAYERS
from ..common.model_folders import VGG_FOLDER, model_file
from ..diffuse_to_choose.vision_tokens import encode_tokens, is_dinov2


def _embed(clip_vision, image: torch.Tensor, crop: bool, resolution: int) -> torch.Tensor:
    if resolution in (0, clip_vision.image_size):
        return clip_vision.encode_image(image, crop=crop)["image_embeds"]
    if not is_dinov2(clip_vision):
        raise ValueError(f"resolution: {resolution} px needs a DINOv2 CLIP_VISION; this encoder runs only at its own "
                         f"{clip_vision.image_size} px (use 0)")
    return encode_tokens(clip_vision, image, resolution, crop)[:, 0]  # DINOv2's pooled output: the normalised CLS


def image_embeds(clip_vision, images: torch.Tensor | list[torch.Tensor], crop: bool = True,
                 resolution: int = 0) -> torch.Tensor:
    """The pooled embedding [B, D] of each image: projected CLS for CLIP, the normalised CLS for DINOv2
    (at `resolution` px, 0 = the model's own size). A list (crops of different sizes) is encoded one at a time."""
    if isinstance(images, torch.Tensor):
        images = [images]
    with torch.no_grad():
        parts = [_embed(clip_vision, image, crop, resolution) for image in images]
    return torch.cat([p.float() for p in parts]).to(comfy.model_management.intermediate_device())


def has_projection(clip_vision) -> bool:
    model = getattr(clip_vision, "model", None)
    return isinstance(model, comfy.clip_model.CLIPVisionModelProjection) and isinstance(
        getattr(model, "visual_projection", None), torch.nn.Linear
    )


def _text_projection(clip) -> torch.nn.Linear:
    outer = clip.cond_stage_model
    name = getattr(outer, "clip", None)
    inner = getattr(outer, name, None) if isinstance(name, str) else None
    projection = getattr(getattr(inner, "transformer", None), "text_projection", None)
    if not isinstance(projection, torch.nn.Linear):
        raise ValueError(
            "clip: CLIP-T needs a single CLIP text encoder with a text projection (SD1.x/2.x style, or Load CLIP "
            f"of a CLIP model file); this CLIP holds {type(outer).__name__}"
        )
    return projection


def projection_is_loaded(weight: torch.Tensor) -> bool:
    """A trained projection is finite, of moderate size and dense; a dropped one is left as uninitialised memory."""
    weight = weight.float()
    return bool(torch.isfinite(weight).all() and weight.abs().max() < 100 and (weight == 0).float().mean() < 0.5)


def text_embeds(clip, prompts: list[str]) -> torch.Tensor:
    """Projected pooled text embeddings [P, D'] of a CLIP text encoder (the EOS token after the final norm)."""
    projection = _text_projection(clip)
    pooled = []
    with torch.no_grad():
        for prompt in prompts:
            _cond, p = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled="unprojected")
            pooled.append(p.float())
    pooled = torch.cat(pooled)
    weight = comfy.model_management.cast_to_device(projection.weight, pooled.device, torch.float32)
    if not projection_is_loaded(weight):
        raise ValueError(
            "clip: its text projection was not loaded (SD1.x checkpoints drop it), so its text cannot be compared "
            "with image embeddings; load the text encoder of the same CLIP model as the CLIP_VISION with Load CLIP "
            "(type stable_diffusion)"
        )
    return (pooled @ weight.T).detach().to(comfy.model_management.intermediate_device())


class VGGStyleEncoder:
    """VGG16 features in a ModelPatcher, so ComfyUI loads and offloads it like any other model."""

    def __init__(self, state_dict: dict[str, torch.Tensor], name: str = "vgg16"):
        self.name = name
        self.model = vgg16_features(state_dict, source=name, taps=STYLE_LAYERS)
        self.patcher = comfy.model_patcher.ModelPatcher(
            self.model,
            load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device(),
        )

    def loaded(self) -> VGG16Features:
        comfy.model_management.load_model_gpu(self.patcher)
        return self.model


_VGG_CACHE: dict[tuple[str, float], VGGStyleEncoder] = {}


def load_vgg(vgg_name: str) -> VGGStyleEncoder:
    """The VGG16 of a file in models/vgg/ (torchvision's layout, e.g. vgg16-397923af.pth), loaded once per file."""
    path = model_file(VGG_FOLDER, vgg_name, "vgg_name")
    key = (path, os.path.getmtime(path))
    if key not in _VGG_CACHE:
        try:
            encoder = VGGStyleEncoder(read_weight_file(path), vgg_name)
        except ValueError as error:
            raise ValueError(
                f"vgg_name: {error}; expected torchvision's VGG16 file (vgg16-397923af.pth, or its features.* "
                "tensors as .safetensors) in models/vgg/"
            ) from None
        _VGG_CACHE.clear()
        _VGG_CACHE[key] = encoder
    return _VGG_CACHE[key]
