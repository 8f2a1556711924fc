"""DreamStyler loader, staged text encode and prompts, through real ComfyUI on the tiny SD1.5 model."""

import copy

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import TINY_SD15_NAME


@pytest.fixture
def embeddings_clip(model_folder, node):
    """(folder, CLIP): a temporary embeddings folder and the tiny CLIP loaded while it is registered (a CLIP looks
    `embedding:name` up in the folders registered when it was loaded)."""
    folder = model_folder("embeddings")
    return folder, node("CheckpointLoaderSimple")().load_checkpoint(TINY_SD15_NAME)[1]


@pytest.fixture(scope="module")
def se(comfy):
    return pack_submodule("models.dreamstyler.staged_embedding")


@pytest.fixture(scope="module")
def staged_encoding(comfy):
    return pack_submodule("nodes.dreamstyler.staged_encoding")


def embedding(se, stages=6, per_stage=1, dim=768, token="<sks1>", seed=0):
    g = torch.Generator().manual_seed(seed)
    return se.StagedEmbedding(token, torch.randn(stages, per_stage, dim, generator=g) * 0.05)


def test_loader_reads_official_and_safetensors_files(node, se, model_folder):
    emb = embedding(se, stages=4, seed=1)
    folder = model_folder("embeddings")
    se.save_official(emb, folder / "test_dreamstyler_official.bin")
    se.save_safetensors(emb, folder / "test_dreamstyler_ours.safetensors")
    loader = node("ExemplarLoadDreamStylerEmbedding")
    for name in ("test_dreamstyler_official.bin", "test_dreamstyler_ours.safetensors"):
        loaded, token, stages = loader.execute(embedding_name=name).result
        assert token == "<sks1>" and stages == 4
        assert torch.equal(loaded.vectors, emb.vectors)


def test_stage_entry_equals_comfyui_own_embedding_path(node, embeddings_clip, se, staged_encoding):
    """Entry k is exactly what CLIPTextEncode gives with stage k's vector saved as a plain embedding file."""
    folder, clip = embeddings_clip
    emb = embedding(se, stages=3, seed=2)
    staged = node("ExemplarDreamStylerTextEncode").execute(
        clip=clip, staged_embedding=emb, text="A painting of a dog in the style of <sks1>, oil"
    ).result[0]
    assert len(staged) == 3
    for k in range(3):
        torch.save({"emb_params": emb.vectors[k]}, folder / f"test_dreamstyler_stage{k}.pt")
        reference = node("CLIPTextEncode")().encode(
            clip, f"A painting of a dog in the style of embedding:test_dreamstyler_stage{k}, oil"
        )[0]
        torch.testing.assert_close(staged[k][0], reference[0][0], rtol=0, atol=0)
        torch.testing.assert_close(staged[k][1]["pooled_output"], reference[0][1]["pooled_output"], rtol=0, atol=0)
        assert staged[k][1][staged_encoding.STAGE_KEY] == (k, 3)
    assert not torch.equal(staged[0][0], staged[1][0])


def test_several_vectors_per_stage_and_weights(node, embeddings_clip, se):
    folder, clip = embeddings_clip
    emb = embedding(se, stages=2, per_stage=3, seed=3)
    staged = (
        node("ExemplarDreamStylerTextEncode")
        .execute(clip=clip, staged_embedding=emb, text="(<sks1>:1.3) castle")
        .result[0]
    )
    for k in range(2):
        torch.save({"emb_params": emb.vectors[k]}, folder / f"test_dreamstyler_multi{k}.pt")
        reference = node("CLIPTextEncode")().encode(clip, f"(embedding:test_dreamstyler_multi{k}:1.3) castle")[0]
        torch.testing.assert_close(staged[k][0], reference[0][0], rtol=0, atol=0)


def test_tokens_hold_the_vectors_where_the_token_stands(tiny_sd15, se, staged_encoding):
    clip = tiny_sd15[1]
    emb = embedding(se, stages=2, per_stage=2, seed=4)
    tokens = staged_encoding.tokenize_with_vectors(clip, "style of <sks1>, blue", "<sks1>", emb.vectors[1])["l"][0]
    plain = clip.tokenize("style of , blue")["l"][0]
    tensors = [i for i, (t, _) in enumerate(tokens) if torch.is_tensor(t)]
    assert tensors == [3, 4]
    assert torch.equal(tokens[3][0], emb.vectors[1][0]) and torch.equal(tokens[4][0], emb.vectors[1][1])
    assert [t for t, _ in tokens[:3] + tokens[5:]] == [t for t, _ in plain[:-2]]
    assert staged_encoding.contains_placeholder(
        "in the style of sks.", "sks"
    ) and not staged_encoding.contains_placeholder("asks", "sks")


def test_staged_encode_needs_no_private_tokenizer_lookup(node, tiny_sd15, se):
    """Newer ComfyUI's SDTokenizer._try_get_embedding returns (embed, name, leftover), 0.3.75's (embed, leftover), so
    a two-value replacement of it raised ValueError there. A CLIP whose tokenizer has the newer signature, records
    every call and refuses a replacement of the method encodes the same staged conditioning."""
    clip = tiny_sd15[1]
    emb = embedding(se, stages=2, per_stage=2, seed=6)
    text = "(a castle:1.1) in the style of <sks1>, <sks1>"
    encode = node("ExemplarDreamStylerTextEncode")
    expected = encode.execute(clip=clip, staged_embedding=emb, text=text).result[0]
    calls = []
    newer = clip.clone()
    newer.tokenizer = copy.copy(clip.tokenizer)
    for name, sub in list(vars(newer.tokenizer).items()):
        if not hasattr(sub, "embedding_size"):
            continue

        class NewerSignature(type(sub)):
            def _try_get_embedding(self, embedding_name):
                calls.append(embedding_name)
                embed, leftover = super()._try_get_embedding(embedding_name)
                return embed, embedding_name.split()[0], leftover

            def __setattr__(self, attr, value):
                if attr == "_try_get_embedding":
                    raise AssertionError("the staged encode replaced the tokenizer's private embedding lookup")
                super().__setattr__(attr, value)

        simulated = copy.copy(sub)
        simulated.__class__ = NewerSignature
        setattr(newer.tokenizer, name, simulated)
    got = encode.execute(clip=newer, staged_embedding=emb, text=text).result[0]
    assert calls == [] and len(got) == len(expected) == 2
    for (a, _), (b, _) in zip(got, expected):
        assert torch.equal(a, b)


def test_a_prompt_using_the_marker_word_still_gets_its_vectors(node, embeddings_clip, se, staged_encoding):
    folder, clip = embeddings_clip
    emb = embedding(se, stages=1, seed=7)
    marker = staged_encoding.MARKER_WORDS[0]
    staged = node("ExemplarDreamStylerTextEncode").execute(
        clip=clip, staged_embedding=emb, text=f"{marker} in the style of <sks1>"
    ).result[0]
    torch.save({"emb_params": emb.vectors[0]}, folder / "test_dreamstyler_marker.pt")
    reference = node("CLIPTextEncode")().encode(clip, f"{marker} in the style of embedding:test_dreamstyler_marker")[0]
    torch.testing.assert_close(staged[0][0], reference[0][0], rtol=0, atol=0)
    every = " ".join(staged_encoding.MARKER_WORDS) + " <sks1>"
    with pytest.raises(ValueError, match="the prompt already uses every marker word"):
        staged_encoding.tokenize_with_vectors(clip, every, "<sks1>", emb.vectors[0])


def test_clear_errors(node, tiny_sd15, se):
    clip = tiny_sd15[1]
    encode = node("ExemplarDreamStylerTextEncode")
    with pytest.raises(ValueError, match="staged_embedding has 1024-dim vectors .* takes 768-dim \\(clip_l\\)"):
        encode.execute(clip=clip, staged_embedding=embedding(se, dim=1024), text="<sks1>")
    with pytest.raises(ValueError, match="does not contain the staged embedding's token '<sks1>'"):
        encode.execute(clip=clip, staged_embedding=embedding(se), text="a dog in the style of <sks2>")


def test_context_aware_prompts(node, se):
    prompts = node("ExemplarDreamStylerPrompts")
    full, context, style = prompts.execute(
        caption=" a dog on a sofa ",
        template="A painting of {caption} in the style of {token}",
        context_template="A painting of {caption}",
        style_template="A painting in the style of {token}",
        token="<x>",
        staged_embedding=embedding(se, token="<sks9>"),
    ).result
    assert full == "A painting of a dog on a sofa in the style of <sks9>"
    assert context == "A painting of a dog on a sofa"
    assert style == "A painting in the style of <sks9>"
    with pytest.raises(ValueError, match="context_template must not contain the style token"):
        prompts.execute(
            caption="a", template="{token}", context_template="{caption} {token}", style_template="{token}", token="<x>"
        )
    with pytest.raises(ValueError, match="template must contain \\{token\\}"):
        prompts.execute(
            caption="a", template="{caption}", context_template="{caption}", style_template="{token}", token="<x>"
        )


def test_style_context_encode_gives_three_conditionings(node, tiny_sd15, se):
    clip = tiny_sd15[1]
    emb = embedding(se, stages=2, seed=5)
    full, context, style, negative = node("ExemplarDreamStylerStyleContextEncode").execute(
        clip=clip,
        staged_embedding=emb,
        caption="a dog",
        template="A painting of {caption} in the style of {token}",
        context_template="A painting of {caption}",
        style_template="A painting in the style of {token}",
        negative="blurry",
    ).result
    encode = node("ExemplarDreamStylerTextEncode")
    expected_full = encode.execute(
        clip=clip, staged_embedding=emb, text="A painting of a dog in the style of <sks1>"
    ).result[0]
    expected_style = encode.execute(clip=clip, staged_embedding=emb, text="A painting in the style of <sks1>").result[0]
    plain = node("CLIPTextEncode")().encode(clip, "A painting of a dog")[0]
    plain_negative = node("CLIPTextEncode")().encode(clip, "blurry")[0]
    assert len(full) == len(style) == 2 and len(context) == len(negative) == 1
    for got, want in ((full, expected_full), (style, expected_style), (context, plain), (negative, plain_negative)):
        for (a, _), (b, _) in zip(got, want):
            assert torch.equal(a, b)
