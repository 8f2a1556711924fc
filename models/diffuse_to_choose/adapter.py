"""Diffuse to Choose adapter: hint adapter CNN, hint encoder (UNet-encoder copy), FiLM modules, image projection.

Data flow at one sampling step (paper: arXiv 2401.13795, section 3):

    hint image [B, 3, H, W] --HintAdapter--> [B, 4, H/8, W/8]
    UNet input x with the adapted hint added to its masked-source latent channels
        --HintEncoder (copy of the UNet's time embedding, input blocks and middle block)-->
        one feature map per skip connection + the middle block output
    FiLM k: main skip feature h_k -> (1 + s * gamma_k) * h_k + s * beta_k, (gamma_k, beta_k) = conv1x1(hint feature k)

Every FiLM conv and the adapter's last conv start at zero, so an untrained adapter changes nothing
(exactly). The image projection (one linear layer, DINOv2 width -> context width) is trained from
scratch and replaces the text context, so it has a plain random initialisation.

The hint encoder is generic: it takes the block modules of whatever UNet it copies. A block is
called as `block(h, emb, context, transformer_options)` (the convention of ComfyUI's
TimestepEmbedSequential, and of the toy blocks in the pure tests).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..common.artefact_header import read_header, write_header
from ..common.atomic_file import save_safetensors_atomic

KIND = "dtc_adapter"
FORMAT_VERSION = 1
HINT_ADAPTER_WIDTHS = (16, 32, 64)
IMAGE_ENCODER_BY_WIDTH = {1536: "DINOv2 giant", 1024: "DINOv2 large"}


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal timestep embedding [N, dim] (cos half first), the form SD UNets use."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def unet_skip_channels(model_channels: int, channel_mult, num_res_blocks) -> list[int]:
    """Channels of every input-block output (the skip features) followed by the middle block's.

    SD1.5 (320, [1, 2, 4, 4], 2): 12 skips + middle = 13 entries.
    """
    levels = len(channel_mult)
    if isinstance(num_res_blocks, int):
        num_res_blocks = [num_res_blocks] * levels
    if len(num_res_blocks) != levels:
        raise ValueError(f"num_res_blocks has {len(num_res_blocks)} entries for {levels} levels")
    channels = [model_channels]
    for level, mult in enumerate(channel_mult):
        channels += [mult * model_channels] * num_res_blocks[level]
        if level != levels - 1:
            channels.append(mult * model_channels)  # the downsampling block keeps the width
    channels.append(channel_mult[-1] * model_channels)
    return channels


def film_index_for_output_block(output_block: int, num_input_blocks: int) -> int:
    """Index of the skip feature (= FiLM module) consumed by decoder block `output_block`.

    Decoders pop the skip stack, so output block i takes the skip of input block (n - 1 - i); the
    middle block's FiLM has index n (it modulates the decoder's first input).
    """
    index = num_input_blocks - 1 - output_block
    if not 0 <= index < num_input_blocks:
        raise ValueError(
            f"output block {output_block} has no skip feature in a UNet of {num_input_blocks} input blocks"
        )
    return index


def _init_uniform(layer: nn.Module, generator: torch.Generator) -> None:
    """torch's default conv/linear initialisation (bound 1/sqrt(fan_in)), drawn from `generator`."""
    fan_in = layer.weight[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
        if layer.bias is not None:
            layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 * bound - bound)


def _init_zero(layer: nn.Module) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()


class HintAdapter(nn.Module):
    """Shallow 4-layer CNN: hint image [B, 3, H, W] in [0, 1] -> [B, latent_channels, H/8, W/8].

    Three stride-2 convolutions reach the latent resolution; the last layer starts at zero, so an
    untrained adapter adds nothing to the masked-source latent.
    """

    def __init__(self, latent_channels: int = 4, widths=HINT_ADAPTER_WIDTHS, operations=nn, dtype=None, device=None):
        super().__init__()
        channels = (3, *widths, latent_channels)
        strides = (1, 2, 2, 2)
        self.layers = nn.ModuleList(
            operations.Conv2d(channels[i], channels[i + 1], 3, stride=strides[i], padding=1, dtype=dtype, device=device)
            for i in range(4)
        )

    def reset_parameters(self, generator: torch.Generator) -> None:
        for layer in self.layers[:-1]:
            _init_uniform(layer, generator)
        _init_zero(self.layers[-1])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = image
        for index, layer in enumerate(self.layers):
            h = layer(h)
            if index < len(self.layers) - 1:
                h = nn.functional.silu(h)
        return h


class FiLM(nn.Module):
    """Per-location feature-wise affine modulation: h -> (1 + s * gamma) * h + s * beta.

    (gamma, beta) = conv1x1(hint feature), zero-initialised, so the untrained module is the identity.
    """

    def __init__(self, hint_channels: int, channels: int, operations=nn, dtype=None, device=None):
        super().__init__()
        self.channels = channels
        self.proj = operations.Conv2d(hint_channels, 2 * channels, 1, dtype=dtype, device=device)

    def reset_parameters(self) -> None:
        _init_zero(self.proj)

    def forward(self, h: torch.Tensor, hint: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        if hint.shape[-2:] != h.shape[-2:]:
            raise ValueError(f"hint feature {tuple(hint.shape)} does not match the skip feature {tuple(h.shape)}")
        weight = self.proj.weight
        gamma, beta = self.proj(hint.to(weight.dtype)).to(h.dtype).chunk(2, dim=1)
        return h * (1 + strength * gamma) + strength * beta


class HintEncoder(nn.Module):
    """Copy of a UNet's encoder (time embedding, input blocks, middle block; label embedding for SDXL)."""

    def __init__(
        self,
        time_embed: nn.Module,
        input_blocks: nn.ModuleList,
        middle_block: nn.Module,
        model_channels: int,
        label_emb: nn.Module | None = None,
    ):
        super().__init__()
        self.model_channels = model_channels
        self.time_embed = time_embed
        self.input_blocks = input_blocks
        self.middle_block = middle_block
        self.label_emb = label_emb

    @property
    def num_input_blocks(self) -> int:
        return len(self.input_blocks)

    def forward(
        self, x, timesteps, context=None, y=None, transformer_options: dict | None = None
    ) -> list[torch.Tensor]:
        """Features after every input block, then the middle block output (len = input blocks + 1)."""
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype))
        if self.label_emb is not None:
            if y is None:
                raise ValueError(
                    "this hint encoder copies a class-conditional UNet (SDXL): it needs the model's `y` input"
                )
            emb = emb + self.label_emb(y)
        options = {} if transformer_options is None else transformer_options
        features = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context, options)
            features.append(h)
        features.append(self.middle_block(h, emb, context, options))
        return features


def repeat_to_batch(tensor: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    """Tile a [b, ...] tensor to `batch` rows (batch = chunks * b: ComfyUI stacks cond/uncond chunks)."""
    if tensor.shape[0] == batch:
        return tensor
    if batch % tensor.shape[0]:
        raise ValueError(f"{name} has batch {tensor.shape[0]}, which does not divide the model batch {batch}")
    return tensor.repeat(batch // tensor.shape[0], *([1] * (tensor.ndim - 1)))


def add_hint_to_input(x: torch.Tensor, hint_latent: torch.Tensor, offset: int) -> torch.Tensor:
    """x with `hint_latent` ([b, C, h, w], tiled to x's batch) added to channels offset..offset+C."""
    channels = hint_latent.shape[1]
    if offset < 0 or offset + channels > x.shape[1]:
        raise ValueError(
            f"hint latent channels {offset}..{offset + channels} lie outside the model input's {x.shape[1]} channels"
        )
    if hint_latent.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"hint latent {tuple(hint_latent.shape[-2:])} does not match the latent {tuple(x.shape[-2:])}")
    hint_latent = repeat_to_batch(hint_latent.to(device=x.device, dtype=x.dtype), x.shape[0], "hint")
    out = x.clone()
    out[:, offset : offset + channels] += hint_latent
    return out


class DtCAdapter(nn.Module):
    """All trainable Diffuse to Choose parts beside the main UNet.

    config: what the file metadata records (base architecture, the UNet config the hint encoder
    copies, widths); `skip_channels` gives one FiLM per skip feature plus one for the middle block.
    """

    def __init__(
        self,
        hint_encoder: HintEncoder,
        skip_channels: list[int],
        latent_channels: int = 4,
        image_dim: int = 1536,
        context_dim: int = 768,
        config: dict | None = None,
        operations=nn,
        dtype=None,
        device=None,
    ):
        super().__init__()
        if len(skip_channels) != hint_encoder.num_input_blocks + 1:
            raise ValueError(
                f"{len(skip_channels)} skip widths given for a hint encoder of {hint_encoder.num_input_blocks} "
                f"input blocks + middle"
            )
        self.skip_channels = list(skip_channels)
        self.latent_channels = latent_channels
        self.image_dim = image_dim
        self.context_dim = context_dim
        self.config = dict(config or {})
        self.hint_adapter = HintAdapter(latent_channels, operations=operations, dtype=dtype, device=device)
        self.hint_encoder = hint_encoder
        self.film = nn.ModuleList(FiLM(c, c, operations=operations, dtype=dtype, device=device) for c in skip_channels)
        self.image_projection = operations.Linear(image_dim, context_dim, dtype=dtype, device=device)

    def reset_parameters(self, seed: int = 0) -> None:
        """Fresh adapter state: zero FiLM and last adapter conv, seeded random elsewhere (encoder untouched)."""
        generator = torch.Generator().manual_seed(seed)
        self.hint_adapter.reset_parameters(generator)
        for film in self.film:
            film.reset_parameters()
        _init_uniform(self.image_projection, generator)

    @property
    def num_input_blocks(self) -> int:
        return self.hint_encoder.num_input_blocks

    @property
    def dtype(self) -> torch.dtype:
        return self.image_projection.weight.dtype

    def adapt_hint(self, hint_image: torch.Tensor) -> torch.Tensor:
        """[B, H, W, 3] (ComfyUI IMAGE) or [B, 3, H, W] hint -> [B, latent_channels, H/8, W/8]."""
        if hint_image.ndim != 4:
            raise ValueError(f"hint image must be 4-D, got shape {tuple(hint_image.shape)}")
        if hint_image.shape[1] != 3 and hint_image.shape[-1] in (3, 4):
            hint_image = hint_image[..., :3].movedim(-1, 1)
        return self.hint_adapter(hint_image.to(self.dtype))

    def hint_features(
        self, x, hint_latent, offset, timesteps, context=None, y=None, transformer_options=None
    ) -> list[torch.Tensor]:
        """Hint-encoder features for the model input x (the whole cond/uncond batch at once).

        Runs in the adapter's dtype on x's device (the caller keeps the adapter on that device).
        """
        x = add_hint_to_input(x.to(self.dtype), hint_latent, offset)
        context = None if context is None else context.to(self.dtype)
        y = None if y is None else y.to(self.dtype)
        return self.hint_encoder(x, timesteps, context, y, transformer_options)

    def modulate(self, index: int, h: torch.Tensor, feature: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """FiLM `index` (skip index, or num_input_blocks for the middle block) applied to h."""
        return self.film[index](h, feature.to(h.device), strength)

    def project_image(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image-encoder tokens [B, N, image_dim] -> cross-attention context [B, N, context_dim]."""
        if tokens.shape[-1] != self.image_dim:
            raise ValueError(
                f"image tokens have width {tokens.shape[-1]}, this adapter projects {self.image_dim}-wide tokens "
                f"({IMAGE_ENCODER_BY_WIDTH.get(self.image_dim, 'its image encoder')})"
            )
        return self.image_projection(tokens.to(self.dtype))

    def metadata(self, extra: dict | None = None) -> dict[str, str]:
        """The file header; `extra` adds fields of its own (a training run's step and settings)."""
        fields = {
            "base_arch": self.config.get("base_arch", "unknown"),
            "unet_config": json.dumps(self.config.get("unet_config", {}), sort_keys=True),
            "skip_channels": json.dumps(self.skip_channels),
            "latent_channels": self.latent_channels,
            "image_dim": self.image_dim,
            "context_dim": self.context_dim,
        }
        fields.update({k: v for k, v in (extra or {}).items() if k not in fields})
        return write_header(KIND, FORMAT_VERSION, fields)


def parse_metadata(metadata: dict[str, str] | None, source: str = "file") -> dict:
    """Check a file's metadata header and return the adapter description (clear error otherwise)."""
    header = read_header(metadata, KIND, FORMAT_VERSION, source, label="Diffuse to Choose adapter")
    raw = {
        name: header.value(name)
        for name in ("base_arch", "unet_config", "skip_channels", "latent_channels", "image_dim", "context_dim")
    }
    try:
        return {
            "base_arch": raw["base_arch"],
            "unet_config": json.loads(raw["unet_config"]),
            "skip_channels": json.loads(raw["skip_channels"]),
            "latent_channels": int(raw["latent_channels"]),
            "image_dim": int(raw["image_dim"]),
            "context_dim": int(raw["context_dim"]),
        }
    except ValueError as error:
        raise ValueError(f"{source} has an unreadable DtC adapter header: {error}") from error


def save_adapter(
    adapter: DtCAdapter, path: str | os.PathLike, dtype: torch.dtype | None = None, extra: dict | None = None
) -> Path:
    """Write the adapter as safetensors (state-dict keys = the documented layout) atomically."""
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in adapter.state_dict().items()
    }
    return save_safetensors_atomic(path, state, adapter.metadata(extra))
