"""SDXL staged embeddings: CLIP-L and bigG vectors per stage, in both file forms."""

import pytest
import torch

from comfyui_exemplar.models.dreamstyler import staged_embedding as se


def sdxl_embedding(stages=3, per_stage=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return se.StagedEmbedding(
        "<sks1>",
        torch.randn(stages, per_stage, 768, generator=g),
        base="sdxl",
        clip_g=torch.randn(stages, per_stage, 1280, generator=g),
    )


def test_each_stage_is_comfyui_sdxl_embedding_layout():
    emb = sdxl_embedding(stages=2, per_stage=2)
    official = emb.official_state_dict()
    assert set(official) == {"<sks1>-T0", "<sks1>-T1"}
    for k in range(2):
        assert set(official[f"<sks1>-T{k}"]) == {"clip_l", "clip_g"}
        assert torch.equal(official[f"<sks1>-T{k}"]["clip_l"], emb.vectors[k])
        assert torch.equal(official[f"<sks1>-T{k}"]["clip_g"], emb.clip_g[k])
    flat = emb.state_dict()
    assert set(flat) == {f"<sks1>-T{k}.{e}" for k in range(2) for e in ("clip_l", "clip_g")}
    assert emb.encoder_vectors(1)["clip_g"].shape == (2, 1280)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_sdxl_files_round_trip(tmp_path, suffix):
    emb = sdxl_embedding(stages=4, seed=1)
    path = tmp_path / f"style{suffix}"
    (se.save_safetensors if suffix == ".safetensors" else se.save_official)(emb, path)
    loaded = se.load(path)
    assert loaded.is_sdxl and loaded.stages == 4 and loaded.token == "<sks1>"
    assert torch.equal(loaded.vectors, emb.vectors) and torch.equal(loaded.clip_g, emb.clip_g)
    assert loaded.base == "sdxl" and loaded.dims() == {"clip_l": 768, "clip_g": 1280}


def test_sdxl_header_records_both_widths():
    header = sdxl_embedding().header()
    assert header["exemplar.dim"] == "768" and header["exemplar.dim_g"] == "1280"
    assert header["exemplar.base"] == "sdxl"


def test_one_encoder_embedding_unchanged():
    emb = se.StagedEmbedding("<s>", torch.ones(2, 1, 768))
    official, flat = emb.official_state_dict(), emb.state_dict()
    assert not emb.is_sdxl and official.keys() == flat.keys()
    assert all(torch.equal(official[k], flat[k]) for k in flat)
    assert set(emb.state_dict()) == {"<s>-T0", "<s>-T1"} and emb.state_dict()["<s>-T0"].shape == (768,)


def test_sdxl_stage_missing_clip_g_is_refused():
    state = {"<s>-T0.clip_l": torch.ones(1, 768), "<s>-T0.clip_g": torch.ones(1, 1280)}
    state["<s>-T1.clip_l"] = torch.ones(1, 768)
    with pytest.raises(ValueError, match="clip_l and clip_g vectors for every stage"):
        se.from_state_dict(state)


def test_clip_g_shape_must_match_clip_l_stages():
    with pytest.raises(ValueError, match="clip_g vectors must be"):
        se.StagedEmbedding("<s>", torch.ones(3, 1, 768), clip_g=torch.ones(2, 1, 1280))
