"""Diffuse to Choose injector (nodes/diffuse_to_choose/adapter_patch.py) on the tiny 9-channel SD1 model, sampled
through ComfyUI."""

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_dtc import sample_inpaint

STEPS = 2


@pytest.fixture(scope="module")
def adapter_patch(comfy):
    return pack_submodule("nodes.diffuse_to_choose.adapter_patch")


@pytest.fixture(scope="module")
def adapter(adapter_patch, tiny_inpaint):
    return adapter_patch.create_adapter(tiny_inpaint[0], image_dim=32, seed=0)


def sample(model, batch=1, size=8, cfg=5.0, steps=STEPS):
    return sample_inpaint(model, batch, size, cfg, steps)


def hint_image(batch=1, size=64):
    return torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(3))


def count_encoder_calls(adapter):
    """Batch size of every hint-encoder call, and a function that stops counting."""
    calls = []
    handle = adapter.hint_encoder.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    return calls, handle.remove


def test_created_encoder_copies_the_base_weights(tiny_inpaint, adapter):
    base = tiny_inpaint[0].model.diffusion_model.state_dict()
    ours = adapter.hint_encoder.state_dict()
    assert len(adapter.film) == len(tiny_inpaint[0].model.diffusion_model.input_blocks) + 1 == 5
    for key, value in ours.items():
        assert torch.equal(value, base[key].float()), key
    assert adapter.config["base_arch"] == "SD15" and adapter.config["unet_config"]["in_channels"] == 9


def test_untrained_adapter_leaves_sampling_exactly_unchanged(adapter_patch, tiny_inpaint, adapter):
    model = tiny_inpaint[0]
    before = (dict(model.model_options["transformer_options"]), dict(model.additional_models))
    patched, _ = adapter_patch.apply_adapter(model, adapter, hint_image(), None, 1.0)
    assert (
        dict(model.model_options["transformer_options"]),
        dict(model.additional_models),
    ) == before  # source untouched
    plain = sample(model)
    calls, stop_counting = count_encoder_calls(adapter)
    try:
        ours = sample(patched)
    finally:
        stop_counting()
    assert len(calls) == STEPS
    assert torch.equal(plain, ours)


def test_hint_features_equal_the_unet_encoder_when_the_hint_is_zero(adapter_patch, tiny_inpaint, adapter):
    patched, injection = adapter_patch.apply_adapter(tiny_inpaint[0], adapter, hint_image(), None, 1.0)
    main = {}

    def record_skip(h, opts):
        main[opts["block"][1]] = h.clone()
        return h

    def record_middle(h, hsp, opts):
        if opts["block"][1] == 0:
            main["middle"] = h.clone()
        return h, hsp

    patched.set_model_input_block_patch(record_skip)
    patched.set_model_output_block_patch(record_middle)
    seen = []
    hint_features = adapter.hint_features
    adapter.hint_features = lambda *a, **k: seen.append(hint_features(*a, **k)) or seen[-1]
    try:
        sample(patched, steps=1)
    finally:
        del adapter.hint_features
    features = seen[0]
    assert len(features) == 5
    for index in range(4):
        assert torch.equal(features[index], main[index]), index
    assert torch.equal(features[4], main["middle"])


def test_trained_film_changes_the_sample(adapter_patch, tiny_inpaint, adapter):
    import copy

    trained = copy.deepcopy(adapter)
    torch.manual_seed(0)
    for film in trained.film:
        torch.nn.init.normal_(film.proj.weight, std=0.05)
    patched, _ = adapter_patch.apply_adapter(tiny_inpaint[0], trained, hint_image(), None, 1.0)
    weak, _ = adapter_patch.apply_adapter(tiny_inpaint[0], trained, hint_image(), None, 0.0)
    plain = sample(tiny_inpaint[0])
    assert not torch.allclose(sample(patched), plain, atol=1e-3)
    assert torch.equal(sample(weak), plain)  # strength 0 is the unpatched model


def test_one_hint_encoder_call_per_step_for_the_cond_uncond_batch(adapter_patch, tiny_inpaint, adapter):
    patched, _ = adapter_patch.apply_adapter(tiny_inpaint[0], adapter, hint_image(batch=2), None, 1.0)
    calls, restore = count_encoder_calls(adapter)
    try:
        sample(patched, batch=2, cfg=5.0, steps=3)
    finally:
        restore()
    assert calls == [4, 4, 4]  # 3 steps, each one call on cond (2) + uncond (2)


def test_adapter_is_loaded_with_the_model_by_model_management(adapter_patch, tiny_inpaint, adapter):
    import comfy.model_management

    patched, injection = adapter_patch.apply_adapter(tiny_inpaint[0], adapter, hint_image(), None, 1.0)
    (adapter_patcher,) = patched.get_additional_models_with_key(adapter_patch.ADDITIONAL_MODELS_KEY)
    assert adapter_patcher.model is adapter
    loaded = []
    wrapper = injection.diffusion_model_wrapper

    def spy(*args, **kwargs):
        loaded.append(any(m is adapter_patcher or m.model is adapter for m in comfy.model_management.loaded_models()))
        return wrapper(*args, **kwargs)

    injection.diffusion_model_wrapper = spy
    patched.remove_wrappers_with_key("diffusion_model", adapter_patch.WRAPPER_KEY)
    patched.add_wrapper_with_key("diffusion_model", adapter_patch.WRAPPER_KEY, spy)
    sample(patched, steps=1)
    assert loaded == [True]


def test_wrong_architecture_is_a_clear_error(adapter_patch, adapter, tiny_sd15):
    plain = tiny_sd15[0]
    with pytest.raises(
        ValueError, match=r"made for a SD15 UNet and does not fit this SD15 MODEL \(in_channels: adapter 9 vs model 4\)"
    ):
        adapter_patch.apply_adapter(plain, adapter, hint_image(), None, 1.0)
    own = adapter_patch.create_adapter(plain, image_dim=32)
    with pytest.raises(ValueError, match="connect the VAE"):
        adapter_patch.apply_adapter(plain, own, hint_image(), None, 1.0)
    patched, injection = adapter_patch.apply_adapter(plain, own, hint_image(), torch.randn(1, 4, 8, 8), 1.0)
    assert injection.offset == 0
    assert torch.equal(sample(patched), sample(plain))


SMALL_SDXL_SHAPED = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 1, 1, 1, 1],
    "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 64,
    "num_head_channels": 16,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 48,
}


def test_small_sdxl_shaped_unet_gets_10_films_and_exact_identity(adapter_patch):
    from exemplar_dev.tiny_models import random_state_dict, tiny_unet

    unet = tiny_unet(SMALL_SDXL_SHAPED, device="cpu")
    unet.load_state_dict(random_state_dict(unet, "", seed=5))
    adapter = adapter_patch._empty_adapter("SDXL", dict(SMALL_SDXL_SHAPED), 4, 16)
    encoder_state = {
        k: v
        for k, v in unet.state_dict().items()
        if k.split(".")[0] in ("time_embed", "input_blocks", "middle_block", "label_emb")
    }
    adapter.hint_encoder.load_state_dict(encoder_state)
    adapter.reset_parameters(0)
    assert len(adapter.film) == 10 and adapter.skip_channels == [32] * 4 + [64] * 3 + [128] * 3
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 16, 16, generator=g), torch.tensor([900.0, 100.0])
    context, y = torch.randn(2, 7, 64, generator=g), torch.randn(2, 48, generator=g)
    injection = adapter_patch.DtCInjection(adapter, hint_image(size=128), 0, None, 1.0)
    skips = {}

    def record(h, opts):
        skips[opts["block"][1]] = h.clone()
        return h

    with torch.no_grad():
        plain = unet(x, t, context, y, transformer_options={"patches": {"input_block_patch": [record]}})
        features = adapter.hint_features(x, injection.hint_latent(x.shape, x.device), 0, t, context, y)
        options = {injection.key: features, "patches": {"output_block_patch": [injection.output_block_patch]}}
        patched = unet(x, t, context, y, transformer_options=options)
    assert len(features) == 10 and [f.shape[1] for f in features] == adapter.skip_channels
    for index in range(9):
        assert torch.equal(features[index], skips[index]), index
    assert torch.equal(plain, patched)
    with torch.no_grad():
        torch.nn.init.normal_(adapter.film[9].proj.weight, std=0.1)  # the middle block's FiLM
        changed = unet(x, t, context, y, transformer_options=dict(options))
    assert not torch.allclose(changed, plain)


def test_low_vram_partial_load_keeps_the_adapter_working(adapter_patch, tiny_inpaint, adapter):
    """In low-VRAM mode ComfyUI loads only part of the adapter and casts the rest per layer on the fly."""
    patcher = adapter_patch.adapter_model_patcher(adapter, tiny_inpaint[0])
    g = torch.Generator().manual_seed(0)
    x, t, context = (
        torch.randn(2, 9, 8, 8, generator=g),
        torch.tensor([500.0, 500.0]),
        torch.randn(2, 6, 768, generator=g),
    )
    hint = torch.randn(1, 4, 8, 8, generator=g)
    with torch.no_grad():
        full = adapter.hint_features(x, hint, 5, t, context)
        patcher.load(torch.device("cpu"), lowvram_model_memory=1024)  # far below the adapter's size
        try:
            cast = [m for m in adapter.modules() if getattr(m, "comfy_cast_weights", False)]
            assert len(cast) > 10  # the encoder copy's and the FiLM layers run through ComfyUI's weight casting
            partial = adapter.hint_features(x, hint, 5, t, context)
        finally:
            patcher.detach()
    for a, b in zip(full, partial):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def trained_copy(adapter, std=0.05):
    import copy

    trained = copy.deepcopy(adapter)
    torch.manual_seed(0)
    for film in trained.film:
        torch.nn.init.normal_(film.proj.weight, std=std)
    for parameter in trained.hint_adapter.parameters():  # its last layer starts at zero: the hint would not count
        torch.nn.init.normal_(parameter, std=std)
    return trained


def test_hint_batch_must_be_one_or_the_latent_batch(adapter_patch, tiny_inpaint, adapter, equal_up_to_rounding):
    """Two hints for one latent used to go one to the cond pass, the other to the uncond pass."""
    trained = trained_copy(adapter, std=0.2)
    a = hint_image()
    b = 1 - a
    two, _ = adapter_patch.apply_adapter(tiny_inpaint[0], trained, torch.cat([a, b]), None, 1.0)
    with pytest.raises(ValueError, match=r"the DtC hint has batch 2 but the latent batch is 1"):
        sample(two, batch=1, cfg=5.0)
    three, _ = adapter_patch.apply_adapter(tiny_inpaint[0], trained, torch.cat([a, b, a]), None, 1.0)
    with pytest.raises(ValueError, match=r"the DtC hint has batch 3 but the latent batch is 2"):
        sample(three, batch=2, cfg=5.0)
    # hint i goes to latent i in both passes: each row equals the run that gives every latent that row's hint
    def run(hint):
        return sample(adapter_patch.apply_adapter(tiny_inpaint[0], trained, hint, None, 1.0)[0], batch=2, cfg=5.0)

    mixed, only_a, only_b = run(torch.cat([a, b])), run(torch.cat([a, a])), run(torch.cat([b, b]))
    assert (only_a[0] - only_b[0]).abs().max() > 1e-2
    assert torch.equal(mixed[0], only_a[0]) and torch.equal(mixed[1], only_b[1])
    # one hint serves every latent (the hint adapter runs at batch 1 instead of 2: rounding may differ)
    equal_up_to_rounding(run(a), only_a, roundings=trained)
