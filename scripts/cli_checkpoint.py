"""The command-line trainers' checkpoint: read by ComfyUI's own single-file loader, then refused with an error naming
--checkpoint when ComfyUI does not recognise the file or its architecture is not one the trainer can train.

A trainer takes a UNet of the SD1.x, SD2.x or SDXL family (ComfyUI's `supported_models.SD15`, `SD20`, `SDXL`,
exactly those: their variants such as the SDXL refiner, unCLIP or InstructPix2Pix condition the UNet otherwise) with
the UNet input it trains on: the latent alone (text-to-image) or latent + mask + masked-source latent (inpainting).
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = {"SD15": "SD1.x", "SD20": "SD2.x", "SDXL": "SDXL"}
TEXT_TO_IMAGE = "text-to-image"
INPAINTING = "inpainting"


def describe(model) -> tuple[str, str]:
    """(family or ComfyUI's model name, kind of UNet input) of a loaded MODEL, e.g. ("SDXL", "inpainting")."""
    config = model.model.model_config
    name = type(config).__name__
    latent_channels = model.model.latent_format.latent_channels
    in_channels = config.unet_config.get("in_channels")
    if in_channels == latent_channels:
        kind = TEXT_TO_IMAGE
    elif in_channels == 2 * latent_channels + 1:
        kind = INPAINTING
    else:
        kind = f"{in_channels}-channel input"
    return FAMILIES.get(name, name), kind


def check_trainable(model, path, trainer: str, kind: str) -> str:
    """The model's family when it is an SD1.x / SD2.x / SDXL UNet with the `kind` of input; else SystemExit naming
    --checkpoint, what ComfyUI read it as, and what `trainer` trains on."""
    family, found = describe(model)
    if family in FAMILIES.values() and found == kind:
        return family
    channels = "4-channel UNet input" if kind == TEXT_TO_IMAGE else "9-channel UNet input: latent, mask, masked source"
    raise SystemExit(
        f"--checkpoint {Path(path).name} is {family} ({found}); {trainer} trains on an SD1.x, SD2.x or SDXL {kind} "
        f"checkpoint ({channels})"
    )


def load(path, trainer: str, kind: str, output_clip: bool = True):
    """(MODEL, CLIP or None, VAE or None, family) of a single-file checkpoint, checked by `check_trainable`."""
    import comfy.sd

    if not Path(path).is_file():
        raise SystemExit(f"--checkpoint {path}: no such file")
    try:
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=output_clip)[
            :3
        ]
    except RuntimeError as error:
        raise SystemExit(f"--checkpoint {Path(path).name}: not a checkpoint ComfyUI recognises ({error})") from None
    return model, clip, vae, check_trainable(model, path, trainer, kind)
