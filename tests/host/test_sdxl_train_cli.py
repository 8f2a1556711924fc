"""The command-line trainers on SDXL (tiny SDXL checkpoints), and their check of the checkpoint's architecture."""

import pytest
import torch

from exemplar_dev.asset_builders.diffuse_to_choose import DINOV2_NAME
from exemplar_dev.asset_builders.dtc_training import write_synthetic_pairs
from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR
from exemplar_dev.tiny_models import TINY_SD15_NAME
from exemplar_dev.tiny_sdxl_base import TINY_SDXL_NAME
from exemplar_dev.tiny_sdxl_inpaint import TINY_SDXL_INPAINT_NAME
from exemplar_dev.training_cli import run_cli, run_training_cli

CHECKPOINTS = BASE_DIR / "models" / "checkpoints"


@pytest.fixture(scope="module")
def cli_checkpoint(comfy):
    import cli_checkpoint

    return cli_checkpoint


def test_family_and_input_of_the_tiny_models(cli_checkpoint, tiny_sd15, tiny_inpaint, tiny_sdxl, tiny_sdxl_inpaint):
    describe = cli_checkpoint.describe
    assert describe(tiny_sd15[0]) == ("SD1.x", "text-to-image")
    assert describe(tiny_inpaint[0]) == ("SD1.x", "inpainting")
    assert describe(tiny_sdxl[0]) == ("SDXL", "text-to-image")
    assert describe(tiny_sdxl_inpaint[0]) == ("SDXL", "inpainting")


def test_a_checkpoint_of_the_wrong_kind_is_refused_naming_the_option(cli_checkpoint, tiny_sdxl, tiny_sdxl_inpaint):
    check = cli_checkpoint.check_trainable
    assert check(tiny_sdxl_inpaint[0], "x.safetensors", "Diffuse to Choose", cli_checkpoint.INPAINTING) == "SDXL"
    assert check(tiny_sdxl[0], "x.safetensors", "DreamStyler", cli_checkpoint.TEXT_TO_IMAGE) == "SDXL"
    with pytest.raises(SystemExit) as refused:
        check(tiny_sdxl[0], "/m/sd_xl_base_1.0.safetensors", "Diffuse to Choose", cli_checkpoint.INPAINTING)
    assert str(refused.value) == (
        "--checkpoint sd_xl_base_1.0.safetensors is SDXL (text-to-image); Diffuse to Choose trains on an SD1.x, SD2.x "
        "or SDXL inpainting checkpoint (9-channel UNet input: latent, mask, masked source)"
    )
    with pytest.raises(SystemExit, match=r"is SDXL \(inpainting\); DreamStyler trains on .* text-to-image checkpoint"):
        check(tiny_sdxl_inpaint[0], "i.safetensors", "DreamStyler", cli_checkpoint.TEXT_TO_IMAGE)


@pytest.mark.slow
def test_dtc_cli_refuses_a_text_to_image_checkpoint_and_a_file_comfyui_does_not_know(comfy, tmp_path):
    def run(checkpoint):
        args = ["--checkpoint", str(checkpoint), "--clip-vision", "unused", "--dataset", str(tmp_path)]
        return run_cli("dtc_train.py", [*args, "--output", str(tmp_path / "a.safetensors")])

    done = run(CHECKPOINTS / TINY_SD15_NAME)
    assert done.returncode != 0
    assert f"--checkpoint {TINY_SD15_NAME} is SD1.x (text-to-image); Diffuse to Choose trains on" in done.stderr
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "not_a_model.safetensors"))
    done = run(tmp_path / "not_a_model.safetensors")
    assert done.returncode != 0
    assert "--checkpoint not_a_model.safetensors: not a checkpoint ComfyUI recognises" in done.stderr
    assert not (tmp_path / "a.safetensors").exists()


@pytest.mark.slow
def test_dtc_cli_trains_a_10_film_adapter_on_the_sdxl_inpainting_checkpoint(tiny_sdxl_inpaint, tmp_path):
    write_synthetic_pairs(tmp_path / "pairs", count=3)
    output = tmp_path / "out" / "adapter_sdxl.safetensors"
    args = ["--checkpoint", str(CHECKPOINTS / TINY_SDXL_INPAINT_NAME), "--clip-vision"]
    args += [str(BASE_DIR / "models" / "clip_vision" / DINOV2_NAME), "--dataset", str(tmp_path / "pairs")]
    args += ["--resolution", "64", "--reference-size", "28", "--steps", "2", "--learning-rate", "1e-3"]
    args += ["--trainable", "film+hint_cnn", "--prompt", "a shirt", "--output", str(output)]
    ranks, stdout = run_training_cli("dtc_train.py", args, 1, tmp_path / "ranks")
    assert "SDXL inpainting model" in stdout and "3 usable pairs" in stdout
    assert len(ranks[0]["losses"]) == 2 and all(0 < step["loss"] < 1e3 for step in ranks[0]["losses"])
    adapter_patch = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    adapter = adapter_patch.load_adapter(str(output))
    adapter_patch.check_compatible(adapter, tiny_sdxl_inpaint[0])
    assert adapter.config["base_arch"] == "SDXL" and len(adapter.film) == 10
    # a fresh adapter is the identity (zero FiLM, zero last hint conv); two steps moved every FiLM off it
    assert all(film.proj.weight.abs().max() > 0 for film in adapter.film)
    assert adapter.hint_adapter.layers[-1].weight.abs().max() > 0
    untrained = adapter_patch.create_adapter(tiny_sdxl_inpaint[0], image_dim=adapter.image_dim, seed=0)
    encoder = [k for k in untrained.state_dict() if k.startswith("hint_encoder.")]
    assert encoder and all(torch.equal(untrained.state_dict()[k], adapter.state_dict()[k]) for k in encoder)


@pytest.mark.slow
def test_dreamstyler_cli_writes_an_sdxl_staged_embedding(node, tiny_sdxl, model_folder):
    from PIL import Image

    folder = model_folder("embeddings")
    pixels = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(2))
    Image.fromarray((pixels.numpy() * 255).astype("uint8")).save(folder / "style.png")
    args = ["--checkpoint", str(CHECKPOINTS / TINY_SDXL_NAME), "--images", str(folder / "style.png")]
    args += ["--captions", "a dog", "--token", "<cli>", "--stages", "2", "--steps", "2", "--lr", "0.05"]
    args += ["--flip", "0", "--resolution", "64", "--out-dir", str(folder), "--name", "cli_sdxl"]
    done = run_cli("dreamstyler_train.py", args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "training <cli> on SDXL" in done.stdout and "step 2/2" in done.stdout
    embedding, token, stages = node("ExemplarLoadDreamStylerEmbedding").execute(embedding_name="cli_sdxl.safetensors")
    assert (token, stages) == ("<cli>", 2) and embedding.base == "sdxl"
    assert embedding.dims() == {"clip_l": 768, "clip_g": 1280}
    init = pack_submodule("nodes.dreamstyler.trainer").init_vectors_from_word(tiny_sdxl[1], "painting", 2, 1)
    assert torch.equal(init[0], init[1])
    # a step trains the stage its timestep falls in: that stage moved on both encoders, any other stayed the init
    moved_l = (embedding.vectors - init[..., :768]).abs().amax(dim=(1, 2))
    moved_g = (embedding.clip_g - init[..., 768:]).abs().amax(dim=(1, 2))
    assert moved_g.max() > 0 and torch.equal(moved_l > 0, moved_g > 0)
    official = torch.load(str(folder / "cli_sdxl.bin"), weights_only=True)
    assert set(official) == {"<cli>-T0", "<cli>-T1"} and set(official["<cli>-T0"]) == {"clip_l", "clip_g"}
    assert torch.equal(official["<cli>-T1"]["clip_g"], embedding.clip_g[1])
    staged = (
        node("ExemplarDreamStylerTextEncode")
        .execute(clip=tiny_sdxl[1], staged_embedding=embedding, text="a dog in the style of <cli>")
        .result[0]
    )
    assert len(staged) == 2 and staged[0][0].shape[-1] == 2048 and staged[0][1]["pooled_output"].shape[-1] == 1280
    same_vectors = torch.equal(embedding.vectors[0], embedding.vectors[1]) and torch.equal(*embedding.clip_g)
    assert torch.equal(staged[0][0], staged[1][0]) == same_vectors


@pytest.mark.slow
def test_dreambooth_cli_writes_an_sdxl_lora_the_stock_loader_applies_whole(comfy, tiny_sdxl, tmp_path, caplog):
    import logging

    from PIL import Image

    from comfy import lora as comfy_lora
    from comfy import utils as comfy_utils

    (tmp_path / "instance").mkdir()
    pixels = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(3))
    Image.fromarray((pixels.numpy() * 255).astype("uint8")).save(tmp_path / "instance" / "dog.png")
    output = tmp_path / "out" / "lora_sdxl.safetensors"
    args = ["--checkpoint", str(CHECKPOINTS / TINY_SDXL_NAME), "--instance-dir", str(tmp_path / "instance")]
    args += ["--instance-prompt", "a sks dog", "--prior-loss-weight", "0", "--train-text-encoder", "--steps", "1"]
    args += ["--resolution", "64", "--learning-rate", "1e-3", "--output", str(output)]
    ranks, stdout = run_training_cli("dreambooth_train.py", args, 1, tmp_path / "ranks")
    assert "SDXL model" in stdout and ranks[0]["losses"][0]["instance"] > 0
    lora = comfy_utils.load_torch_file(str(output))
    model, clip, _ = tiny_sdxl
    key_map = comfy_lora.model_lora_keys_clip(clip.cond_stage_model, comfy_lora.model_lora_keys_unet(model.model, {}))
    with caplog.at_level(logging.WARNING):
        patches = comfy_lora.load_lora(lora, key_map)
    assert "lora key not loaded" not in caplog.text
    assert len(patches) == len([k for k in lora if k.endswith(".alpha")])  # every module applied
    assert sum(1 for k in patches if k.startswith("clip_l.")) == 48  # 12 layers x q, k, v, out
    assert sum(1 for k in patches if k.startswith("clip_g.")) == 128  # bigG: 32 layers x q, k, v, out
    assert sum(1 for k in patches if k.startswith("diffusion_model.")) > 0
