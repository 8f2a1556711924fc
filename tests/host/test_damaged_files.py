"""Damaged files through the pack's loaders: NaN / inf tensors, empty and truncated files, wrong shapes, an
incomplete adapter header, unsafe pickles. Every refusal names the file (and the tensor or part)."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR
from exemplar_dev.tiny_pbe import TINY_PBE_NAME


def staged(stages=4, dim=768, token="<sks1>"):
    se = pack_submodule("models.dreamstyler.staged_embedding")
    return se, se.StagedEmbedding(token, torch.randn(stages, 1, dim, generator=torch.Generator().manual_seed(0)))


def test_dreamstyler_embedding_files_nan_empty_truncated_unsafe_and_too_many_stages(node, model_folder):
    se, embedding = staged()
    folder = model_folder("embeddings")
    load = node("ExemplarLoadDreamStylerEmbedding").execute
    poisoned = se.StagedEmbedding(embedding.token, embedding.vectors.clone())
    poisoned.vectors[2, 0, 5] = float("nan")
    se.save_safetensors(poisoned, folder / "nan.safetensors")
    se.save_official(poisoned, folder / "nan.bin")
    for name in ("nan.safetensors", "nan.bin"):
        with pytest.raises(ValueError, match=rf"{name}: tensor '<sks1>-T2' holds 1 NaN or infinite value"):
            load(embedding_name=name)
    se.save_safetensors(embedding, folder / "good.safetensors")
    se.save_official(embedding, folder / "good.bin")
    for suffix in ("safetensors", "bin"):
        (folder / f"empty.{suffix}").write_bytes(b"")
        with pytest.raises(ValueError, match=rf"empty.{suffix} is empty \(0 bytes\)"):
            load(embedding_name=f"empty.{suffix}")
        data = (folder / f"good.{suffix}").read_bytes()
        (folder / f"cut.{suffix}").write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match=rf"cut.{suffix} cannot be read as a .* file \(\d+ bytes.*truncated"):
            load(embedding_name=f"cut.{suffix}")
    torch.save({"<sks1>-T0": torch.zeros(768), "hook": pickle.PicklingError("x")}, folder / "unsafe.bin")
    with pytest.raises(ValueError, match=r"refusing to load unsafe.bin: it pickles Python objects") as refused:
        load(embedding_name="unsafe.bin")
    assert "weights_only" not in str(refused.value)
    _, many = staged(stages=2000, dim=8)
    save_file(many.state_dict(), str(folder / "many.safetensors"))
    with pytest.raises(ValueError, match=r"many.safetensors has 2000 stages; a staged embedding has at most 1000"):
        load(embedding_name="many.safetensors")


@pytest.fixture
def exemplar_folder(model_folder):
    return model_folder("exemplar")


def test_token_scorer_and_projection_with_nan_or_inf_are_refused(node, exemplar_folder):
    scorer = pack_submodule("models.dreaminpainter.token_scorer").init_token_scorer(8, hidden=4, seed=1)
    projection = pack_submodule("models.dreaminpainter.token_projection").init_token_projection(8, 16, seed=1)
    scorer_state, projection_state = dict(scorer.state_dict()), dict(projection.state_dict())
    scorer_key, projection_key = sorted(scorer_state)[0], sorted(projection_state)[-1]
    scorer_state[scorer_key] = scorer_state[scorer_key].clone().fill_(float("nan"))
    projection_state[projection_key] = projection_state[projection_key].clone()
    projection_state[projection_key].view(-1)[0] = float("inf")
    save_file(scorer_state, str(exemplar_folder / "scorer.safetensors"), metadata=scorer.metadata())
    save_file(projection_state, str(exemplar_folder / "projection.safetensors"), metadata=projection.metadata())
    with pytest.raises(ValueError, match=rf"scorer.safetensors: tensor '{scorer_key}' holds \d+ NaN or infinite"):
        node("ExemplarLoadTokenScorer").execute(scorer_name="scorer.safetensors")
    with pytest.raises(ValueError, match=rf"projection.safetensors: tensor '{projection_key}' holds 1 NaN"):
        node("ExemplarLoadTokenProjection").execute(projection_name="projection.safetensors")
    torch.save({"w": torch.zeros(2), "hook": pickle.PicklingError("x")}, exemplar_folder / "unsafe.pt")
    with pytest.raises(ValueError, match=r"refusing to load unsafe.pt") as refused:
        node("ExemplarLoadTokenScorer").execute(scorer_name="unsafe.pt")
    assert "weights_only" not in str(refused.value)


def test_dtc_adapter_files_nan_wrong_shape_incomplete_header_empty(node, tiny_inpaint, exemplar_folder):
    from safetensors import safe_open

    adapter = node("ExemplarDtCAdapterCreate").execute(model=tiny_inpaint[0], image_dim=32, seed=1).result[0]
    save_adapter = pack_submodule("models.diffuse_to_choose.adapter").save_adapter
    saved = save_adapter(adapter, exemplar_folder / "good.safetensors")
    with safe_open(str(saved), "pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    load = node("ExemplarDtCAdapterLoader").execute

    nan = dict(state, **{"film.0.proj.weight": torch.full_like(state["film.0.proj.weight"], float("nan"))})
    save_file(nan, str(exemplar_folder / "nan.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=r"nan.safetensors: tensor 'film.0.proj.weight' holds \d+ NaN"):
        load(adapter_name="nan.safetensors")

    wide = dict(state, **{"image_projection.weight": torch.zeros(768, 48)})
    save_file(wide, str(exemplar_folder / "wide.safetensors"), metadata=metadata)
    with pytest.raises(
        ValueError,
        match=r"wide.safetensors: the image projection does not have the expected shapes: tensor "
        r"'image_projection.weight' is \[768, 48\], expected \[768, 32\]",
    ):
        load(adapter_name="wide.safetensors")

    config = json.loads(metadata["exemplar.unet_config"])
    for key in ("model_channels", "num_res_blocks"):
        config.pop(key)
    save_file(state, str(exemplar_folder / "partial.safetensors"), metadata=dict(metadata, **{
        "exemplar.unet_config": json.dumps(config)
    }))
    with pytest.raises(ValueError, match=r"partial.safetensors: .*unet_config is incomplete: it lacks model_channels"):
        load(adapter_name="partial.safetensors")

    (exemplar_folder / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.safetensors is empty \(0 bytes\)"):
        load(adapter_name="empty.safetensors")


def test_pbe_checkpoint_with_a_wrong_unet_or_vae_shape_names_file_part_and_shapes(comfy, tmp_path):
    from safetensors.torch import load_file

    loader = pack_submodule("nodes.paint_by_example.loader")
    state = load_file(str(BASE_DIR / "models" / "checkpoints" / TINY_PBE_NAME))
    convs = sorted(k for k in state if state[k].ndim == 4)
    unet_key = next(k for k in convs if k.startswith("model.diffusion_model.output_blocks."))
    vae_key = [k for k in convs if k.startswith("first_stage_model.") and "decoder" in k][2]
    for key, part in ((unet_key, "UNet"), (vae_key, "VAE")):
        broken = dict(state)
        shape = list(broken[key].shape)
        broken[key] = torch.zeros([shape[0], shape[1] + 1, *shape[2:]], dtype=broken[key].dtype)
        path = tmp_path / f"broken_{part}.safetensors"
        save_file(broken, str(path))
        with pytest.raises(Exception) as refused:
            loader.load_checkpoint(path)
        message = str(refused.value)
        assert message.startswith(f"broken_{part}.safetensors: the {part} does not have the expected shapes"), message
        assert f"is {[shape[0], shape[1] + 1, *shape[2:]]}, expected {shape}" in message, message
        assert "Error(s) in loading state_dict" not in message
