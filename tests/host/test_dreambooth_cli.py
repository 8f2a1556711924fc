"""The DreamBooth CLI under torchrun: 2 CPU processes (gloo) on the tiny model end with identical weights."""

import json
import os
import subprocess
import sys

import pytest

from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR, PACK_ROOT, comfyui_dir
from exemplar_dev.tiny_models import TINY_SD15_NAME


@pytest.fixture(scope="module")
def folders(comfy, tmp_path_factory):
    from exemplar_dev.asset_builders.dreambooth import SUBJECT_IMAGES, subject_image

    root = tmp_path_factory.mktemp("dreambooth_cli")
    (root / "instance").mkdir()
    for i, name in enumerate(SUBJECT_IMAGES):
        subject_image(i, size=96).save(root / "instance" / name)
    return root


def run_cli(folders, out_name, nproc, extra=()):
    command = [sys.executable]
    if nproc > 1:
        command += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    command += [
        str(PACK_ROOT / "scripts" / "dreambooth_train.py"),
        "--comfyui",
        str(comfyui_dir()),
        "--cpu",
        "--checkpoint",
        str(BASE_DIR / "models" / "checkpoints" / TINY_SD15_NAME),
        "--instance-dir",
        str(folders / "instance"),
        "--instance-prompt",
        "a sks dog",
        "--class-dir",
        str(folders / "class"),
        "--class-prompt",
        "a dog",
        "--num-class-images",
        "3",
        "--class-steps",
        "2",
        "--resolution",
        "64",
        "--steps",
        "3",
        "--learning-rate",
        "1e-3",
        "--output",
        str(folders / out_name / "lora.safetensors"),
        "--rank-report-dir",
        str(folders / out_name / "ranks"),
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return [json.loads((folders / out_name / "ranks" / f"rank{r}.json").read_text()) for r in range(nproc)], done.stdout


@pytest.mark.slow
def test_two_gloo_processes_agree_on_the_final_weights(folders):
    ranks, stdout = run_cli(folders, "ddp", nproc=2)
    assert "world size 2" in stdout
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]
    # each rank trained on its own draw of images and noise (data parallel, not a copy)
    assert ranks[0]["losses"][0]["loss"] != ranks[1]["losses"][0]["loss"]
    # the file rank 0 wrote holds those weights and the stock loader's layout
    from safetensors.torch import load_file

    digest = pack_submodule("models.common.train_loop").state_digest
    saved = load_file(str(folders / "ddp" / "lora.safetensors"))
    assert digest(saved) == ranks[0]["digest"]
    assert all(k.startswith("lora_unet_") for k in saved)
    assert len(list((folders / "class").glob("class_*.png"))) == 3
