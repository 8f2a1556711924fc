"""The one artefact header: writer, reader, each error, the older version spellings, and every writer using it."""

import pytest
import torch

from comfyui_exemplar.models.common.artefact_header import ArtefactHeaderError, has_header, read_header, write_header


def test_round_trip_keeps_kind_version_and_fields():
    meta = write_header("token_scorer", 2, {"dim": 8, "base": "SD15"})
    assert meta == {
        "exemplar.kind": "token_scorer",
        "exemplar.version": "2",
        "exemplar.dim": "8",
        "exemplar.base": "SD15",
    }
    header = read_header(dict(meta, ss_network_dim="4"), "token_scorer", 2, source="s.safetensors")
    assert (header.kind, header.version, header.source) == ("token_scorer", 2, "s.safetensors")
    assert header.fields == {"dim": "8", "base": "SD15"}  # foreign keys (kohya's ss_*) are not fields
    assert header.value("dim") == "8"
    with pytest.raises(
        ArtefactHeaderError, match="s.safetensors has an incomplete token_scorer header: no exemplar.step"
    ):
        header.value("step")


def test_an_older_version_is_read():
    header = read_header(write_header("dtc_adapter", 1), "dtc_adapter", 3)
    assert header.version == 1


@pytest.mark.parametrize("key", ["exemplar.format_version", "exemplar.format"])
def test_the_older_version_spellings_are_read(key):
    header = read_header({"exemplar.kind": "token_projection", key: "1", "exemplar.in_dim": "4"}, "token_projection", 1)
    assert header.version == 1 and header.fields == {"in_dim": "4"}


def test_a_missing_header_says_what_was_expected():
    assert not has_header({"ss_network_dim": "4"}) and not has_header(None)
    for metadata in (None, {}, {"format": "pt"}):
        with pytest.raises(
            ArtefactHeaderError,
            match=r"x.safetensors is not a DreamInpainter token scorer: it carries no comfyui-exemplar header "
            r"\(exemplar.kind\), so it was not written by this pack .* docs/weights.md, section \"DreamInpainter\"",
        ):
            read_header(metadata, "token_scorer", 1, source="x.safetensors")


def test_another_kind_names_both_kinds_and_uses_the_label():
    meta = write_header("token_projection", 1)
    assert has_header(meta)
    with pytest.raises(
        ArtefactHeaderError,
        match="x is not a Diffuse to Choose adapter: it is a DreamInpainter token projection "
        r"\(exemplar.kind = 'token_projection'\). Where a Diffuse to Choose adapter comes from \(download or "
        r"training\): docs/weights.md, section \"Diffuse to Choose\".",
    ):
        read_header(meta, "dtc_adapter", 1, source="x", label="Diffuse to Choose adapter")


def test_a_newer_version_asks_for_an_update():
    with pytest.raises(
        ArtefactHeaderError,
        match=r"is a DreamInpainter token scorer of format version '3', newer than this comfyui-exemplar reads "
        r"\(up to 2\)",
    ):
        read_header(write_header("token_scorer", 3), "token_scorer", 2)
    with pytest.raises(ArtefactHeaderError, match="format version '5'"):  # an old spelling is checked too
        read_header({"exemplar.kind": "token_scorer", "exemplar.format": "5"}, "token_scorer", 1)


@pytest.mark.parametrize("raw", ["", "one", "1.0", "0", "-1"])
def test_an_unreadable_version_is_an_error(raw):
    with pytest.raises(ArtefactHeaderError, match=f"unreadable format version '{raw}' in exemplar.version"):
        read_header({"exemplar.kind": "k", "exemplar.version": raw}, "k", 1)


def test_a_missing_version_is_an_error():
    with pytest.raises(ArtefactHeaderError, match="is a k file without a format version"):
        read_header({"exemplar.kind": "k"}, "k", 1)


def test_the_writer_refuses_what_the_reader_could_not_read():
    with pytest.raises(ValueError, match="needs a kind"):
        write_header("", 1)
    for version in (0, "1", True, 1.0):
        with pytest.raises(ValueError, match="integer >= 1"):
            write_header("k", version)
    for name in ("kind", "version", "format", "format_version"):
        with pytest.raises(ValueError, match="part of the header itself"):
            write_header("k", 1, {name: "x"})


def test_every_artefact_writer_writes_the_one_spelling(tmp_path):
    from comfyui_exemplar.models.dreambooth.lora_file import lora_metadata
    from comfyui_exemplar.models.dreaminpainter.token_projection import init_token_projection
    from comfyui_exemplar.models.dreaminpainter.token_scorer import init_token_scorer
    from comfyui_exemplar.models.dreamstyler.staged_embedding import StagedEmbedding

    headers = {
        "token_scorer": init_token_scorer(8, hidden=4).metadata(),
        "token_projection": init_token_projection(8, 16).metadata(),
        "dreamstyler_staged_embedding": StagedEmbedding("<s>", torch.zeros(2, 1, 8)).header(),
        "dreambooth_lora": lora_metadata(4, 4.0, step=3),
    }
    for kind, meta in headers.items():
        assert meta["exemplar.kind"] == kind and meta["exemplar.version"] == "1"
        assert not {"exemplar.format", "exemplar.format_version"} & set(meta)
        read_header(meta, kind, 1)


def test_a_dreamstyler_file_with_the_older_version_key_still_loads(tmp_path):
    from safetensors.torch import save_file

    from comfyui_exemplar.models.dreamstyler import staged_embedding as se

    embedding = se.StagedEmbedding("<s>", torch.randn(2, 1, 8, generator=torch.Generator().manual_seed(0)))
    old = {
        "exemplar.kind": "dreamstyler_staged_embedding",
        "exemplar.format_version": "1",
        "exemplar.token": "<s>",
        "exemplar.stages": "2",
        "exemplar.vectors_per_stage": "1",
        "exemplar.dim": "8",
        "exemplar.base": "sd1",
    }
    save_file(embedding.state_dict(), str(tmp_path / "old.safetensors"), metadata=old)
    loaded = se.load(tmp_path / "old.safetensors")
    assert torch.equal(loaded.vectors, embedding.vectors) and loaded.base == "sd1" and loaded.metadata == {}
    save_file(
        embedding.state_dict(),
        str(tmp_path / "newer.safetensors"),
        metadata=dict(old, **{"exemplar.format_version": "2"}),
    )
    with pytest.raises(ValueError, match="newer.safetensors is a DreamStyler staged embedding of format version '2'"):
        se.load(tmp_path / "newer.safetensors")
