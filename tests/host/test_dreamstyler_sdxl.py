"""DreamStyler on SDXL: staged CLIP-L + bigG vectors per stage, through real ComfyUI on the tiny SDXL checkpoint."""

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_sdxl_base import TINY_SDXL_NAME

pytestmark = pytest.mark.slow  # every SDXL text encode runs the full-size bigG tower


@pytest.fixture(scope="module")
def se(comfy):
    return pack_submodule("models.dreamstyler.staged_embedding")


@pytest.fixture(scope="module")
def embeddings_clip(comfy, tmp_path_factory):
    """(folder, CLIP): the tiny SDXL checkpoint's CLIP, looking `embedding:name` up in a folder of this module."""
    folder = tmp_path_factory.mktemp("sdxl_embeddings")
    path = comfy.folder_paths.get_full_path_or_raise("checkpoints", TINY_SDXL_NAME)
    clip = pack_sd().load_checkpoint_guess_config(
        path, output_vae=False, output_clip=True, output_model=False, embedding_directory=[str(folder)]
    )[1]
    return folder, clip


def pack_sd():
    import comfy.sd

    return comfy.sd


def sdxl_embedding(se, stages=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return se.StagedEmbedding(
        "<sks1>",
        torch.randn(stages, 1, 768, generator=g) * 0.05,
        base="sdxl",
        clip_g=torch.randn(stages, 1, 1280, generator=g) * 0.05,
    )


def test_stage_k_uses_vector_k_on_both_encoders(node, embeddings_clip, se):
    """Entry k is exactly ComfyUI's own encode of stage k saved as a plain SDXL embedding {clip_l, clip_g}."""
    from safetensors.torch import save_file

    folder, clip = embeddings_clip
    emb = sdxl_embedding(se, seed=1)
    text = "A painting of a dog in the style of <sks1>"
    staged = node("ExemplarDreamStylerTextEncode").execute(clip=clip, staged_embedding=emb, text=text).result[0]
    assert len(staged) == 2
    for k in range(2):
        save_file({"clip_l": emb.vectors[k], "clip_g": emb.clip_g[k]}, str(folder / f"sdxl_stage{k}.safetensors"))
        reference = node("CLIPTextEncode")().encode(clip, text.replace("<sks1>", f"embedding:sdxl_stage{k}"))[0]
        assert torch.equal(staged[k][0], reference[0][0])
        assert torch.equal(staged[k][1]["pooled_output"], reference[0][1]["pooled_output"])
    # both halves of the context change with the stage: CLIP-L (first 768 channels) and bigG (the other 1280)
    assert not torch.equal(staged[0][0][..., :768], staged[1][0][..., :768])
    assert not torch.equal(staged[0][0][..., 768:], staged[1][0][..., 768:])
    assert not torch.equal(staged[0][1]["pooled_output"], staged[1][1]["pooled_output"])


def test_sd1_embedding_on_sdxl_clip_is_refused(node, embeddings_clip, se):
    _, clip = embeddings_clip
    emb = se.StagedEmbedding("<sks1>", torch.zeros(2, 1, 768))
    with pytest.raises(ValueError, match="768-dim.*clip_g"):
        node("ExemplarDreamStylerTextEncode").execute(clip=clip, staged_embedding=emb, text="a <sks1>")


def test_sdxl_embedding_on_sd1_clip_is_refused(node, tiny_sd15, se):
    with pytest.raises(ValueError, match="SDXL embedding"):
        node("ExemplarDreamStylerTextEncode").execute(
            clip=tiny_sd15[1], staged_embedding=sdxl_embedding(se), text="a <sks1>"
        )


def test_style_context_guidance_on_sdxl_reduces_to_stock_ksampler(node, tiny_sdxl, se):
    """The four SDXL conditionings through the style-and-context sampler; with λs = λc = 0 it is the stock
    KSampler of (full, negative) at λn, bit for bit."""
    model, clip, _ = tiny_sdxl
    emb = sdxl_embedding(se, seed=2)
    prompts = pack_submodule("models.dreamstyler.context_prompts")
    templates = dict(
        template=prompts.DEFAULT_TEMPLATE,
        context_template=prompts.DEFAULT_CONTEXT_TEMPLATE,
        style_template=prompts.DEFAULT_STYLE_TEMPLATE,
    )
    encode = node("ExemplarDreamStylerStyleContextEncode")
    full, context, style, negative = encode.execute(
        clip=clip, staged_embedding=emb, caption="a dog", negative="blurry", model=model, **templates
    ).result
    assert len(full) == 2 and len(style) == 2 and len(context) == 1
    assert full[0][0].shape == (1, 77, 2048) and full[0][1]["pooled_output"].shape == (1, 1280)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    common = dict(seed=3, steps=2, sampler_name="euler", scheduler="normal", latent_image=latent, denoise=1.0)
    ours = node("ExemplarStyleContextKSampler").execute(
        model=model, positive=full, context=context, style=style, negative=negative,
        neg_scale=4.0, style_scale=0.0, context_scale=0.0, form="official", **common,
    ).result[0]["samples"]
    stock = node("KSampler")().sample(
        model, 3, 2, 4.0, "euler", "normal", full, negative, latent, denoise=1.0
    )[0]["samples"]
    assert torch.equal(ours, stock)
    styled = node("ExemplarStyleContextKSampler").execute(
        model=model, positive=full, context=context, style=style, negative=negative,
        neg_scale=4.0, style_scale=1.0, context_scale=2.0, form="official", **common,
    ).result[0]["samples"]
    assert torch.isfinite(styled).all() and not torch.equal(styled, stock)


def test_differentiable_sdxl_encoder_equals_comfyui_encode(tiny_sdxl, equal_up_to_rounding):
    training = pack_submodule("nodes.common.training")
    clip = tiny_sdxl[1]
    with torch.no_grad():
        context, pooled = training.SDXLTextEncoder(clip)(["a photo of a dog"])
        out = clip.encode_from_tokens(clip.tokenize("a photo of a dog"), return_pooled=True, return_dict=True)
    equal_up_to_rounding(context, out["cond"], roundings=32, dtype=torch.float16)
    equal_up_to_rounding(pooled, out["pooled_output"], roundings=33, dtype=torch.float16)


def test_trainer_learns_both_encoders_vectors_and_writes_sdxl_files(node, tiny_sdxl, model_folder, se):
    model, clip, vae = tiny_sdxl
    folder = model_folder("embeddings")
    images = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(4))
    embedding, token, report = node("ExemplarDreamStylerTrain").execute(
        model=model, clip=clip, vae=vae, images=images, captions="a dog", token="<sks1>",
        template="A painting of {caption} in the style of {token}", stages=2, steps=2, learning_rate=0.05,
        batch_size=1, flip_probability=0.0, seed=0, init_word="painting", vectors_per_stage=1,
        name="sdxl_style", overwrite=False,
    ).result
    assert token == "<sks1>" and embedding.is_sdxl and embedding.dims() == {"clip_l": 768, "clip_g": 1280}
    trainer = pack_submodule("nodes.dreamstyler.trainer")
    init = trainer.init_vectors_from_word(clip, "painting", 2, 1)
    trained = torch.cat([embedding.vectors, embedding.clip_g], dim=-1)
    moved = (trained - init).abs().amax(dim=(1, 2))  # per stage; a step trains the stage its timestep falls in
    assert moved.max() > 0
    assert (embedding.vectors - init[..., :768]).abs().max() > 0  # CLIP-L part trained
    assert (embedding.clip_g - init[..., 768:]).abs().max() > 0  # bigG part trained
    for name in ("sdxl_style.safetensors", "sdxl_style.bin"):
        loaded = se.load(folder / name)
        assert torch.equal(loaded.vectors, embedding.vectors) and torch.equal(loaded.clip_g, embedding.clip_g)
    official = torch.load(str(folder / "sdxl_style.bin"), weights_only=True)
    assert set(official["<sks1>-T0"]) == {"clip_l", "clip_g"}
    assert "wrote sdxl_style.safetensors" in report
