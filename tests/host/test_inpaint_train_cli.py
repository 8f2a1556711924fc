"""The Paint-by-Example and DreamInpainter training CLIs under torchrun: 2 CPU processes (gloo) on the tiny models
draw their own data and end with identical weights; the written files load as the nodes load them."""

import pytest

from exemplar_dev.asset_builders.dtc_training import write_synthetic_pairs
from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR
from exemplar_dev.tiny_models import TINY_SD15_NAME
from exemplar_dev.tiny_pbe import TINY_PBE_NAME
from exemplar_dev.training_cli import run_training_cli

COMMON = ["--resolution", "64", "--steps", "2", "--learning-rate", "1e-3", "--lora-rank", "2", "--lora-alpha", "2"]


def check_ranks(ranks, stdout):
    assert "4 usable pairs" in stdout and "world size 2" in stdout
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["losses"][0]["loss"] != ranks[1]["losses"][0]["loss"]  # each rank drew its own pairs and noise


@pytest.mark.slow
def test_pbe_cli_two_gloo_processes_agree_and_the_checkpoint_loads(comfy, tmp_path):
    write_synthetic_pairs(tmp_path / "pairs", count=4)
    output = tmp_path / "out" / "tuned.safetensors"
    args = [
        "--checkpoint",
        str(BASE_DIR / "models" / "checkpoints" / TINY_PBE_NAME),
        "--dataset",
        str(tmp_path / "pairs"),
        "--output",
        str(output),
        "--preview-every",
        "2",
        "--preview-dir",
        str(tmp_path / "out" / "previews"),
        *COMMON,
    ]
    ranks, stdout = run_training_cli("pbe_train.py", args, 2, tmp_path / "out" / "ranks")
    check_ranks(ranks, stdout)
    model, _vae, encoder = pack_submodule("nodes.paint_by_example.loader").load_checkpoint(output)
    assert encoder.context_dim == 768 and model.model.concat_keys == ("masked_image", "mask_inverted")
    assert [p.name for p in (tmp_path / "out" / "previews").iterdir()] == ["preview_step000002.png"]


@pytest.mark.slow
def test_dreaminpainter_cli_two_gloo_processes_agree_and_the_files_load(comfy, tmp_path):
    write_synthetic_pairs(tmp_path / "pairs", count=4)
    stem = tmp_path / "out" / "subject"
    args = [
        "--checkpoint",
        str(BASE_DIR / "models" / "checkpoints" / TINY_SD15_NAME),
        "--dataset",
        str(tmp_path / "pairs"),
        "--output",
        str(stem),
        "--lora-output",
        str(tmp_path / "out" / "lora.safetensors"),
        "--trainable",
        "projection+scorer+lora",
        "--reference-resolution",
        "64",
        "--k",
        "4",
        *COMMON,
    ]
    ranks, stdout = run_training_cli("dreaminpainter_train.py", args, 2, tmp_path / "out" / "ranks")
    check_ranks(ranks, stdout)
    from safetensors.torch import load_file

    projection = pack_submodule("models.dreaminpainter.token_projection").TokenProjection.from_state_dict(
        load_file(str(tmp_path / "out" / "subject_projection.safetensors"))
    )
    scorer = pack_submodule("models.dreaminpainter.token_scorer").TokenScorer.from_state_dict(
        load_file(str(tmp_path / "out" / "subject_scorer.safetensors"))
    )
    assert not projection.is_silent and projection.out_dim == 768 and scorer.dim == projection.in_dim
    assert (tmp_path / "out" / "lora.safetensors").is_file()
