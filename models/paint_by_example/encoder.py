"""Paint by Example's exemplar encoder: CLIP ViT pooled output -> mapper -> LayerNorm -> projection.

    pooled = post_layernorm(CLS)                         [B, W]   (W = 1024 for ViT-L/14)
    x = pooled[:, None]; for each of the mapper blocks:  [B, 1, W]
        x = x + c_proj(attention(c_qkv(ln_1(x))))        (one head; one token: attention = v)
        x = x + c_proj(GELU(c_fc(ln_2(x))))              (exact GELU, W -> 4W -> W)
    out = proj_out(final_ln(x))                          [B, 1, C] (C = 768, the UNet context)

and the learned unconditional context `learnable_vector` [1, 1, C], used in place of the
reference for classifier-free guidance. Parameter names follow the official checkpoint minus its
`cond_stage_model.` prefix (`transformer.vision_model.*`, `mapper.resblocks.N.*`, `final_ln.*`),
plus `proj_out.*` and `learnable_vector` (top level in the official file). All sizes are read
from the weights, so a small tower for tests loads through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .clip_vision_tower import CLIPVisionTower, VisionTowerConfig, tower_config_from_state_dict

MAPPER_PREFIX = "mapper.resblocks."


@dataclass(frozen=True)
class ExemplarEncoderConfig:
    tower: VisionTowerConfig
    mapper_blocks: int
    mapper_width: int
    mapper_heads: int
    context_dim: int


class MapperAttention(nn.Module):
    """Self-attention with a fused q|k|v projection (rows split q, k, v per head as in the official code)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        qkv = self.c_qkv(x).view(b, n, self.heads, 3 * w // self.heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.split(w // self.heads, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(1, 2).reshape(b, n, w))


class MapperMlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class MapperBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MapperAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MapperMlp(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Mapper(nn.Module):
    def __init__(self, blocks: int, width: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(MapperBlock(width, heads) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class ExemplarEncoder(nn.Module):
    """The PbE exemplar encoder; `forward(pixels)` -> [B, 1, context_dim]."""

    def __init__(self, config: ExemplarEncoderConfig):
        super().__init__()
        self.config = config
        self.transformer = CLIPVisionTower(config.tower)
        self.mapper = Mapper(config.mapper_blocks, config.mapper_width, config.mapper_heads)
        self.final_ln = nn.LayerNorm(config.mapper_width)
        self.proj_out = nn.Linear(config.mapper_width, config.context_dim)
        self.learnable_vector = nn.Parameter(torch.zeros(1, 1, config.context_dim))

    @property
    def image_size(self) -> int:
        return self.config.tower.image_size

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.transformer(pixels)
        return self.proj_out(self.final_ln(self.mapper(pooled[:, None])))

    def unconditional(self, batch: int) -> torch.Tensor:
        """The learned unconditional context, [batch, 1, context_dim]."""
        return self.learnable_vector.expand(batch, -1, -1)


ENCODER_REQUIRED_KEYS = (
    "final_ln.weight",
    "proj_out.weight",
    "learnable_vector",
    MAPPER_PREFIX + "0.attn.c_qkv.weight",
)


def encoder_config_from_state_dict(sd: dict[str, torch.Tensor], mapper_heads: int = 1) -> ExemplarEncoderConfig:
    """Sizes of an encoder state dict in this module's layout (see the module docstring)."""
    missing = [k for k in ENCODER_REQUIRED_KEYS if k not in sd]
    if missing:
        raise ValueError(f"not a Paint-by-Example exemplar encoder: missing {missing}")
    tower = tower_config_from_state_dict(sd, "transformer.vision_model.")
    blocks = 0
    while f"{MAPPER_PREFIX}{blocks}.attn.c_qkv.weight" in sd:
        blocks += 1
    width = sd[MAPPER_PREFIX + "0.attn.c_qkv.weight"].shape[1]
    proj = sd["proj_out.weight"]
    if width != tower.hidden_size or proj.shape[1] != width:
        raise ValueError(
            f"exemplar encoder sizes disagree: CLIP width {tower.hidden_size}, mapper width {width}, "
            f"proj_out input {proj.shape[1]}"
        )
    if tuple(sd["learnable_vector"].shape) != (1, 1, proj.shape[0]):
        raise ValueError(
            f"learnable_vector has shape {list(sd['learnable_vector'].shape)}; expected [1, 1, {proj.shape[0]}]"
        )
    return ExemplarEncoderConfig(tower, blocks, width, mapper_heads, proj.shape[0])


def encoder_from_state_dict(sd: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> ExemplarEncoder:
    """Build an ExemplarEncoder sized by `sd` and load it strictly (every tensor must be used)."""
    config = encoder_config_from_state_dict(sd)
    with torch.device("meta"):
        encoder = ExemplarEncoder(config)
    sd = {k: v for k, v in sd.items() if not k.endswith("embeddings.position_ids")}
    encoder.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True, assign=True)
    return encoder.train(False).requires_grad_(False)
