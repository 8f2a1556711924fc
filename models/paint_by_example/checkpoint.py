"""Paint by Example checkpoint layouts: read a file safely, split it into UNet / VAE / encoder parts.

Official single file (a Lightning `state_dict`, as `.ckpt` or converted to `.safetensors`):

    model.diffusion_model.*                  SD1 UNet, input_blocks.0.0.weight [320, 9, 3, 3]
    first_stage_model.*                      VAE (AutoencoderKL)
    cond_stage_model.transformer.vision_model.*   HF CLIP vision tower
    cond_stage_model.mapper.resblocks.N.{ln_1, attn.c_qkv, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}.*
    cond_stage_model.final_ln.*
    proj_out.{weight, bias}                  Linear W -> 768
    learnable_vector                         [1, 1, 768]

Diffusers folder: `image_encoder/` (PaintByExampleImageEncoder: `model.vision_model.*`,
`mapper.blocks.N.{norm1, attn1.to_q|to_k|to_v|to_out.0, norm3, ff.net.0.proj, ff.net.2}`,
`final_layer_norm`, `proj_out`, `uncond_vector`), `unet/`, `vae/`. Encoder keys of both forms are
mapped onto the layout of models/paint_by_example/encoder.py; q, k, v rows are fused as `c_qkv` = [q; k; v].

A checkpoint is recognised by its tensors, not by a header: most Paint-by-Example files in the wild
carry none. The converter's output gets the pack's artefact header (kind `paint_by_example_checkpoint`,
version 1, `exemplar.converted_from`) as a record of where it came from.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..common.artefact_header import where_to_get, write_header
from ..common.atomic_file import save_safetensors_atomic
from ..common.file_probe import unpickling_detail

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
COND_PREFIX = "cond_stage_model."
TOP_LEVEL_ENCODER_KEYS = ("proj_out.weight", "proj_out.bias", "learnable_vector")
PBE_UNET_IN_CHANNELS = 9
UNET_INPUT_KEY = "input_blocks.0.0.weight"
CONVERTED_KIND = "paint_by_example_checkpoint"
CONVERTED_VERSION = 1

# Official mapper sub-module name -> diffusers BasicTransformerBlock name(s).
_MAPPER_NAMES = {
    "ln_1": ("norm1",),
    "attn.c_qkv": ("attn1.to_q", "attn1.to_k", "attn1.to_v"),
    "attn.c_proj": ("attn1.to_out.0",),
    "ln_2": ("norm3",),
    "mlp.c_fc": ("ff.net.0.proj",),
    "mlp.c_proj": ("ff.net.2",),
}


class PbECheckpointError(ValueError):
    """A file that is not (or not entirely) a Paint-by-Example checkpoint."""


@dataclass
class PbEParts:
    unet: dict[str, torch.Tensor]  # ldm UNet keys (no prefix)
    vae: dict[str, torch.Tensor]  # VAE keys (no prefix)
    encoder: dict[str, torch.Tensor]  # models/paint_by_example/encoder.py layout
    ignored: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file or of a pickle checkpoint loaded with `weights_only=True`.

    A Lightning checkpoint's `state_dict` entry is returned when present. Anything that needs
    arbitrary unpickling is refused, and a truncated/corrupt file gets an error naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise PbECheckpointError(f"no such file: {path}")
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise PbECheckpointError(
                f"{path.name}: not a readable safetensors file (truncated or corrupt?): {error}"
            ) from error
    try:
        try:  # memory-map zip-format files (a multi-GB checkpoint is then not read into RAM twice)
            loaded = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as error:
        raise PbECheckpointError(
            f"{path.name}: this checkpoint needs arbitrary unpickling (it stores Python objects, not only "
            f"tensors), which is refused for safety. Convert it with a trusted tool to .safetensors, or "
            f"save only its state_dict. Found: {unpickling_detail(error)}."
        ) from None
    except Exception as error:
        raise PbECheckpointError(
            f"{path.name}: not a readable PyTorch checkpoint (truncated or corrupt?): {error}"
        ) from error
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise PbECheckpointError(
            f"{path.name}: expected a dict of tensors (or a Lightning checkpoint with 'state_dict')"
        )
    return loaded


def _describe(sd: dict[str, torch.Tensor]) -> str:
    """What a state dict holds, in words (no tensor names)."""
    hints = []
    if any(k.startswith(COND_PREFIX + "transformer.text_model.") for k in sd) or any(
        k.startswith(COND_PREFIX + "transformer.embeddings.token_embedding") for k in sd
    ):
        hints.append("a CLIP text encoder (a text-to-image Stable Diffusion checkpoint)")
    if any(k.startswith(COND_PREFIX + "transformer.vision_model.") for k in sd):
        hints.append("a CLIP vision tower")
    if any(k.startswith(COND_PREFIX + "mapper.") for k in sd):
        hints.append("the Paint-by-Example mapper")
    unet_in = sd.get(UNET_PREFIX + UNET_INPUT_KEY)
    if unet_in is not None:
        hints.append(f"a UNet with {unet_in.shape[1]} input channels")
    if any(k.startswith(VAE_PREFIX) for k in sd):
        hints.append("a VAE")
    return "found " + ("; ".join(hints) if hints else f"none of its parts ({len(sd)} tensors of another model)")


_ENCODER_PARTS = {
    "learnable_vector": "the learned unconditional vector",
    "proj_out.weight": "the output projection",
    "final_ln.weight": "the final layer norm",
    "mapper.resblocks.0.attn.c_qkv.weight": "the mapper",
}


def split_official(sd: dict[str, torch.Tensor], source: str = "the file") -> PbEParts:
    """Split an official-layout state dict; raise PbECheckpointError saying what was found if it is not PbE."""
    unet, vae, encoder, ignored = {}, {}, {}, []
    for key, value in sd.items():
        if key.startswith(UNET_PREFIX):
            unet[key[len(UNET_PREFIX) :]] = value
        elif key.startswith(VAE_PREFIX):
            vae[key[len(VAE_PREFIX) :]] = value
        elif (
            key.startswith(COND_PREFIX + "transformer.vision_model.")
            or key.startswith(COND_PREFIX + "mapper.")
            or key.startswith(COND_PREFIX + "final_ln.")
        ):
            encoder[key[len(COND_PREFIX) :]] = value
        elif key in TOP_LEVEL_ENCODER_KEYS:
            encoder[key] = value
        else:
            ignored.append(key)  # e.g. model_ema.*, betas, alphas_cumprod, position_ids
    problems = []
    if UNET_INPUT_KEY not in unet:
        problems.append("no UNet")
    elif unet[UNET_INPUT_KEY].shape[1] != PBE_UNET_IN_CHANNELS:
        problems.append(f"the UNet takes {unet[UNET_INPUT_KEY].shape[1]} input channels, not 9")
    if not vae:
        problems.append("no VAE")
    missing = [part for key, part in _ENCODER_PARTS.items() if key not in encoder]
    if not encoder:
        problems.append("no exemplar image encoder")
    elif not any(k.startswith("transformer.vision_model.") for k in encoder):
        missing.insert(0, "its CLIP ViT-L/14 vision tower")
    if encoder and missing:
        problems.append("an exemplar encoder without " + ", ".join(missing))
    if problems:
        raise PbECheckpointError(
            f"{source} is not a Paint-by-Example checkpoint ({'; '.join(problems)}): {_describe(sd)}. Expected the "
            "Paint-by-Example model: a 9-channel inpainting UNet, its VAE and the exemplar image encoder (CLIP "
            f"ViT-L/14 + mapper + projection). {where_to_get(CONVERTED_KIND)}"
        )
    return PbEParts(unet, vae, encoder, ignored)


def encoder_from_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers PaintByExampleImageEncoder state dict -> models/paint_by_example/encoder.py layout."""
    if "uncond_vector" not in sd or not any(k.startswith("model.") for k in sd):
        raise PbECheckpointError(
            "image_encoder/ is not a PaintByExampleImageEncoder: expected model.vision_model.*, mapper.blocks.*, "
            "final_layer_norm.*, proj_out.*, uncond_vector; "
            f"found top-level names {sorted({k.split('.')[0] for k in sd})}"
        )
    out: dict[str, torch.Tensor] = {}
    by_block: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key.startswith("model."):
            rest = key[len("model.") :]
            if not rest.startswith("vision_model."):  # transformers >= 5 saves CLIPVisionModel without this level
                rest = "vision_model." + rest
            out["transformer." + rest] = value
        elif key.startswith("mapper.blocks."):
            index, rest = key[len("mapper.blocks.") :].split(".", 1)
            by_block.setdefault(int(index), {})[rest] = value
        elif key.startswith("final_layer_norm."):
            out["final_ln." + key[len("final_layer_norm.") :]] = value
        elif key.startswith("proj_out."):
            out[key] = value
        elif key == "uncond_vector":
            out["learnable_vector"] = value
    for index, block in sorted(by_block.items()):
        for official, names in _MAPPER_NAMES.items():
            for leaf in ("weight", "bias"):
                try:
                    parts = [block[f"{name}.{leaf}"] for name in names]
                except KeyError as missing:
                    raise PbECheckpointError(f"image_encoder mapper block {index} lacks {missing.args[0]}") from None
                out[f"mapper.resblocks.{index}.{official}.{leaf}"] = torch.cat(parts, dim=0)
    return out


def encoder_to_diffusers(encoder_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our encoder layout (encoder.py) -> diffusers PaintByExampleImageEncoder names (inverse of the above)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in encoder_sd.items():
        if key.startswith("transformer."):
            out["model." + key[len("transformer.") :]] = value
        elif key.startswith("mapper.resblocks."):
            index, rest = key[len("mapper.resblocks.") :].split(".", 1)
            official, leaf = rest.rsplit(".", 1)
            names = _MAPPER_NAMES[official]
            for name, part in zip(names, value.chunk(len(names), dim=0)):
                out[f"mapper.blocks.{index}.{name}.{leaf}"] = part.clone()
        elif key.startswith("final_ln."):
            out["final_layer_norm." + key[len("final_ln.") :]] = value
        elif key == "learnable_vector":
            out["uncond_vector"] = value
        else:
            out[key] = value
    return out


def official_state_dict(unet: dict, vae: dict, encoder: dict) -> dict[str, torch.Tensor]:
    """Assemble the official single-file layout from its three parts (inverse of split_official)."""
    sd = {UNET_PREFIX + k: v for k, v in unet.items()}
    sd.update({VAE_PREFIX + k: v for k, v in vae.items()})
    for key, value in encoder.items():
        sd[key if key in TOP_LEVEL_ENCODER_KEYS else COND_PREFIX + key] = value
    return sd


def convert_to_safetensors(source: str | Path, target: str | Path, overwrite: bool = False) -> Path:
    """Rewrite an official PbE checkpoint (.ckpt, read with weights_only=True) as .safetensors, atomically.

    The file is checked to be Paint by Example first; every tensor of its state dict is kept
    (EMA weights included), with dtypes unchanged.
    """
    source, target = Path(source), Path(target)
    if target.suffix != ".safetensors":
        raise ValueError(f"target must end in .safetensors; got {target.name}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    sd = read_state_dict(source)
    split_official(sd, source.name)
    # safetensors refuses tensors sharing storage: give each its own contiguous copy
    tensors = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    return save_safetensors_atomic(
        target, tensors, write_header(CONVERTED_KIND, CONVERTED_VERSION, {"converted_from": source.name})
    )
