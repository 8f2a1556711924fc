"""DreamInpainter on SDXL: the tiny SDXL inpainting checkpoint through the reference encoders, the top-K selector
and both injectors (the reference pass carries SDXL's pooled output and size conditioning)."""

import copy

import pytest
import torch

from exemplar_dev.tiny_models import tiny_clip_vision
from exemplar_dev.tiny_sdxl_inpaint import SDXL_CONTEXT_DIM, random_sdxl_conditioning


def encode(node, **inputs):
    defaults = {"block": "auto", "timestep": 0, "resolution": 64, "crop": "center"}
    return node("ExemplarReferenceEncodeUNet").execute(**{**defaults, **inputs}).result


def inject(node, model, tokens, **options):
    defaults = {
        "weight": 1.0,
        "start_percent": 0.0,
        "end_percent": 1.0,
        "cond_only": False,
        "token_space": "block_norm",
        "blocks": "matching_dim",
    }
    return (
        node("ExemplarReferenceSelfAttention").execute(model=model, tokens=tokens, **{**defaults, **options}).result[0]
    )


def inpaint_conds(seed: int, size: int = 8):
    """(positive, negative) SDXL conditionings carrying a masked-source latent and a mask for the 9-channel UNet."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, size * 8, size * 8)
    mask[..., size * 2 : size * 6, size * 2 : size * 6] = 1
    concat = {"concat_latent_image": torch.randn(1, 4, size, size, generator=g), "concat_mask": mask}
    return random_sdxl_conditioning(seed, size * 8, **concat), random_sdxl_conditioning(seed + 1, size * 8, **concat)


def sample(model, positive, negative, size=8, steps=2, cfg=5.0):
    import comfy.sample

    latent = torch.zeros(1, 4, size, size)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        model, noise, steps, cfg, "euler", "normal", positive, negative, latent, disable_pbar=True, seed=0
    )


def hooked_features(model, vae, image, module, conditioning):
    """Independent reference: a whole UNet forward (9-channel input, vector conditioning from SDXL's own encode_adm)
    with a torch forward hook on the block's last layer."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    captured = []
    handle = module[-1].register_forward_hook(lambda mod, args, out: captured.append(out))
    try:
        base = model.model
        x = base.process_latent_in(vae.encode(image))
        sigma = base.model_sampling.sigma(torch.tensor(0.0)).reshape(1).expand(x.shape[0])
        context, extra = conditioning[0]
        sizes = {"width": x.shape[-1] * 8, "height": x.shape[-2] * 8, **extra}
        y = base.encode_adm(**sizes, device="cpu").expand(x.shape[0], -1)
        c_concat = torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)  # concat keys (mask, masked_image); keep all
        with torch.no_grad():
            context = context.expand(x.shape[0], -1, -1)
            base.apply_model(x, sigma, c_concat=c_concat, c_crossattn=context, y=y, transformer_options={})
    finally:
        handle.remove()
    return captured[0].float()


def test_the_tiny_checkpoint_loads_as_sdxl_inpainting(tiny_sdxl_inpaint):
    import comfy.model_base
    import comfy.sdxl_clip
    import comfy.supported_models

    model, clip, vae = tiny_sdxl_inpaint
    assert type(model.model) is comfy.model_base.SDXL
    assert type(model.model.model_config) is comfy.supported_models.SDXL
    config = model.model.model_config.unet_config
    assert config["in_channels"] == 9 and config["context_dim"] == 2048 and config["adm_in_channels"] == 2816
    assert config["transformer_depth"] == [0, 0, 2, 2, 10, 10]
    assert model.model.concat_keys == ("mask", "masked_image")
    assert isinstance(clip.cond_stage_model, comfy.sdxl_clip.SDXLClipModel)
    assert vae.latent_channels == 4


@pytest.mark.slow
def test_the_text_encoders_give_an_sdxl_conditioning(node, tiny_sdxl_inpaint):
    _model, clip, _vae = tiny_sdxl_inpaint
    conditioning = node("CLIPTextEncodeSDXL").execute(
        clip=clip,
        width=1024,
        height=1024,
        crop_w=0,
        crop_h=0,
        target_width=1024,
        target_height=1024,
        text_g="a red cup",
        text_l="a red cup",
    )
    conditioning = conditioning[0] if isinstance(conditioning, tuple) else conditioning.result[0]
    context, extra = conditioning[0]
    assert context.shape == (1, 77, SDXL_CONTEXT_DIM) and extra["pooled_output"].shape == (1, 1280)
    assert torch.isfinite(context).all() and extra["width"] == 1024 and extra["target_height"] == 1024


def test_auto_block_is_the_end_of_the_second_stage_with_pooled_output_and_sizes(node, tiny_sdxl_inpaint):
    model, _clip, vae = tiny_sdxl_inpaint
    image = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    conditioning = random_sdxl_conditioning(1, size=1024)
    tokens, blocks = encode(node, model=model, vae=vae, reference=image, conditioning=conditioning)
    # input.0 conv, 1-2 level 0 (no attention), 3 downsample, 4-5 level 1 (2 transformer blocks each), 6 downsample
    assert tokens.source["block"] == "input.5" and tokens.dim == 320 and tokens.grid == (4, 4)
    assert tokens.tokens.shape == (2, 16, 320)
    assert blocks.startswith("auto, input.0, input.1,") and "input.8, middle.0, output.0" in blocks
    expected = hooked_features(model, vae, image, model.model.diffusion_model.input_blocks[5], conditioning)
    torch.testing.assert_close(tokens.tokens, expected.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_size_conditioning_reaches_the_reference_pass(node, tiny_sdxl_inpaint):
    model, _clip, vae = tiny_sdxl_inpaint
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    pooled_only = random_sdxl_conditioning(3)
    pooled_only[0][1] = {"pooled_output": pooled_only[0][1]["pooled_output"]}  # as plain CLIP Text Encode gives it
    with pytest.raises(ValueError, match="needs a text conditioning"):
        encode(node, model=model, vae=vae, reference=image)
    default = encode(node, model=model, vae=vae, reference=image, conditioning=pooled_only)[0]
    same = encode(node, model=model, vae=vae, reference=image, conditioning=random_sdxl_conditioning(3, size=64))[0]
    large = encode(node, model=model, vae=vae, reference=image, conditioning=random_sdxl_conditioning(3, size=1024))[0]
    assert torch.equal(default.tokens, same.tokens)  # no sizes given = the reference latent's pixel size
    assert not torch.allclose(default.tokens, large.tokens)


def test_injection_at_weight_zero_is_the_base_model_exactly_and_k_tokens_are_selected(node, tiny_sdxl_inpaint):
    model, _clip, vae = tiny_sdxl_inpaint
    options = copy.deepcopy(model.model_options)
    image = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(4))
    tokens = encode(node, model=model, vae=vae, reference=image, resolution=128, conditioning=inpaint_conds(5)[0])[0]
    assert tokens.tokens.shape == (1, 64, 320)
    selected = (
        node("ExemplarTokenSelectTopK")
        .execute(tokens=tokens, k=24, criterion="norm", selection="top_k", candidate_pool=96, mask_threshold=0.5)
        .result[0]
    )
    norms = tokens.tokens[0].norm(dim=-1)
    expected = torch.argsort(norms, descending=True, stable=True)[:24]
    assert selected.tokens.shape == (1, 24, 320)
    assert sorted(selected.positions[0].tolist()) == sorted(expected.tolist())
    torch.testing.assert_close(selected.tokens[0], tokens.tokens[0, selected.positions[0]], rtol=0, atol=0)
    positive, negative = inpaint_conds(6)
    baseline = sample(model, positive, negative)
    off = inject(node, model, selected, weight=0.0)
    assert torch.equal(sample(off, positive, negative), baseline)
    on = inject(node, model, selected, weight=1.0)
    keys = set(on.model_options["transformer_options"]["patches_replace"]["attn1"])
    # every self-attention of the tiny model is 320 wide: levels 1 and 2 (2 + 2 and 10 + 10 blocks), middle, decoder
    assert {("input", 4, 1), ("input", 8, 9), ("middle", 0, 0), ("output", 0, 0), ("output", 5, 0)} <= keys
    assert len(keys) == 24 + 1 + 6
    assert not torch.allclose(sample(on, positive, negative), baseline)
    assert model.model_options == options


def test_clip_vision_tokens_as_sdxl_cross_attention_context(node, tiny_sdxl_inpaint, tmp_path):
    from exemplar_dev.host import pack_submodule

    model = tiny_sdxl_inpaint[0]
    clip_vision = tiny_clip_vision(tmp_path)
    image = torch.rand(1, 56, 56, 3, generator=torch.Generator().manual_seed(7))
    tokens = (
        node("ExemplarReferenceEncodeCLIPVision")
        .execute(clip_vision=clip_vision, reference=image, tokens="patches", crop="center")
        .result[0]
    )
    selected = (
        node("ExemplarTokenSelectTopK")
        .execute(tokens=tokens, k=4, criterion="norm", selection="top_k", candidate_pool=96, mask_threshold=0.5)
        .result[0]
    )
    projection = pack_submodule("models.dreaminpainter.token_projection").TokenProjection(64, SDXL_CONTEXT_DIM)
    positive, negative = inpaint_conds(8)
    cross = node("ExemplarReferenceCrossAttention")
    silent = cross.execute(conditioning=positive, tokens=selected, mode="append", weight=1.0, projection=projection)
    silent = silent.result[0]
    assert torch.equal(silent[0][0], positive[0][0])
    assert torch.equal(sample(model, silent, negative), sample(model, positive, negative))
    with torch.no_grad():
        projection.gate.fill_(1.0)
    appended = cross.execute(
        conditioning=positive, tokens=selected, mode="append", weight=1.0, projection=projection
    ).result[0]
    context, extra = appended[0]
    assert context.shape == (1, 6 + 4, SDXL_CONTEXT_DIM)
    assert extra["pooled_output"] is positive[0][1]["pooled_output"] and extra["width"] == 64
    with torch.no_grad():
        torch.testing.assert_close(context[:, 6:], projection(selected.tokens))
    assert not torch.allclose(sample(model, appended, negative), sample(model, positive, negative))
