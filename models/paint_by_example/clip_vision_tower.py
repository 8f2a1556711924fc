"""A CLIP ViT vision tower with Hugging Face `CLIPVisionModel` parameter names, sized from its weights.

Only what Paint by Example needs: `pooled(pixels)` = `post_layernorm(last_hidden_state[:, 0])`
(the `pooler_output` of transformers' CLIPVisionModel). The layout is the one under
`vision_model.` in HF checkpoints: embeddings (class, patch conv, positions), `pre_layrnorm`
(sic, HF's spelling), pre-norm encoder layers, `post_layernorm`.

The head count is not stored in a state dict; every OpenAI CLIP ViT uses 64-d heads, so
`num_heads = hidden_size // 64` unless given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 64


@dataclass(frozen=True)
class VisionTowerConfig:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int
    layer_norm_eps: float = 1e-5
    activation: str = "quick_gelu"  # OpenAI CLIP; not recoverable from weights


def tower_config_from_state_dict(
    sd: dict[str, torch.Tensor], prefix: str = "vision_model.", num_heads: int | None = None
) -> VisionTowerConfig:
    """Infer the tower's sizes from its tensors (keys under `prefix`)."""
    try:
        patch = sd[prefix + "embeddings.patch_embedding.weight"]
        positions = sd[prefix + "embeddings.position_embedding.weight"]
        fc1 = sd[prefix + "encoder.layers.0.mlp.fc1.weight"]
    except KeyError as missing:
        raise ValueError(f"not a CLIP vision tower: no {missing.args[0]!r}") from None
    hidden = patch.shape[0]
    layers = 0
    while f"{prefix}encoder.layers.{layers}.self_attn.q_proj.weight" in sd:
        layers += 1
    grid = round((positions.shape[0] - 1) ** 0.5)
    if grid * grid + 1 != positions.shape[0]:
        raise ValueError(f"CLIP vision tower has {positions.shape[0]} positions; expected 1 + a square number")
    if num_heads is None:
        if hidden % HEAD_DIM:
            raise ValueError(f"CLIP vision width {hidden} is not a multiple of the 64-d heads of CLIP")
        num_heads = hidden // HEAD_DIM
    return VisionTowerConfig(
        hidden_size=hidden,
        intermediate_size=fc1.shape[0],
        num_layers=layers,
        num_heads=num_heads,
        patch_size=patch.shape[-1],
        image_size=grid * patch.shape[-1],
    )


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class _Embeddings(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(c.hidden_size))
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, c.patch_size, stride=c.patch_size, bias=False)
        self.position_embedding = nn.Embedding((c.image_size // c.patch_size) ** 2 + 1, c.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixels.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight[None]


class _Attention(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.q_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.k_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.v_proj = nn.Linear(c.hidden_size, c.hidden_size)
        self.out_proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (
            p(x).view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.activation = quick_gelu if c.activation == "quick_gelu" else nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class _EncoderLayer(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.self_attn = _Attention(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _Mlp(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.layers = nn.ModuleList(_EncoderLayer(c) for _ in range(c.num_layers))


class _VisionTransformer(nn.Module):
    def __init__(self, c: VisionTowerConfig):
        super().__init__()
        self.embeddings = _Embeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.encoder = _Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class CLIPVisionTower(nn.Module):
    """`vision_model.*` of an HF CLIPVisionModel; `forward` returns the pooled output [B, hidden]."""

    def __init__(self, config: VisionTowerConfig):
        super().__init__()
        self.config = config
        self.vision_model = _VisionTransformer(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: [B, 3, S, S] already resized to `config.image_size` and CLIP-normalised."""
        size = self.config.image_size
        if pixels.ndim != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[-2:]) != (size, size):
            raise ValueError(f"CLIP vision tower expects pixels [B, 3, {size}, {size}]; got {list(pixels.shape)}")
        vm = self.vision_model
        x = vm.pre_layrnorm(vm.embeddings(pixels))
        for layer in vm.encoder.layers:
            x = layer(x)
        return vm.post_layernorm(x[:, 0])
