"""Artefact loaders read the one header: older spellings load; a newer version or no header is refused."""

import pytest
import torch
from safetensors.torch import save_file

from exemplar_dev.host import pack_submodule


@pytest.fixture
def exemplar_folder(comfy, tmp_path):
    """A temporary folder searched first for `exemplar` files, removed from folder_paths afterwards."""
    import folder_paths

    paths = folder_paths.folder_names_and_paths["exemplar"][0]
    paths.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        paths.remove(str(tmp_path))


def test_scorer_and_projection_files_with_the_older_version_key_still_load(comfy, exemplar_folder):
    scorer = pack_submodule("models.dreaminpainter.token_scorer").init_token_scorer(8, hidden=4, seed=1)
    projection = pack_submodule("models.dreaminpainter.token_projection").init_token_projection(8, 16, seed=1)
    old_scorer = {"exemplar.kind": "token_scorer", "exemplar.format": "1", "exemplar.dim": "8"}
    old_projection = {
        "exemplar.kind": "token_projection",
        "exemplar.format": "1",
        "exemplar.in_dim": "8",
        "exemplar.out_dim": "16",
    }
    save_file(dict(scorer.state_dict()), str(exemplar_folder / "old_scorer.safetensors"), metadata=old_scorer)
    save_file(
        dict(projection.state_dict()), str(exemplar_folder / "old_projection.safetensors"), metadata=old_projection
    )
    nodes = comfy.nodes.NODE_CLASS_MAPPINGS
    loaded_scorer = nodes["ExemplarLoadTokenScorer"].execute(scorer_name="old_scorer.safetensors").result[0]
    loaded_projection = (
        nodes["ExemplarLoadTokenProjection"].execute(projection_name="old_projection.safetensors").result[0]
    )
    tokens = torch.randn(1, 5, 8)
    with torch.no_grad():
        assert torch.equal(loaded_scorer(tokens), scorer(tokens))
        assert torch.equal(loaded_projection.proj(tokens), projection.proj(tokens))


def test_a_newer_or_missing_header_is_refused_with_what_the_file_is(comfy, exemplar_folder):
    scorer = pack_submodule("models.dreaminpainter.token_scorer").init_token_scorer(8, hidden=4)
    state = dict(scorer.state_dict())
    save_file(
        state, str(exemplar_folder / "newer.safetensors"), metadata=dict(scorer.metadata(), **{"exemplar.version": "2"})
    )
    save_file(state, str(exemplar_folder / "bare.safetensors"))
    load = comfy.nodes.NODE_CLASS_MAPPINGS["ExemplarLoadTokenScorer"].execute
    with pytest.raises(
        ValueError,
        match=r"newer.safetensors is a DreamInpainter token scorer of format version '2', newer than .* \(up to 1\)",
    ):
        load(scorer_name="newer.safetensors")
    with pytest.raises(
        ValueError, match="bare.safetensors is not a DreamInpainter token scorer: it carries no comfyui-exemplar"
    ):
        load(scorer_name="bare.safetensors")
