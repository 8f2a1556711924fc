"""Paint by Example as native ComfyUI objects: a MODEL (SD1 UNet, 9-channel input built by
ComfyUI's concat mechanism), a VAE, and the exemplar encoder under ComfyUI's model management.

PbE's UNet input is `cat([x_t, z_masked, keep], 1)` with keep = 1 outside the hole. ComfyUI's
stock inpaint models use concat keys ("mask", "masked_image") (wrong order, 1 = hole); giving
the loaded BaseModel the keys ("masked_image", "mask_inverted") reproduces PbE's input from the
`concat_latent_image` / `concat_mask` values that ExemplarPbEInpaintConditioning sets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.utils
import torch

from ...models.common.artefact_header import KIND_KEY
from ...models.common.file_probe import pickle_names_contain, safetensors_header
from ...models.common.tensor_files import shape_error_from_load
from ...models.paint_by_example import checkpoint
from ...models.paint_by_example.checkpoint import PbECheckpointError
from ...models.paint_by_example.encoder import ExemplarEncoder, encoder_from_state_dict

PBE_CONCAT_KEYS = ("masked_image", "mask_inverted")


class PbEExemplarEncoder:
    """The EXEMPLAR_ENCODER of a PbE checkpoint: the pure ExemplarEncoder behind a ModelPatcher,
    so ComfyUI loads it to the compute device and offloads it like any other model."""

    def __init__(self, encoder: ExemplarEncoder, load_device, offload_device):
        self.model = encoder
        self.load_device = load_device
        self.dtype = next(encoder.parameters()).dtype
        self.patcher = comfy.model_patcher.ModelPatcher(encoder, load_device=load_device, offload_device=offload_device)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def context_dim(self) -> int:
        return self.model.config.context_dim

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP-normalised pixels [B, 3, S, S] -> context [B, 1, C] (float32, intermediate device)."""
        comfy.model_management.load_model_gpu(self.patcher)
        with torch.no_grad():
            out = self.model(pixels.to(self.load_device, self.dtype))
        return out.float().to(comfy.model_management.intermediate_device())

    def unconditional(self, batch: int) -> torch.Tensor:
        return self.model.unconditional(batch).detach().float().to(comfy.model_management.intermediate_device()).clone()


def make_encoder(encoder_sd: dict[str, torch.Tensor]) -> PbEExemplarEncoder:
    load_device = comfy.model_management.text_encoder_device()
    offload_device = comfy.model_management.text_encoder_offload_device()
    dtype = (
        torch.float16
        if comfy.model_management.should_use_fp16(load_device, prioritize_performance=False)
        else torch.float32
    )
    try:
        encoder = encoder_from_state_dict(encoder_sd, dtype)
    except (ValueError, RuntimeError) as error:
        raise PbECheckpointError(f"the exemplar encoder weights do not fit: {error}") from error
    return PbEExemplarEncoder(encoder.to(offload_device), load_device, offload_device)


def make_unet(unet_sd: dict[str, torch.Tensor], source: str):
    """ldm-layout UNet weights (no prefix) -> ModelPatcher of an SD1 BaseModel with PbE's concat keys."""
    in_channels = unet_sd[checkpoint.UNET_INPUT_KEY].shape[1]
    try:
        patcher = comfy.sd.load_diffusion_model_state_dict(dict(unet_sd))
    except RuntimeError as error:
        raise shape_error_from_load(error, source, "UNet") or error from None
    if patcher is None:
        raise PbECheckpointError(
            f"{source}: ComfyUI could not recognise the UNet (expected an SD1 UNet with 9 input channels)"
        )
    config = patcher.model.model_config
    if (
        not isinstance(config, comfy.supported_models.SD15)
        or config.unet_config.get("in_channels") != checkpoint.PBE_UNET_IN_CHANNELS
    ):
        raise PbECheckpointError(
            f"{source}: the UNet was detected as {type(config).__name__} with {in_channels} input channels; "
            "Paint by Example needs an SD1 UNet (context 768) with 9 input channels"
        )
    patcher.model.concat_keys = PBE_CONCAT_KEYS  # a fresh BaseModel of our own: nobody else holds it
    return patcher


def make_vae(vae_sd: dict[str, torch.Tensor], source: str):
    try:
        vae = comfy.sd.VAE(sd=dict(vae_sd))
    except RuntimeError as error:
        raise shape_error_from_load(error, source, "VAE") or error from None
    if getattr(vae, "first_stage_model", None) is None:
        raise PbECheckpointError(f"{source}: the VAE weights were not recognised by ComfyUI")
    return vae


def load_checkpoint(path: str | os.PathLike):
    """Official single-file checkpoint (.ckpt read with weights_only=True, or .safetensors) -> (MODEL, VAE, encoder)."""
    name = Path(path).name
    parts = checkpoint.split_official(checkpoint.read_state_dict(path), name)
    return make_unet(parts.unet, name), make_vae(parts.vae, name), make_encoder(parts.encoder)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# the exemplar encoder's own names: in no text-to-image or stock inpainting checkpoint
_PBE_NAMES = (checkpoint.COND_PREFIX + "mapper.", "learnable_vector")


def is_pbe_file(path: str) -> bool:
    """Whether a checkpoint file is Paint by Example, from its header or pickle only (no tensor is read).

    safetensors: the pack's header (a converted checkpoint) or the encoder's tensor names; a torch zip pickle: the
    same names in its pickle; a legacy pickle cannot be told and counts as one (loading it says what it is).
    """
    lower = path.lower()
    if lower.endswith((".safetensors", ".sft")):
        header = safetensors_header(path)
        if header is None:
            return False
        if header.metadata.get(KIND_KEY) == checkpoint.CONVERTED_KIND:
            return True
        return any(key.startswith(_PBE_NAMES) for key in header.keys)
    if lower.endswith(PICKLE_SUFFIXES):
        return pickle_names_contain(path, tuple(n.encode() for n in _PBE_NAMES)) is not False
    return False


def pbe_checkpoints(pickles_only: bool = False) -> list[str]:
    """The Paint-by-Example files in models/checkpoints (only .ckpt/.pt/.pth/.bin with pickles_only)."""
    import folder_paths

    names = []
    for name in folder_paths.get_filename_list("checkpoints"):
        if pickles_only and not name.lower().endswith(PICKLE_SUFFIXES):
            continue
        path = folder_paths.get_full_path("checkpoints", name)
        if path and is_pbe_file(path):
            names.append(name)
    return names


# --- diffusers folder -------------------------------------------------------------------------

_WEIGHT_FILES = {
    "unet": (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
    ),
    "vae": (
        "diffusion_pytorch_model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors",
        "diffusion_pytorch_model.bin",
    ),
    "image_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin"),
}


def _read_component(folder: Path, component: str) -> dict[str, torch.Tensor]:
    directory = folder / component
    for name in _WEIGHT_FILES[component]:
        if (directory / name).is_file():
            return checkpoint.read_state_dict(directory / name)
    raise PbECheckpointError(
        f"{folder.name}: expected a diffusers Paint-by-Example folder with {component}/ holding one of "
        f"{', '.join(_WEIGHT_FILES[component])}"
    )


def unet_config_from_diffusers(config: dict) -> dict:
    """A diffusers UNet2DConditionModel config.json (SD1 family) -> ComfyUI's UNetModel config."""
    down = config["down_block_types"]
    up = config["up_block_types"]
    channels = config["block_out_channels"]
    per_block = config.get("layers_per_block", 2)
    if isinstance(per_block, list):
        raise PbECheckpointError("unet/config.json: per-level layers_per_block is not an SD1 UNet")
    heads = config.get("attention_head_dim", 8)
    if isinstance(heads, list):
        heads = heads[0]
    return {
        "image_size": 32,
        "in_channels": config.get("in_channels", 4),
        "out_channels": config.get("out_channels", 4),
        "model_channels": channels[0],
        "num_res_blocks": [per_block] * len(channels),
        "channel_mult": [c // channels[0] for c in channels],
        "transformer_depth": [1 if "CrossAttn" in kind else 0 for kind in down for _ in range(per_block)],
        # ComfyUI lists output depths shallow level first (its UNet pops from the end);
        # diffusers lists up blocks deep first
        "transformer_depth_output": [
            1 if "CrossAttn" in kind else 0 for kind in reversed(up) for _ in range(per_block + 1)
        ],
        "transformer_depth_middle": 1,
        "context_dim": config.get("cross_attention_dim", 768),
        "num_heads": heads,
        "num_head_channels": -1,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": bool(config.get("use_linear_projection", False)),
        "legacy": False,
    }


def unet_from_diffusers(sd: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """diffusers UNet weights -> ldm (`input_blocks...`) names, using ComfyUI's own key map."""
    key_map = comfy.utils.unet_to_diffusers(unet_config_from_diffusers(config))
    out, unknown = {}, []
    for key, value in sd.items():
        if key in key_map:
            out[key_map[key]] = value
        else:
            unknown.append(key)
    if unknown:
        raise PbECheckpointError(f"unet/: {len(unknown)} tensors do not fit an SD1 UNet, e.g. {unknown[:3]}")
    return out


def load_diffusers_folder(folder: str | os.PathLike):
    """diffusers PaintByExamplePipeline folder (unet/, vae/, image_encoder/) -> (MODEL, VAE, encoder)."""
    folder = Path(folder)
    config_path = folder / "unet" / "config.json"
    if not config_path.is_file():
        raise PbECheckpointError(
            f"{folder.name}: no unet/config.json; expected a diffusers PaintByExamplePipeline folder"
        )
    unet = unet_from_diffusers(_read_component(folder, "unet"), json.loads(config_path.read_text()))
    if unet.get(checkpoint.UNET_INPUT_KEY) is None or unet[checkpoint.UNET_INPUT_KEY].shape[1] != 9:
        raise PbECheckpointError(f"{folder.name}: unet/ does not take 9 input channels; not a Paint-by-Example UNet")
    encoder = checkpoint.encoder_from_diffusers(_read_component(folder, "image_encoder"))
    return make_unet(unet, folder.name), make_vae(_read_component(folder, "vae"), folder.name), make_encoder(encoder)


def list_diffusers_folders() -> list[str]:
    """Sub-folders of ComfyUI's `diffusers` model folders that hold a PbE pipeline (image_encoder/ + unet/)."""
    import folder_paths

    names = []
    for base in folder_paths.get_folder_paths("diffusers"):
        if os.path.isdir(base):
            for entry in sorted(os.listdir(base)):
                if os.path.isdir(os.path.join(base, entry, "image_encoder")) and os.path.isdir(
                    os.path.join(base, entry, "unet")
                ):
                    names.append(entry)
    return names


def diffusers_folder_path(name: str) -> str:
    import folder_paths

    for base in folder_paths.get_folder_paths("diffusers"):
        base = os.path.abspath(base)
        path = os.path.abspath(os.path.join(base, name))
        if os.path.isdir(path) and os.path.commonpath([base, path]) == base and path != base:  # no escaping the folder
            return path
    raise FileNotFoundError(f"diffusers folder {name!r} not found in {folder_paths.get_folder_paths('diffusers')}")
