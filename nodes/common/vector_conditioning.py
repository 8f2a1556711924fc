"""SDXL's vector conditioning as ComfyUI builds it: the pooled text embedding plus six size / crop values
(CLIPTextEncodeSDXL sets them on a CONDITIONING; comfy/model_base.py `SDXL.encode_adm` turns them into `y`)."""

from __future__ import annotations

VECTOR_KEYS = ("pooled_output", "width", "height", "crop_w", "crop_h", "target_width", "target_height")


def needs_vector_conditioning(model) -> bool:
    """Whether the MODEL's UNet takes a `y` vector (SDXL and other class-conditional UNets)."""
    return getattr(model.model.diffusion_model, "num_classes", None) is not None


def vector_entries(conditioning) -> dict:
    """The vector-conditioning entries of a CONDITIONING's first item (what a sampler would pass to extra_conds)."""
    if not conditioning:
        return {}
    return {k: v for k, v in conditioning[0][1].items() if k in VECTOR_KEYS}


def vector_kwargs(model, conditioning, width: int, height: int, batch: int, input_name: str) -> dict:
    """extra_conds keywords for the model's `y`: the conditioning's entries, sizes defaulting to width x height (as
    comfy.samplers.encode_model_conds does), the pooled output repeated to `batch` rows. {} for a model without `y`."""
    if not needs_vector_conditioning(model):
        return {}
    entries = vector_entries(conditioning)
    if "pooled_output" not in entries:
        raise ValueError(
            f"{input_name}: this model (SDXL) needs a text conditioning with a pooled output for its vector "
            "conditioning; connect a CLIP Text Encode (SDXL) of the model's CLIP"
        )
    pooled = entries["pooled_output"]
    if pooled.shape[0] not in (1, batch):
        raise ValueError(f"{input_name}: the pooled output has batch {pooled.shape[0]}; expected 1 or {batch}")
    entries["pooled_output"] = pooled.expand(batch, -1) if pooled.shape[0] == 1 else pooled
    return {"width": width, "height": height, **entries}


def with_vector_entries(conditioning: list, source) -> list:
    """`conditioning` with the vector entries of `source` (another CONDITIONING) copied into every item."""
    entries = vector_entries(source)
    return [[context, {**extra, **entries}] for context, extra in conditioning]
