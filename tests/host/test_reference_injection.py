import copy

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_sdxl import tiny_sdxl_conditioning, tiny_sdxl_model


@pytest.fixture(scope="module")
def unet_tokens(node, tiny_sd15):
    model, _, vae = tiny_sd15
    encode = node("ExemplarReferenceEncodeUNet")
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    return encode.execute(
        model=model, vae=vae, reference=image, block="auto", timestep=0, resolution=64, crop="center"
    ).result[0]


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


def sample(model, positive, negative, size=16, steps=2, cfg=5.0):
    import comfy.sample

    latent = torch.zeros(1, 4, size, size)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        model, noise, steps, cfg, "euler", "normal", positive, negative, latent, disable_pbar=True, seed=0
    )


def text(seed, dim=768):
    return [[torch.randn(1, 7, dim, generator=torch.Generator().manual_seed(seed)), {}]]


def test_weight_zero_samples_exactly_like_the_unpatched_model_and_input_is_untouched(node, tiny_sd15, unet_tokens):
    model = tiny_sd15[0]
    options = copy.deepcopy(model.model_options)
    selected = node("ExemplarTokenSelectTopK").execute(
        tokens=unet_tokens, k=6, criterion="saliency", selection="top_k", candidate_pool=96, mask_threshold=0.5
    ).result[0]
    baseline = sample(model, text(1), text(2))
    off = inject(node, model, selected, weight=0.0)
    assert off is not model and off.model_options["transformer_options"]["patches_replace"]["attn1"]
    assert torch.equal(sample(off, text(1), text(2)), baseline)
    on = inject(node, model, selected, weight=1.0)
    changed = sample(on, text(1), text(2))
    assert not torch.allclose(changed, baseline)
    assert model.model_options == options  # the input MODEL carries no patch
    assert torch.equal(sample(model, text(1), text(2)), baseline)
    # tokens of dim 640 go to the 640-wide transformers only: input.3, middle, output.0/1 of the tiny UNet
    keys = sorted(on.model_options["transformer_options"]["patches_replace"]["attn1"])
    assert keys == [("input", 3, 0), ("middle", 0, 0), ("output", 0, 0), ("output", 1, 0)]
    only_source = inject(node, model, selected, blocks="source_block")
    assert sorted(only_source.model_options["transformer_options"]["patches_replace"]["attn1"]) == [("input", 3, 0)]


def test_replacement_matches_the_formula_per_pass_and_range(node, tiny_sd15, unet_tokens):
    import comfy.ldm.modules.attention as attention

    from exemplar_dev.oracles import attention_with_reference as ref_attention

    model = tiny_sd15[0]
    patched = inject(node, model, unet_tokens, weight=0.5, start_percent=0.2, end_percent=0.6, cond_only=True)
    replacement = patched.model_options["transformer_options"]["patches_replace"]["attn1"][("input", 3, 0)]
    block = model.model.diffusion_model.input_blocks[3][1].transformer_blocks[0]
    assert replacement.block is block
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(6, 16, 640, generator=g) for _ in range(3))
    sampling = model.get_model_object("model_sampling")
    inside = torch.tensor([sampling.percent_to_sigma(0.4)] * 6)
    # chunks as a 3-prediction guider batches them: negative (1), positive (0), a further prediction (2)
    options = {"n_heads": 8, "attn_precision": None, "cond_or_uncond": [1, 0, 2], "sigmas": inside}
    with torch.no_grad():
        out = replacement(q, k, v, options)
        normed = block.norm1(unet_tokens.tokens)
        k_ref, v_ref = block.attn1.to_k(normed), block.attn1.to_v(normed)
        plain = attention.optimized_attention(q, k, v, 8)
        expected_cond = ref_attention(q[2:], k[2:], v[2:], k_ref.expand(4, -1, -1), v_ref.expand(4, -1, -1), 8, 0.5)
    assert torch.equal(out[:2], plain[:2])  # unconditional rows: the unpatched attention, bit for bit
    torch.testing.assert_close(out[2:], expected_cond, rtol=1e-4, atol=1e-5)  # positive and further prediction
    outside = dict(options, sigmas=torch.tensor([sampling.percent_to_sigma(0.9)] * 6))
    with torch.no_grad():
        assert torch.equal(replacement(q, k, v, outside), plain)


def test_chaining_foreign_replacements_and_dim_errors(node, tiny_sd15, unet_tokens):
    model = tiny_sd15[0]
    twice = inject(node, inject(node, model, unet_tokens, weight=0.5), unet_tokens, weight=2.0)
    replacement = twice.model_options["transformer_options"]["patches_replace"]["attn1"][("input", 3, 0)]
    assert [s.weight for s in replacement.sets] == [0.5, 2.0]
    foreign = model.clone()
    foreign.set_model_attn1_replace(lambda q, k, v, extra: q, "input", 3, 0)
    with pytest.raises(ValueError, match=r"block \('input', 3, 0\) is already replaced by another node"):
        inject(node, foreign, unet_tokens)
    tokens_type = pack_submodule("models.dreaminpainter.tokens")
    odd = tokens_type.ExemplarTokens(torch.zeros(1, 4, 100), torch.arange(4)[None])
    with pytest.raises(
        ValueError,
        match=r"the reference tokens have dim 100, but this model's self-attention blocks have dims \[320, 640\]",
    ):
        inject(node, model, odd)


def test_sdxl_shaped_model_encode_select_inject(node, tiny_sd15):
    vae = tiny_sd15[2]
    model = tiny_sdxl_model()
    positive, negative = tiny_sdxl_conditioning(1), tiny_sdxl_conditioning(2)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(5))
    encode = node("ExemplarReferenceEncodeUNet")
    with pytest.raises(ValueError, match="needs a text conditioning"):
        encode.execute(model=model, vae=vae, reference=image, block="auto", timestep=0, resolution=64, crop="center")
    tokens, blocks = encode.execute(
        model=model,
        vae=vae,
        reference=image,
        block="auto",
        timestep=0,
        resolution=64,
        crop="center",
        conditioning=positive,
    ).result
    assert tokens.source["block"] == "input.3" and tokens.tokens.shape == (1, 16, 128)
    selected = node("ExemplarTokenSelectTopK").execute(
        tokens=tokens, k=4, criterion="norm", selection="farthest_point", candidate_pool=8, mask_threshold=0.5
    ).result[0]
    baseline = sample(model, positive, negative)
    assert torch.equal(sample(inject(node, model, selected, weight=0.0), positive, negative), baseline)
    patched = inject(node, model, selected, weight=1.0)
    keys = sorted(patched.model_options["transformer_options"]["patches_replace"]["attn1"])
    assert ("input", 3, 1) in keys and ("middle", 0, 0) in keys  # two transformer blocks per layer, all 128 wide
    assert not torch.allclose(sample(patched, positive, negative), baseline)


def test_cross_attention_tokens(node, tiny_sd15, unet_tokens):
    cross = node("ExemplarReferenceCrossAttention")
    loader = node("ExemplarLoadTokenProjection")
    projection = loader.execute(projection_name="exemplar_tiny_token_projection_640_768.safetensors").result[0]
    assert projection.is_silent
    positive = text(1)
    untrained = cross.execute(
        conditioning=positive, tokens=unet_tokens, mode="append", weight=1.0, projection=projection
    ).result[0]
    assert torch.equal(untrained[0][0], positive[0][0])
    model = tiny_sd15[0]
    assert torch.equal(sample(model, untrained, text(2)), sample(model, positive, text(2)))
    with pytest.raises(
        ValueError, match="tokens have dim 640 and the conditioning has dim 768: connect a token projection"
    ):
        cross.execute(conditioning=positive, tokens=unet_tokens, mode="append", weight=1.0)
    trained = copy.deepcopy(projection)
    with torch.no_grad():
        trained.gate.fill_(1.0)
    appended = cross.execute(
        conditioning=positive, tokens=unet_tokens, mode="append", weight=0.5, projection=trained
    ).result[0]
    with torch.no_grad():
        expected = 0.5 * trained(unet_tokens.tokens)
    assert appended[0][0].shape == (1, 7 + 16, 768)
    torch.testing.assert_close(appended[0][0][:, 7:], expected)
    replaced = cross.execute(
        conditioning=positive, tokens=unet_tokens, mode="replace", weight=1.0, projection=trained
    ).result[0]
    assert replaced[0][0].shape == (1, 16, 768)
    zero = cross.execute(
        conditioning=positive, tokens=unet_tokens, mode="replace", weight=0.0, projection=trained
    ).result[0]
    assert torch.equal(zero[0][0], positive[0][0])
    assert not torch.allclose(sample(model, appended, text(2)), sample(model, positive, text(2)))


def test_token_scorer_loader_feeds_the_selector(node, unet_tokens):
    scorer = node("ExemplarLoadTokenScorer").execute(scorer_name="exemplar_tiny_token_scorer_640.safetensors").result[0]
    picked = (
        node("ExemplarTokenSelectTopK")
        .execute(
            tokens=unet_tokens,
            k=5,
            criterion="learned",
            selection="top_k",
            candidate_pool=96,
            mask_threshold=0.5,
            scorer=scorer,
        )
        .result[0]
    )
    with torch.no_grad():
        expected = torch.argsort(scorer(unet_tokens.tokens)[0], descending=True, stable=True)[:5]
    assert torch.equal(picked.positions[0], expected)
    with pytest.raises(
        ValueError, match="is not a DreamInpainter token scorer: it is a DreamInpainter token projection"
    ):
        node("ExemplarLoadTokenScorer").execute(scorer_name="exemplar_tiny_token_projection_640_768.safetensors")


def test_a_batch_of_references_goes_to_the_matching_latents(node, tiny_sd15):
    from comfy.sample import sample as comfy_sample

    model, _, vae = tiny_sd15
    encode = node("ExemplarReferenceEncodeUNet")
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(8))
    tokens = encode.execute(
        model=model, vae=vae, reference=images, block="auto", timestep=0, resolution=64, crop="center"
    ).result[0]
    noise = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(9))
    latent = torch.zeros(2, 4, 16, 16)

    def run(patched, rows):
        return comfy_sample(
            patched, noise[rows], 2, 5.0, "euler", "normal", text(1), text(2), latent[rows], disable_pbar=True, seed=0
        )

    both = run(inject(node, model, tokens, weight=1.5), slice(0, 2))
    Tokens = pack_submodule("models.dreaminpainter.tokens").ExemplarTokens
    # latents reach ~600 here; batched vs single runs differ by float noise only (~1e-3 even unpatched),
    # while pairing a latent with the other reference changes it by tens
    for row in (0, 1):
        for ref in (0, 1):
            single = Tokens(tokens.tokens[ref : ref + 1], tokens.positions[ref : ref + 1], tokens.grid)
            alone = run(inject(node, model, single, weight=1.5), slice(row, row + 1))
            difference = (both[row : row + 1] - alone).abs().max()
            assert difference < 1e-2 if ref == row else difference > 1.0
    with pytest.raises(ValueError, match="the reference tokens have batch 2; the latent batch is 3"):
        comfy_sample(
            inject(node, model, tokens),
            torch.randn(3, 4, 16, 16),
            1,
            5.0,
            "euler",
            "normal",
            text(1),
            text(2),
            torch.zeros(3, 4, 16, 16),
            disable_pbar=True,
            seed=0,
        )
