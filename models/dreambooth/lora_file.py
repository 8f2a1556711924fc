"""DreamBooth LoRA files: target modules, kohya-style key names and the safetensors layout.

The layout is the one kohya's sd-scripts write and ComfyUI's stock LoraLoader reads (also A1111
and diffusers' kohya converter):

    <name>.lora_down.weight  [rank, in_features]
    <name>.lora_up.weight    [out_features, rank]
    <name>.alpha             scalar; the applied delta is (alpha / rank) * up @ down

UNet names are "lora_unet_" + the diffusers module path with "." replaced by "_"
(e.g. lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q); text-encoder names
are "lora_te_" + the CLIP module path from "text_model" on
(lora_te_text_model_encoder_layers_0_self_attn_q_proj); SDXL's two text encoders are "lora_te1_" (CLIP-L) and
"lora_te2_" (OpenCLIP bigG), as kohya writes them. The header carries kohya's "ss_*"
network fields and the pack's artefact header (models/common/artefact_header.py: kind, version, then the
training step, prompts and settings as "exemplar.*" fields).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..common.artefact_header import write_header
from ..common.atomic_file import save_safetensors_atomic

UNET_PREFIX = "lora_unet_"
TEXT_ENCODER_PREFIX = "lora_te_"
SDXL_TEXT_ENCODER_PREFIXES = {"clip_l": "lora_te1_", "clip_g": "lora_te2_"}
KIND = "dreambooth_lora"
FORMAT_VERSION = 1

# DreamBooth-LoRA targets: q/k/v/out of every self- and cross-attention (diffusers' examples).
_UNET_ATTENTION = r"(^|\.)attn[12]\.(to_q|to_k|to_v|to_out\.0)$"
_TEXT_ATTENTION = r"(^|\.)self_attn\.(q_proj|k_proj|v_proj|out_proj)$"


def is_unet_attention_projection(module_path: str) -> bool:
    """True for the q/k/v/out projections of a UNet attention (attn1 = self, attn2 = cross)."""
    return bool(re.search(_UNET_ATTENTION, module_path))


def is_text_attention_projection(module_path: str) -> bool:
    """True for the q/k/v/out projections of a CLIP text-encoder self-attention."""
    return bool(re.search(_TEXT_ATTENTION, module_path))


def kohya_name(prefix: str, module_path: str) -> str:
    """ "lora_unet_" + "down_blocks.0.attentions.0" -> "lora_unet_down_blocks_0_attentions_0"."""
    if not module_path or module_path.endswith(".weight"):
        raise ValueError(f"expected a module path without '.weight', got {module_path!r}")
    return prefix + module_path.replace(".", "_")


def text_encoder_kohya_name(module_path: str, prefix: str = TEXT_ENCODER_PREFIX) -> str:
    """CLIP module path (any prefix before "text_model.") -> its "lora_te_..." name (SDXL: "lora_te1_"/"lora_te2_")."""
    at = module_path.find("text_model.")
    if at < 0:
        raise ValueError(f"{module_path!r} is not a CLIP text-model module path (no 'text_model.')")
    return kohya_name(prefix, module_path[at:])


@dataclass
class LoraPair:
    """One low-rank update: delta W = (alpha / rank) * up @ down."""

    down: torch.Tensor  # [rank, in]
    up: torch.Tensor  # [out, rank]
    alpha: float

    def __post_init__(self):
        if self.down.ndim != 2 or self.up.ndim != 2 or self.up.shape[1] != self.down.shape[0]:
            raise ValueError(
                f"LoRA pair needs up [out, r] and down [r, in]; got up {tuple(self.up.shape)}, down "
                f"{tuple(self.down.shape)}"
            )

    @property
    def rank(self) -> int:
        return self.down.shape[0]


def lora_state_dict(pairs: Mapping[str, LoraPair], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The kohya-layout tensors for `pairs` ({kohya name: pair})."""
    out: dict[str, torch.Tensor] = {}
    for name, pair in sorted(pairs.items()):
        out[f"{name}.lora_down.weight"] = pair.down.detach().to("cpu", dtype).contiguous()
        out[f"{name}.lora_up.weight"] = pair.up.detach().to("cpu", dtype).contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(pair.alpha), dtype=dtype)
    return out


def read_lora_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, LoraPair]:
    """Inverse of `lora_state_dict`; a name with a missing half is an error, alpha defaults to rank."""
    names = {k.rsplit(".lora_", 1)[0] for k in state_dict if ".lora_down.weight" in k or ".lora_up.weight" in k}
    pairs = {}
    for name in sorted(names):
        down, up = state_dict.get(f"{name}.lora_down.weight"), state_dict.get(f"{name}.lora_up.weight")
        if down is None or up is None:
            raise ValueError(f"LoRA entry {name!r} lacks its {'lora_down' if down is None else 'lora_up'}.weight")
        alpha = state_dict.get(f"{name}.alpha")
        pairs[name] = LoraPair(down.float(), up.float(), float(alpha) if alpha is not None else float(down.shape[0]))
    return pairs


def lora_metadata(rank: int, alpha: float, step: int, extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """Header fields: kohya's network description plus the pack's own (all values are strings)."""
    kohya = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(alpha)}
    return {**kohya, **write_header(KIND, FORMAT_VERSION, {"step": step, **(extra or {})})}


def save_lora_file(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> Path:
    """Write a safetensors file via a temporary name in the same folder (readers never see half a file)."""
    return save_safetensors_atomic(path, {k: v.contiguous() for k, v in state_dict.items()}, dict(metadata))


def load_lora_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header of a LoRA file."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
