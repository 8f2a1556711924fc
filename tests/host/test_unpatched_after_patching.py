"""After each patching node has run and its patched model has sampled, the unpatched model (the same object every
later graph gets from the loader's cache) samples bit for bit as it did before: self- and cross-attention reference
injection, the DtC adapter, the dual-guidance sampler and DreamStyler's staged encoding leave no trace."""

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_dtc import sample_inpaint


def stock_ksampler(node):
    def sample(model, positive, negative):
        latent = {"samples": torch.zeros(1, 4, 8, 8)}
        return node("KSampler")().sample(model, 0, 2, 5.0, "euler", "normal", positive, negative, latent)[0]["samples"]

    return sample


def text(seed, dim=768):
    return [[torch.randn(1, 5, dim, generator=torch.Generator(device="cpu").manual_seed(seed)), {}]]


@pytest.fixture(scope="module")
def tokens(node, tiny_sd15):
    model, _, vae = tiny_sd15
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    return node("ExemplarReferenceEncodeUNet").execute(
        model=model, vae=vae, reference=image, block="auto", timestep=0, resolution=64, crop="center"
    ).result[0]


def test_sd15_patching_nodes_leave_the_unpatched_model_exactly_as_fresh(node, tiny_sd15, tokens):
    model, clip, _ = tiny_sd15
    sample = stock_ksampler(node)
    positive, negative = text(1), text(2)
    fresh = sample(model, positive, negative)

    injected = node("ExemplarReferenceSelfAttention").execute(
        model=model, tokens=tokens, weight=1.0, start_percent=0.0, end_percent=1.0, cond_only=False,
        token_space="block_norm", blocks="matching_dim",
    ).result[0]  # fmt: skip
    assert not torch.equal(sample(injected, positive, negative), fresh)  # the patch acts
    assert torch.equal(sample(model, positive, negative), fresh)

    projection = node("ExemplarLoadTokenProjection").execute(
        projection_name="exemplar_tiny_token_projection_640_768.safetensors"
    ).result[0]
    crossed = node("ExemplarReferenceCrossAttention").execute(
        conditioning=positive, tokens=tokens, mode="append", weight=1.0, projection=projection
    ).result[0]
    sample(model, crossed, negative)
    assert torch.equal(sample(model, positive, negative), fresh)

    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    node("ExemplarDualGuidanceKSampler").execute(
        model=model, seed=0, steps=2, text_scale=5.0, middle_scale=2.0, sampler_name="euler", scheduler="normal",
        positive=positive, middle=text(3), negative=negative, latent_image=latent, denoise=1.0,
        guidance="dreaminpainter",
    )  # fmt: skip
    assert torch.equal(sample(model, positive, negative), fresh)

    se = pack_submodule("models.dreamstyler.staged_embedding")
    embedding = se.StagedEmbedding("<sks1>", torch.randn(4, 1, 768, generator=torch.Generator().manual_seed(0)))
    staged = node("ExemplarDreamStylerTextEncode").execute(
        clip=clip, staged_embedding=embedding, text="a dog in the style of <sks1>", model=model
    ).result[0]
    sample(model, staged, negative)
    assert torch.equal(sample(model, positive, negative), fresh)


def test_dtc_adapter_leaves_the_inpainting_model_exactly_as_fresh(node, tiny_inpaint):
    model = tiny_inpaint[0]
    fresh = sample_inpaint(model)
    adapter = node("ExemplarDtCAdapterCreate").execute(model=model, image_dim=32, seed=1).result[0]
    with torch.no_grad():
        for film in adapter.film:
            torch.nn.init.normal_(film.proj.weight, std=0.1)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 64, 64)
    mask[:, 8:56, 16:48] = 1
    hint = node("ExemplarDtCHint").execute(
        image=image, mask=mask, reference=image.flip(1), fit="stretch", min_side=8
    ).result[0]
    patched = node("ExemplarDtCApply").execute(model=model, adapter=adapter, hint=hint, strength=1.0).result[0]
    assert not torch.equal(sample_inpaint(patched), fresh)
    assert torch.equal(sample_inpaint(model), fresh)
