"""Diffuse to Choose nodes executed through ComfyUI's node classes on tiny models."""


import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_dtc import TINY_DINOV2_CONFIG, sample_inpaint as sample, tiny_dinov2


@pytest.fixture(scope="module")
def adapter(node, tiny_inpaint):
    return node("ExemplarDtCAdapterCreate").execute(model=tiny_inpaint[0], image_dim=32, seed=1).result[0]


@pytest.fixture(scope="module")
def dinov2(comfy, tmp_path_factory):
    return tiny_dinov2(tmp_path_factory.mktemp("dinov2"))


def make_hint(node, mask=None, min_side=8):
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    if mask is None:
        mask = torch.zeros(1, 64, 64)
        mask[:, 8:56, 16:48] = 1
    reference = torch.rand(1, 40, 30, 3, generator=torch.Generator().manual_seed(1))
    return (
        image,
        mask,
        node("ExemplarDtCHint")
        .execute(image=image, mask=mask, reference=reference, fit="stretch", min_side=min_side)
        .result,
    )


def test_hint_node_outputs_and_masked_source(node):
    image, mask, (hint, hint_image, masked, rectangle) = make_hint(node)
    assert isinstance(hint, pack_submodule("models.diffuse_to_choose.hint").DtCHint)
    assert hint_image.shape == masked.shape == (1, 64, 64, 3)
    assert torch.equal(rectangle, hint.rectangle)
    assert torch.equal(rectangle[0] > 0, mask[0] > 0)  # the mask is a rectangle: it is its own largest one
    assert torch.equal(masked[0, 8:56, 16:48], torch.full((48, 32, 3), 0.5))
    outside = mask[0] == 0
    assert torch.equal(masked[0][outside], image[0][outside])
    assert hint_image[0][outside].abs().max() == 0 and hint_image[0, 8:56, 16:48].std() > 0


def test_hint_node_rejects_empty_and_too_thin_masks(node):
    with pytest.raises(ValueError, match="mask 0 is empty"):
        make_hint(node, mask=torch.zeros(1, 64, 64))
    thin = torch.zeros(1, 64, 64)
    thin[:, 10:50, 30:33] = 1
    with pytest.raises(ValueError, match=r"largest rectangle inside mask 0 is 40x3 px; at least 8x8"):
        make_hint(node, mask=thin)


def test_save_then_load_round_trips_the_adapter(node, adapter, output_folder):
    node("ExemplarDtCAdapterSave").execute(adapter=adapter, filename_prefix="exemplar_test/dtc", dtype="fp32")
    saved = sorted((output_folder / "exemplar_test").glob("dtc_*_.safetensors"))
    assert len(saved) == 1
    with safe_open(str(saved[-1]), "pt") as f:
        meta = f.metadata()
    assert (
        meta["exemplar.kind"] == "dtc_adapter"
        and meta["exemplar.base_arch"] == "SD15"
        and meta["exemplar.image_dim"] == "32"
    )
    loaded = pack_submodule("nodes.diffuse_to_choose.adapter_patch").load_adapter(str(saved[-1]))
    ours, theirs = adapter.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_loader_node_reads_the_exemplar_folder_and_rejects_other_files(node, adapter, model_folder, tmp_path):
    from comfy.model_management import unet_dtype

    save_adapter = pack_submodule("models.diffuse_to_choose.adapter").save_adapter
    save_adapter(adapter, model_folder("exemplar") / "exemplar_test_dtc.safetensors", torch.float16)
    loaded = node("ExemplarDtCAdapterLoader").execute(adapter_name="exemplar_test_dtc.safetensors").result[0]

    assert loaded.dtype == unet_dtype(weight_dtype=torch.float16)  # fp32 on this CPU host
    assert torch.equal(loaded.film[0].proj.weight, adapter.film[0].proj.weight.half().to(loaded.dtype))
    other = tmp_path / "lora.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"exemplar.kind": "token_scorer"})
    with pytest.raises(ValueError, match="is not a Diffuse to Choose adapter"):
        pack_submodule("nodes.diffuse_to_choose.adapter_patch").load_adapter(str(other))


def test_apply_node_is_the_identity_untrained_and_rejects_other_architectures(node, tiny_inpaint, tiny_sd15, adapter):
    _, _, (hint, *_) = make_hint(node)
    patched = (
        node("ExemplarDtCApply").execute(model=tiny_inpaint[0], adapter=adapter, hint=hint, strength=1.0).result[0]
    )
    assert patched is not tiny_inpaint[0]
    assert torch.equal(sample(patched), sample(tiny_inpaint[0]))
    plain, _, vae = tiny_sd15
    with pytest.raises(ValueError, match="does not fit this SD15 MODEL"):
        node("ExemplarDtCApply").execute(model=plain, adapter=adapter, hint=hint, strength=1.0)
    own = node("ExemplarDtCAdapterCreate").execute(model=plain, image_dim=32, seed=0).result[0]
    with pytest.raises(ValueError, match="connect the VAE"):
        node("ExemplarDtCApply").execute(model=plain, adapter=own, hint=hint, strength=1.0)
    patched = node("ExemplarDtCApply").execute(model=plain, adapter=own, hint=hint, strength=1.0, vae=vae).result[0]
    assert torch.equal(sample(patched), sample(plain))


def test_image_conditioning_projects_257_dinov2_tokens(node, adapter, dinov2):
    reference = torch.rand(2, 80, 60, 3, generator=torch.Generator().manual_seed(5))
    run = node("ExemplarDtCImageConditioning").execute
    positive, negative = run(
        clip_vision=dinov2, reference=reference, adapter=adapter, resolution=224, crop="center"
    ).result
    tokens = pack_submodule("nodes.diffuse_to_choose.vision_tokens").encode_tokens(dinov2, reference, 224, True)
    assert tokens.shape == (2, 257, 32)
    assert positive[0][0].shape == (2, 257, 768) and negative[0][0].shape == (1, 257, 768)
    with torch.no_grad():
        torch.testing.assert_close(
            positive[0][0],
            tokens @ adapter.image_projection.weight.T + adapter.image_projection.bias,
            rtol=1e-5,
            atol=1e-5,
        )
        assert torch.equal(negative[0][0], adapter.image_projection.bias.expand(1, 257, 768))
    native = run(clip_vision=dinov2, reference=reference, adapter=adapter, resolution=0, crop="center").result[0]
    assert native[0][0].shape == (2, 1370, 768)


def to_transformers_keys(state: dict, wanted) -> dict:
    """ComfyUI's DINOv2 keys (the original HF layout) -> the installed transformers' layout."""
    if set(state) == set(wanted):
        return state
    renames = {
        "attention.attention.query": "attention.q_proj",
        "attention.attention.key": "attention.k_proj",
        "attention.attention.value": "attention.v_proj",
        "attention.output.dense": "attention.o_proj",
        "mlp.weights_out": "mlp.down_proj",
    }
    out = {}
    for key, value in state.items():
        if ".mlp.weights_in." in key:
            gate, up = value.chunk(2, dim=0)
            out[key.replace("weights_in", "gate_proj")], out[key.replace("weights_in", "up_proj")] = gate, up
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def test_dinov2_at_224_matches_the_transformers_reference(dinov2, equal_up_to_rounding):
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=4,
        use_swiglu_ffn=True,
        image_size=518,
        patch_size=14,
        layer_norm_eps=1e-6,
    )
    reference_model = transformers.Dinov2Model(config).eval()
    reference_model.load_state_dict(
        to_transformers_keys(dinov2.model.state_dict(), reference_model.state_dict().keys())
    )
    image = torch.rand(1, 224, 224, 3, generator=torch.Generator().manual_seed(2))
    ours = pack_submodule("nodes.diffuse_to_choose.vision_tokens").encode_tokens(dinov2, image, 224, True)
    pixels = pack_submodule("nodes.common.comfyui_compat").clip_preprocess(
        image, size=224, mean=TINY_DINOV2_CONFIG["image_mean"], std=TINY_DINOV2_CONFIG["image_std"]
    )
    with torch.no_grad():
        theirs = reference_model(pixel_values=pixels).last_hidden_state
    equal_up_to_rounding(ours, theirs, roundings=reference_model)


def test_image_width_mismatch_is_a_clear_error(node, tiny_inpaint, dinov2):
    wide = node("ExemplarDtCAdapterCreate").execute(model=tiny_inpaint[0], image_dim=1536, seed=0).result[0]
    with pytest.raises(
        ValueError, match="image tokens have width 32, this adapter projects 1536-wide tokens \\(DINOv2 giant\\)"
    ):
        node("ExemplarDtCImageConditioning").execute(
            clip_vision=dinov2, reference=torch.rand(1, 32, 32, 3), adapter=wide, resolution=224, crop="center"
        )
