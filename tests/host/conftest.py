"""Host-tier fixtures: node classes as ComfyUI registered them and the tiny models, each loaded once,
the way a user's graph loads it (the stock checkpoint loader or the pack's own loader node).

The models are shared by the whole session: a test may clone and patch them but never change them
in place (the tests that patch check that the input model is untouched)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def node(comfy):
    """node("ExemplarPbEEncode") -> the node class registered under that id (call .execute(...).result)."""

    def registered(node_id: str):
        return comfy.nodes.NODE_CLASS_MAPPINGS[node_id]

    return registered


def _checkpoint(comfy, name: str):
    return comfy.nodes.CheckpointLoaderSimple().load_checkpoint(name)


@pytest.fixture(scope="session")
def tiny_sd15(comfy):
    """(MODEL, CLIP, VAE) of the tiny SD1.5 checkpoint through CheckpointLoaderSimple."""
    from exemplar_dev.tiny_models import TINY_SD15_NAME

    return _checkpoint(comfy, TINY_SD15_NAME)[:3]


@pytest.fixture(scope="session")
def tiny_sd15_inference(comfy):
    """The same checkpoint loaded under torch.inference_mode, as inside ComfyUI's executor: its weights are
    inference tensors, which a trainer must not trip over."""
    from exemplar_dev.tiny_models import TINY_SD15_NAME

    with torch.inference_mode():
        return _checkpoint(comfy, TINY_SD15_NAME)[:3]


@pytest.fixture(scope="session")
def tiny_inpaint(comfy):
    """(MODEL, VAE) of the tiny 9-channel SD1 inpainting checkpoint (no text encoder)."""
    from exemplar_dev.tiny_dtc import TINY_SD15_INPAINT_NAME

    model, _clip, vae = _checkpoint(comfy, TINY_SD15_INPAINT_NAME)[:3]
    return model, vae


@pytest.fixture(scope="session")
def tiny_pbe(node):
    """(MODEL, VAE, EXEMPLAR_ENCODER) of the tiny Paint-by-Example checkpoint through the pack's loader node."""
    from exemplar_dev.tiny_pbe import TINY_PBE_NAME

    return node("ExemplarPbECheckpointLoader").execute(ckpt_name=TINY_PBE_NAME).result


# --- SDXL (issue 19: DreamStyler, DreamBooth) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_sdxl(comfy):
    """(MODEL, CLIP, VAE) of the tiny SDXL checkpoint (`sd_xl_base_1.0.safetensors`) through CheckpointLoaderSimple."""
    from exemplar_dev.tiny_sdxl_base import TINY_SDXL_NAME

    return _checkpoint(comfy, TINY_SDXL_NAME)[:3]


@pytest.fixture(scope="session")
def tiny_sdxl_inpaint(comfy):
    """(MODEL, CLIP, VAE) of the tiny 9-channel SDXL inpainting checkpoint through CheckpointLoaderSimple (CLIP-L +
    bigG text encoders, pooled output, size conditioning)."""
    from exemplar_dev.tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME

    return _checkpoint(comfy, TINY_SDXL_INPAINT_NAME)[:3]


# --- pair-dataset training (DtC, Paint by Example) ---------------------------------------------------------


@pytest.fixture(scope="session")
def dinov2(comfy, tmp_path_factory):
    """A CLIP_VISION running the DINOv2 code path at a tiny width (28 px: 2x2 patches + CLS)."""
    from exemplar_dev.tiny_dtc import tiny_dinov2

    return tiny_dinov2(tmp_path_factory.mktemp("dinov2"))


@pytest.fixture(scope="session")
def pairs(comfy, tmp_path_factory):
    """(train, held out) PairDatasets of synthetic try-on pairs, 6 and 4, read-only (a module with other pairs, e.g.
    captioned ones, defines its own `pairs`)."""
    from exemplar_dev.asset_builders.dtc_training import write_synthetic_pairs
    from exemplar_dev.host import pack_submodule

    datasets = pack_submodule("models.common.datasets")
    root = tmp_path_factory.mktemp("pairs")
    return datasets.scan_pairs(write_synthetic_pairs(root / "train", count=6)), datasets.scan_pairs(
        write_synthetic_pairs(root / "held_out", count=4, start=1000)
    )
