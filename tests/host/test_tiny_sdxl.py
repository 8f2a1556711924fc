"""The tiny SDXL checkpoint is what ComfyUI's stock checkpoint loader takes for SDXL base."""

import pytest
import torch

from exemplar_dev.tiny_sdxl_base import TINY_SDXL_NAME


@pytest.mark.slow
def test_stock_loader_detects_sdxl_base(tiny_sdxl):
    import comfy.model_base
    import comfy.sdxl_clip
    import comfy.supported_models

    model, clip, vae = tiny_sdxl
    assert TINY_SDXL_NAME == "sd_xl_base_1.0.safetensors"
    assert type(model.model.model_config) is comfy.supported_models.SDXL  # not SSD-1B, Vega, KOALA, refiner
    assert type(model.model) is comfy.model_base.SDXL
    assert isinstance(clip.cond_stage_model, comfy.sdxl_clip.SDXLClipModel)
    assert model.model.latent_format.scale_factor == pytest.approx(0.13025)
    out = clip.encode_from_tokens(clip.tokenize("a dog"), return_pooled=True, return_dict=True)
    assert out["cond"].shape == (1, 77, 2048) and out["pooled_output"].shape == (1, 1280)
    assert torch.isfinite(out["cond"]).all() and torch.isfinite(out["pooled_output"]).all()
    pixels = vae.decode(torch.zeros(1, 4, 8, 8))
    assert pixels.shape == (1, 64, 64, 3) and torch.isfinite(pixels).all()
