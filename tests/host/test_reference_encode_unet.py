import copy

import pytest
import torch

from exemplar_dev.host import pack_submodule


def encode(node, **inputs):
    defaults = {"block": "auto", "timestep": 0, "resolution": 64, "crop": "center"}
    return node("ExemplarReferenceEncodeUNet").execute(**{**defaults, **inputs}).result


def hooked_features(model, vae, image, module, timestep=0):
    """Independent reference: full UNet forward with a torch forward hook on the block module."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    captured = []
    # ComfyUI runs a block's layers one by one (forward_timestep_embed), so hook its last layer
    handle = module[-1].register_forward_hook(lambda mod, args, out: captured.append(out))
    try:
        base = model.model
        x = base.process_latent_in(vae.encode(image))
        sigma = base.model_sampling.sigma(torch.tensor(float(timestep))).reshape(1).expand(x.shape[0])
        with torch.no_grad():
            base.apply_model(x, sigma, c_crossattn=torch.zeros(x.shape[0], 77, 768), transformer_options={})
    finally:
        handle.remove()
    return captured[0].float()


def test_auto_block_is_the_end_of_the_second_stage_and_matches_a_forward_hook(node, tiny_sd15):
    model, _, vae = tiny_sd15
    image = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    tokens, blocks = encode(node, model=model, vae=vae, reference=image)
    assert isinstance(tokens, pack_submodule("models.dreaminpainter.tokens").ExemplarTokens)
    # tiny SD1.5: input.0 conv, input.1 (320), input.2 downsample, input.3 (640) = end of stage 2
    assert tokens.source["block"] == "input.3" and tokens.dim == 640 and tokens.grid == (4, 4)
    assert tokens.tokens.shape == (2, 16, 640) and torch.equal(tokens.positions[1], torch.arange(16))
    assert blocks == "auto, input.0, input.1, input.2, input.3, middle.0, output.0, output.1, output.2"
    unet = model.model.diffusion_model
    expected = hooked_features(model, vae, image, unet.input_blocks[3])
    torch.testing.assert_close(tokens.tokens, expected.flatten(2).transpose(1, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    "block, module",
    [
        ("middle.0", lambda u: u.middle_block),
        ("output.1", lambda u: u.output_blocks[1]),
        ("input.1", lambda u: u.input_blocks[1]),
    ],
)
def test_every_block_kind_matches_a_forward_hook(node, tiny_sd15, block, module):
    model, _, vae = tiny_sd15
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    tokens = encode(node, model=model, vae=vae, reference=image, block=block, timestep=250)[0]
    expected = hooked_features(model, vae, image, module(model.model.diffusion_model), timestep=250)
    torch.testing.assert_close(tokens.tokens, expected.flatten(2).transpose(1, 2), rtol=0, atol=0)
    assert tokens.source["timestep"] == 250


def test_the_given_model_is_not_changed(node, tiny_sd15):
    model, _, vae = tiny_sd15
    options = copy.deepcopy(model.model_options)
    patches = dict(model.patches)
    weights = {k: v.clone() for k, v in list(model.model.diffusion_model.state_dict().items())[:6]}
    encode(node, model=model, vae=vae, reference=torch.rand(1, 64, 64, 3))
    assert model.model_options == options and model.patches == patches
    for key, value in weights.items():
        assert torch.equal(model.model.diffusion_model.state_dict()[key], value)
    assert not any(m._forward_hooks for m in model.model.diffusion_model.modules())


def test_subject_mask_and_errors(node, tiny_sd15):
    model, _, vae = tiny_sd15
    mask = torch.zeros(1, 64, 64)
    mask[:, :32, :32] = 1
    tokens = encode(node, model=model, vae=vae, reference=torch.rand(1, 64, 64, 3), subject_mask=mask)[0]
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1
    torch.testing.assert_close(tokens.mask[0], expected.flatten())
    with pytest.raises(
        ValueError, match=r"block 'input.9' is not a block of this model; valid blocks: auto, input.0, .*middle.0"
    ):
        encode(node, model=model, vae=vae, reference=torch.rand(1, 64, 64, 3), block="input.9")
    with pytest.raises(ValueError, match="subject_mask has batch 2; expected 1 or the reference batch 1"):
        encode(node, model=model, vae=vae, reference=torch.rand(1, 64, 64, 3), subject_mask=torch.ones(2, 64, 64))


def test_unet_tokens_feed_the_selector(node, tiny_sd15):
    model, _, vae = tiny_sd15
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    tokens = encode(node, model=model, vae=vae, reference=torch.rand(1, 64, 64, 3), subject_mask=mask)[0]
    select = node("ExemplarTokenSelectTopK")
    picked = select.execute(
        tokens=tokens, k=4, criterion="norm", selection="top_k", candidate_pool=96, mask_threshold=0.5
    ).result[0]
    assert set(picked.positions[0].tolist()) == {5, 6, 9, 10}  # the four centre cells are the subject
    with pytest.raises(ValueError, match="K=17 is larger than the number of reference tokens N=16"):
        select.execute(tokens=tokens, k=17, criterion="norm", selection="top_k", candidate_pool=96, mask_threshold=0.5)
