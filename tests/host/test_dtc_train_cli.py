"""The DtC training CLI under torchrun: 2 CPU processes (gloo) on the tiny models end with identical weights."""

import pytest

from exemplar_dev.asset_builders.diffuse_to_choose import DINOV2_NAME
from exemplar_dev.asset_builders.dtc_training import write_synthetic_pairs
from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR
from exemplar_dev.tiny_dtc import TINY_DTC_ADAPTER_NAME, TINY_SD15_INPAINT_NAME
from exemplar_dev.training_cli import run_training_cli


def run_cli(root, nproc, extra=()):
    args = [
        "--checkpoint",
        str(BASE_DIR / "models" / "checkpoints" / TINY_SD15_INPAINT_NAME),
        "--clip-vision",
        str(BASE_DIR / "models" / "clip_vision" / DINOV2_NAME),
        "--adapter",
        str(BASE_DIR / "models" / "exemplar" / TINY_DTC_ADAPTER_NAME),
        "--dataset",
        str(root / "pairs"),
        "--resolution",
        "64",
        "--reference-size",
        "28",
        "--steps",
        "2",
        "--learning-rate",
        "1e-3",
        "--output",
        str(root / "out" / "adapter.safetensors"),
        "--preview-dir",
        str(root / "out" / "previews"),
        *extra,
    ]
    return run_training_cli("dtc_train.py", args, nproc, root / "out" / "ranks")


@pytest.mark.slow
def test_two_gloo_processes_agree_on_the_final_weights(comfy, tmp_path):
    write_synthetic_pairs(tmp_path / "pairs", count=4)
    ranks, stdout = run_cli(tmp_path, nproc=2)
    assert "4 usable pairs" in stdout and "world size 2" in stdout
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]
    # each rank trained on its own draw of pairs and noise (data parallel, not a copy)
    assert ranks[0]["losses"][0]["loss"] != ranks[1]["losses"][0]["loss"]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "out" / "adapter.safetensors"))
    assert pack_submodule("models.common.train_loop").state_digest(saved) == ranks[0]["digest"]
    loaded = pack_submodule("nodes.diffuse_to_choose.adapter_patch").load_adapter(
        str(tmp_path / "out" / "adapter.safetensors")
    )
    assert loaded.image_dim == 1024
    assert [p.name for p in (tmp_path / "out" / "previews").iterdir()] == ["preview_step000002.png"]
