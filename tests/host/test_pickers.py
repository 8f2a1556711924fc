"""Pickers list only files of their kind (told from headers, no tensors read); wrong-kind errors say what the file
is, what was expected and where such a file comes from, with no tensor names and no terminal codes."""

import pytest
import torch
from safetensors.torch import save_file


def options(comfy, node_id, input_id):
    schema = comfy.nodes.NODE_CLASS_MAPPINGS[node_id].define_schema()
    return next(i for i in schema.inputs if i.id == input_id).options


def header(kind):
    return {"exemplar.kind": kind, "exemplar.version": "1"}


def test_the_three_exemplar_loaders_list_only_their_kind(comfy, model_folder):
    folder = model_folder("exemplar")
    for name, kind in (("adapter", "dtc_adapter"), ("scorer", "token_scorer"), ("projection", "token_projection")):
        save_file({"w": torch.zeros(2)}, str(folder / f"mine_{name}.safetensors"), metadata=header(kind))
    save_file({"w": torch.zeros(2)}, str(folder / "mine_bare.safetensors"))
    (folder / "mine_notes.ckpt").write_bytes(b"not a model")
    (folder / "mine_sub").mkdir()
    save_file({"w": torch.zeros(2)}, str(folder / "mine_sub" / "deep.safetensors"), metadata=header("dtc_adapter"))

    def mine(node_id, input_id):
        return [n for n in options(comfy, node_id, input_id) if n.startswith("mine_")]

    assert mine("ExemplarDtCAdapterLoader", "adapter_name") == ["mine_adapter.safetensors", "mine_sub/deep.safetensors"]
    assert mine("ExemplarLoadTokenScorer", "scorer_name") == ["mine_scorer.safetensors"]
    assert mine("ExemplarLoadTokenProjection", "projection_name") == ["mine_projection.safetensors"]
    resumable = options(comfy, "ExemplarDtCTrain", "resume_from")
    assert resumable[0] == "none" and "mine_adapter.safetensors" in resumable
    assert "mine_scorer.safetensors" not in resumable


def test_a_wrong_kind_says_what_it_is_and_where_to_get_the_right_one(comfy, model_folder):
    folder = model_folder("exemplar")
    save_file({"proj.weight": torch.zeros(2, 2)}, str(folder / "p.safetensors"), metadata=header("token_projection"))
    save_file({"a.b.c": torch.zeros(2)}, str(folder / "bare.safetensors"))
    nodes = comfy.nodes.NODE_CLASS_MAPPINGS
    with pytest.raises(ValueError) as caught:
        nodes["ExemplarLoadTokenScorer"].execute(scorer_name="p.safetensors")
    message = str(caught.value)
    assert message == (
        "p.safetensors is not a DreamInpainter token scorer: it is a DreamInpainter token projection (exemplar.kind = "
        "'token_projection'). Where a DreamInpainter token scorer comes from (download or training): docs/weights.md, "
        'section "DreamInpainter".'
    )
    with pytest.raises(ValueError) as caught:
        nodes["ExemplarDtCAdapterLoader"].execute(adapter_name="bare.safetensors")
    message = str(caught.value)
    assert "bare.safetensors is not a Diffuse to Choose adapter: it carries no comfyui-exemplar header" in message
    assert 'docs/weights.md, section "Diffuse to Choose"' in message and "a.b.c" not in message


def test_one_entry_per_dreamstyler_style_and_no_other_embeddings(comfy, model_folder):
    folder = model_folder("embeddings")
    stages = {"<s>-T0": torch.zeros(8), "<s>-T1": torch.zeros(8)}
    save_file(stages, str(folder / "both.safetensors"), metadata=header("dreamstyler_staged_embedding"))
    torch.save(stages, folder / "both.bin")
    torch.save(stages, folder / "official.bin")
    save_file(stages, str(folder / "headerless.safetensors"))
    save_file({"emb_params": torch.zeros(1, 8)}, str(folder / "plain_ti.safetensors"))
    torch.save({"string_to_param": {"*": torch.zeros(1, 8)}}, folder / "a1111.pt")
    listed = options(comfy, "ExemplarLoadDreamStylerEmbedding", "embedding_name")
    mine = {"both.safetensors", "both.bin", "official.bin", "headerless.safetensors", "plain_ti.safetensors"}
    mine.add("a1111.pt")
    assert sorted(set(listed) & mine) == ["both.safetensors", "headerless.safetensors", "official.bin"]


def test_the_pbe_loader_lists_only_paint_by_example_files(comfy, model_folder):
    folder = model_folder("checkpoints")
    pbe = {"cond_stage_model.mapper.resblocks.0.attn.c_qkv.weight": torch.zeros(2), "learnable_vector": torch.zeros(2)}
    plain = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}
    save_file(pbe, str(folder / "pbe_mine.safetensors"))
    save_file(plain, str(folder / "pbe_not_sd15.safetensors"))
    save_file(plain, str(folder / "pbe_converted.safetensors"), metadata=header("paint_by_example_checkpoint"))
    torch.save({"state_dict": pbe}, folder / "pbe_official.ckpt")
    torch.save({"state_dict": plain}, folder / "pbe_not_sd15.ckpt")
    listed = [n for n in options(comfy, "ExemplarPbECheckpointLoader", "ckpt_name") if n.startswith("pbe_")]
    assert listed == ["pbe_converted.safetensors", "pbe_mine.safetensors", "pbe_official.ckpt"]
    convertible = [n for n in options(comfy, "ExemplarPbEConvertCheckpoint", "ckpt_name") if n.startswith("pbe_")]
    assert convertible == ["pbe_official.ckpt"]


def test_a_plain_checkpoint_in_the_pbe_loader_is_described_in_words(comfy, model_folder):
    folder = model_folder("checkpoints")
    plain = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(10, 8),
    }
    save_file(plain, str(folder / "sd15.safetensors"))
    with pytest.raises(ValueError) as caught:
        comfy.nodes.NODE_CLASS_MAPPINGS["ExemplarPbECheckpointLoader"].execute(ckpt_name="sd15.safetensors")
    message = str(caught.value)
    assert message.startswith("sd15.safetensors is not a Paint-by-Example checkpoint (the UNet takes 4 input channels")
    assert "found a CLIP text encoder (a text-to-image Stable Diffusion checkpoint)" in message
    assert 'docs/weights.md, section "Paint by Example"' in message
    assert "model.diffusion_model" not in message and "cond_stage_model" not in message and "\x1b" not in message


class Payload:
    pass


def test_a_pickled_object_is_refused_without_terminal_codes(comfy, model_folder):
    folder = model_folder("checkpoints")
    torch.save({"state_dict": {"a": torch.zeros(1)}, "extra": Payload()}, folder / "o.ckpt")
    with pytest.raises(ValueError) as caught:
        comfy.nodes.NODE_CLASS_MAPPINGS["ExemplarPbECheckpointLoader"].execute(ckpt_name="o.ckpt")
    message = str(caught.value)
    assert "needs arbitrary unpickling" in message and f"{__name__}.Payload, not only tensors" in message
    assert "\x1b" not in message and caught.value.__cause__ is None
