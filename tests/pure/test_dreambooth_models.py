import pytest
import torch

from comfyui_exemplar.models.dreambooth.lora_file import (
    LoraPair,
    is_text_attention_projection,
    is_unet_attention_projection,
    kohya_name,
    load_lora_file,
    lora_metadata,
    lora_state_dict,
    read_lora_state_dict,
    save_lora_file,
    text_encoder_kohya_name,
)
from comfyui_exemplar.models.dreambooth.prior_preservation import prior_preservation_loss
from comfyui_exemplar.models.dreambooth.rare_token_identifier import is_candidate, rare_token_candidates, tokenisation


# ---- prior preservation ---------------------------------------------------------------------

def test_loss_is_instance_mse_plus_weighted_class_mse():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    out = prior_preservation_loss(pred, target, n_instance=2, prior_weight=0.5)
    instance = ((pred[:2] - target[:2]) ** 2).mean()
    prior = ((pred[2:] - target[2:]) ** 2).mean()
    torch.testing.assert_close(out.instance, instance)
    torch.testing.assert_close(out.prior, prior)
    torch.testing.assert_close(out.total, instance + 0.5 * prior)


def test_prior_weight_zero_and_no_class_half_are_plain_finetune():
    pred, target = torch.randn(4, 2), torch.zeros(4, 2)
    zero = prior_preservation_loss(pred, target, 2, prior_weight=0.0)
    torch.testing.assert_close(zero.total, (pred[:2] ** 2).mean())
    alone = prior_preservation_loss(pred[:2], target[:2], 2)
    assert alone.prior is None
    torch.testing.assert_close(alone.total, zero.total)


def test_gradient_of_class_half_scales_with_lambda():
    pred = torch.randn(4, 3, requires_grad=True)
    target = torch.zeros(4, 3)
    prior_preservation_loss(pred, target, 2, prior_weight=3.0).total.backward()
    # d/dpred of mean over the 6 class elements of pred^2, times lambda
    torch.testing.assert_close(pred.grad[2:], 3.0 * 2 * pred.detach()[2:] / 6)
    torch.testing.assert_close(pred.grad[:2], 2 * pred.detach()[:2] / 6)


def test_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match="n_instance must be in 1..3"):
        prior_preservation_loss(torch.zeros(3), torch.zeros(3), 0)
    with pytest.raises(ValueError, match="pred has shape"):
        prior_preservation_loss(torch.zeros(3), torch.zeros(2), 1)
    with pytest.raises(ValueError, match="prior_weight must be >= 0"):
        prior_preservation_loss(torch.zeros(3), torch.zeros(3), 1, -1)


# ---- rare-token identifiers -------------------------------------------------------------------

VOCAB = {
    "a</w>": 320, "dog</w>": 1929, "seal</w>": 45000, "sks</w>": 48136, "ohwx</w>": 47993, "zq</w>": 48500,
    "qzx</w>": 100, "xkc": 48300, "k9x</w>": 48400, "bnrt</w>": 49000, "trlkq</w>": 49100, "mrp</w>": 46000,
}


def fake_tokenize(text):
    """Whole words that are in VOCAB map to their id; anything else splits into two pieces."""
    ids = []
    for word in text.split():
        ids += [VOCAB[word + "</w>"]] if word + "</w>" in VOCAB else [1, 2]
    return ids


def test_candidates_follow_the_documented_criterion_rarest_first():
    found = rare_token_candidates(VOCAB, count=10, min_rank=40000)
    # seal: two vowels; xkc: not word-final; k9x: digit; zq: too short; trlkq: too long; qzx: frequent
    assert found == ["bnrt", "sks", "ohwx", "mrp"]
    assert rare_token_candidates(VOCAB, count=2, min_rank=47000) == ["bnrt", "sks"]


def test_round_trip_through_the_tokenizer_drops_multi_token_entries():
    def tokenize(text):
        return [1, 2] if text.endswith("sks") else fake_tokenize(text)

    assert rare_token_candidates(VOCAB, count=10, min_rank=40000, tokenize=tokenize) == ["bnrt", "ohwx", "mrp"]


def test_is_candidate_single_entries():
    assert is_candidate("sks</w>", 48136, 40000)
    assert not is_candidate("sks</w>", 48136, 48137)
    assert not is_candidate("muted</w>", 48000, 40000)


def test_tokenisation_reports_single_and_multi_token():
    inverse = {v: k for k, v in VOCAB.items()} | {1: "fo", 2: "o</w>"}
    one = tokenisation("sks", fake_tokenize, inverse)
    assert one.single_token and one.ids == (48136,) and "one token" in one.describe()
    two = tokenisation("foo", fake_tokenize, inverse)
    assert not two.single_token and two.pieces == ("fo", "o</w>") and "2 tokens" in two.describe()


def test_candidates_bad_count():
    with pytest.raises(ValueError, match="count must be >= 1"):
        rare_token_candidates(VOCAB, count=0)


# ---- LoRA file layout -------------------------------------------------------------------------

def test_target_predicates():
    assert is_unet_attention_projection("input_blocks.1.1.transformer_blocks.0.attn1.to_q")
    assert is_unet_attention_projection("diffusion_model.output_blocks.3.1.transformer_blocks.0.attn2.to_out.0")
    assert not is_unet_attention_projection("input_blocks.1.1.transformer_blocks.0.ff.net.2")
    assert not is_unet_attention_projection("input_blocks.1.1.proj_in")
    assert is_text_attention_projection("clip_l.transformer.text_model.encoder.layers.11.self_attn.out_proj")
    assert not is_text_attention_projection("clip_l.transformer.text_model.encoder.layers.11.mlp.fc1")


def test_kohya_names():
    assert (
        kohya_name("lora_unet_", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0")
        == "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0"
    )
    assert (
        text_encoder_kohya_name("clip_l.transformer.text_model.encoder.layers.3.self_attn.q_proj")
        == "lora_te_text_model_encoder_layers_3_self_attn_q_proj"
    )
    with pytest.raises(ValueError, match="without '.weight'"):
        kohya_name("lora_unet_", "a.weight")
    with pytest.raises(ValueError, match="not a CLIP text-model"):
        text_encoder_kohya_name("encoder.layers.0")


def test_state_dict_round_trip(tmp_path):
    g = torch.Generator().manual_seed(3)
    pair = LoraPair(torch.randn(4, 6, generator=g), torch.randn(5, 4, generator=g), alpha=2.0)
    sd = lora_state_dict({"lora_unet_x": pair})
    assert set(sd) == {"lora_unet_x.lora_down.weight", "lora_unet_x.lora_up.weight", "lora_unet_x.alpha"}
    assert sd["lora_unet_x.alpha"].item() == 2.0
    meta = lora_metadata(4, 2.0, step=7, extra={"instance_prompt": "a sks dog"})
    path = save_lora_file(tmp_path / "sub" / "x.safetensors", sd, meta)
    loaded, header = load_lora_file(path)
    assert header["exemplar.step"] == "7" and header["ss_network_dim"] == "4"
    assert header["exemplar.instance_prompt"] == "a sks dog"
    back = read_lora_state_dict(loaded)["lora_unet_x"]
    assert torch.equal(back.down, pair.down) and torch.equal(back.up, pair.up) and back.alpha == 2.0
    assert [p.name for p in path.parent.iterdir()] == ["x.safetensors"]


def test_incomplete_pair_is_an_error():
    with pytest.raises(ValueError, match="lacks its lora_up.weight"):
        read_lora_state_dict({"n.lora_down.weight": torch.zeros(2, 3)})
