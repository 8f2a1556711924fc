"""Paint by Example, pure tier: exemplar encoder math, key layouts, mask/reference preprocessing, file safety."""

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from comfyui_exemplar.models.paint_by_example import checkpoint as ckpt
from comfyui_exemplar.models.paint_by_example import inputs
from comfyui_exemplar.models.paint_by_example.clip_vision_tower import (
    CLIPVisionTower,
    VisionTowerConfig,
    tower_config_from_state_dict,
)
from comfyui_exemplar.models.paint_by_example.encoder import (
    ExemplarEncoder,
    ExemplarEncoderConfig,
    MapperBlock,
    encoder_config_from_state_dict,
    encoder_from_state_dict,
)

TOWER = VisionTowerConfig(hidden_size=64, intermediate_size=96, num_layers=2, num_heads=1, patch_size=8, image_size=32)


def small_encoder(seed=0, blocks=2) -> ExemplarEncoder:
    torch.manual_seed(seed)
    encoder = ExemplarEncoder(ExemplarEncoderConfig(TOWER, blocks, 64, 1, 24))
    with torch.no_grad():
        for p in encoder.parameters():
            p.normal_(0, 0.2)
    return encoder.eval()


def test_mapper_block_with_one_token_is_value_path_then_mlp():
    torch.manual_seed(1)
    block = MapperBlock(16, 1)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(3, 1, 16)
    v = F.linear(
        F.layer_norm(x, (16,), block.ln_1.weight, block.ln_1.bias),
        block.attn.c_qkv.weight[32:],
        block.attn.c_qkv.bias[32:],
    )
    h = x + block.attn.c_proj(v)  # one token: softmax weight 1, attention output = v (rows 2W..3W of c_qkv)
    expected = h + block.mlp.c_proj(0.5 * (lambda u: u * (1 + torch.erf(u / 2**0.5)))(block.mlp.c_fc(block.ln_2(h))))
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-5)


def test_encoder_output_is_projection_of_final_ln_of_mapper_of_pooled_cls():
    encoder = small_encoder()
    pixels = torch.randn(2, 3, 32, 32)
    pooled = encoder.transformer(pixels)
    expected = encoder.proj_out(encoder.final_ln(encoder.mapper(pooled[:, None])))
    out = encoder(pixels)
    assert out.shape == (2, 1, 24)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert encoder.unconditional(3).shape == (3, 1, 24)
    torch.testing.assert_close(encoder.unconditional(3)[2], encoder.learnable_vector[0], rtol=0, atol=0)


def test_vision_tower_matches_transformers_clip_vision_model(equal_up_to_rounding):
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=42,
        patch_size=14,
        hidden_act="quick_gelu",
    )
    torch.manual_seed(2)
    hf = transformers.CLIPVisionModel(config).eval()
    sd = hf.state_dict()
    if not any(k.startswith("vision_model.") for k in sd):  # transformers >= 5 drops this level
        sd = {"vision_model." + k: v for k, v in sd.items()}
    tower_config = tower_config_from_state_dict(sd)
    assert tower_config == VisionTowerConfig(128, 160, 3, 2, 14, 42)
    tower = CLIPVisionTower(tower_config)
    tower.load_state_dict({k: v for k, v in sd.items() if not k.endswith("position_ids")}, strict=True)
    pixels = torch.randn(2, 3, 42, 42)
    with torch.no_grad():
        equal_up_to_rounding(tower(pixels), hf(pixel_values=pixels).pooler_output, roundings=hf)
    with pytest.raises(ValueError, match=r"expects pixels \[B, 3, 42, 42\]"):
        tower(torch.zeros(1, 3, 40, 40))


def test_encoder_sizes_are_inferred_from_weights_and_loaded_strictly():
    encoder = small_encoder(blocks=3)
    sd = encoder.state_dict()
    config = encoder_config_from_state_dict(sd)
    assert config == ExemplarEncoderConfig(TOWER, 3, 64, 1, 24)
    rebuilt = encoder_from_state_dict(
        dict(sd, **{"transformer.vision_model.embeddings.position_ids": torch.arange(17)[None]})
    )
    pixels = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(rebuilt(pixels), encoder(pixels), rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing"):
        encoder_config_from_state_dict({k: v for k, v in sd.items() if k != "learnable_vector"})
    with pytest.raises(ValueError, match=r"learnable_vector has shape \[1, 24\]"):
        encoder_config_from_state_dict(dict(sd, learnable_vector=torch.zeros(1, 24)))


def test_official_and_diffusers_encoder_layouts_round_trip_with_fused_qkv():
    sd = small_encoder().state_dict()
    diffusers = ckpt.encoder_to_diffusers(sd)
    qkv = sd["mapper.resblocks.1.attn.c_qkv.weight"]
    torch.testing.assert_close(diffusers["mapper.blocks.1.attn1.to_q.weight"], qkv[:64], rtol=0, atol=0)
    torch.testing.assert_close(
        diffusers["mapper.blocks.1.attn1.to_v.bias"], sd["mapper.resblocks.1.attn.c_qkv.bias"][128:], rtol=0, atol=0
    )
    assert (
        "mapper.blocks.0.norm3.weight" in diffusers
        and "uncond_vector" in diffusers
        and "final_layer_norm.bias" in diffusers
    )
    back = ckpt.encoder_from_diffusers(diffusers)
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    # transformers >= 5 saves the tower without `vision_model.`; both read the same
    flat = {k.replace("model.vision_model.", "model.", 1): v for k, v in diffusers.items()}
    assert ckpt.encoder_from_diffusers(flat).keys() == sd.keys()
    with pytest.raises(ckpt.PbECheckpointError, match="not a PaintByExampleImageEncoder"):
        ckpt.encoder_from_diffusers({"text_model.x": torch.zeros(1)})


def _fake_official(in_channels=9):
    encoder = small_encoder().state_dict()
    unet = {"input_blocks.0.0.weight": torch.zeros(320, in_channels, 3, 3), "out.2.weight": torch.zeros(4, 320, 3, 3)}
    vae = {"decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}
    return ckpt.official_state_dict(unet, vae, encoder), encoder


def test_split_official_layout_round_trip():
    sd, encoder = _fake_official()
    assert (
        "cond_stage_model.mapper.resblocks.0.attn.c_qkv.weight" in sd
        and "learnable_vector" in sd
        and "proj_out.weight" in sd
    )
    sd["model_ema.decay"] = torch.tensor(0.999)
    parts = ckpt.split_official(sd)
    assert parts.encoder.keys() == encoder.keys()
    assert parts.unet.keys() == {"input_blocks.0.0.weight", "out.2.weight"} and parts.vae.keys() == {
        "decoder.conv_in.weight"
    }
    assert parts.ignored == ["model_ema.decay"]


def test_plain_sd_checkpoint_error_says_what_was_found_and_expected():
    sd = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(10, 8),
    }
    with pytest.raises(ckpt.PbECheckpointError) as error:
        ckpt.split_official(sd)
    message = str(error.value)
    assert "4 input channels, not 9" in message
    assert "a CLIP text encoder (a text-to-image Stable Diffusion checkpoint)" in message
    assert "Expected the Paint-by-Example model" in message
    assert 'docs/weights.md, section "Paint by Example"' in message
    assert "cond_stage_model" not in message and "model.diffusion_model" not in message  # no tensor names


def test_read_state_dict_safe_and_lightning_and_refusals(tmp_path):
    tensors = {"a": torch.ones(2), "b": torch.zeros(3)}
    torch.save({"state_dict": tensors, "global_step": 3}, tmp_path / "l.ckpt")
    assert ckpt.read_state_dict(tmp_path / "l.ckpt").keys() == {"a", "b"}
    torch.save(
        {"state_dict": tensors}, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False
    )  # cannot be mmapped
    assert torch.equal(ckpt.read_state_dict(tmp_path / "legacy.ckpt")["a"], torch.ones(2))
    torch.save({"state_dict": tensors, "hparams": pickle.PickleError("arbitrary object")}, tmp_path / "u.ckpt")
    with pytest.raises(ckpt.PbECheckpointError, match="u.ckpt: this checkpoint needs arbitrary unpickling"):
        ckpt.read_state_dict(tmp_path / "u.ckpt")
    (tmp_path / "t.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ckpt.PbECheckpointError, match="t.safetensors: not a readable safetensors file"):
        ckpt.read_state_dict(tmp_path / "t.safetensors")
    with pytest.raises(ckpt.PbECheckpointError, match="no such file"):
        ckpt.read_state_dict(tmp_path / "missing.ckpt")


def test_convert_to_safetensors_keeps_every_tensor_and_refuses_non_pbe(tmp_path):
    from safetensors.torch import load_file

    sd, _ = _fake_official()
    torch.save({"state_dict": sd}, tmp_path / "pbe.ckpt")
    out = ckpt.convert_to_safetensors(tmp_path / "pbe.ckpt", tmp_path / "pbe.safetensors")
    loaded = load_file(str(out))
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    with pytest.raises(FileExistsError):
        ckpt.convert_to_safetensors(tmp_path / "pbe.ckpt", tmp_path / "pbe.safetensors")
    torch.save(
        {"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3)}},
        tmp_path / "sd.ckpt",
    )
    with pytest.raises(ckpt.PbECheckpointError):
        ckpt.convert_to_safetensors(tmp_path / "sd.ckpt", tmp_path / "sd.safetensors")
    assert not (tmp_path / "sd.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_hole_mask_threshold_as_official():
    mask = torch.tensor([[[0.0, 0.3, 0.5, 0.51, 1.0]]])
    # official: keep = 1 - mask; keep < 0.5 -> 0, keep >= 0.5 -> 1; the hole is where keep is 0
    assert inputs.hole_mask(mask, (1, 5)).tolist() == [[[0.0, 0.0, 0.0, 1.0, 1.0]]]
    assert inputs.hole_mask(mask, (1, 5), threshold=0.8).tolist() == [[[0.0, 1.0, 1.0, 1.0, 1.0]]]


def test_inpaint_inputs_crop_to_the_latent_grid_and_grey_the_hole():
    pixels = torch.rand(2, 13, 21, 4)
    mask = torch.zeros(1, 13, 21)
    mask[:, 4:9, 6:12] = 0.7
    prepared = inputs.inpaint_inputs(pixels, mask)
    window = (slice(None), slice(2, 10), slice(2, 18))  # 13 -> 8 rows from 2, 21 -> 16 columns from 2
    assert torch.equal(prepared.pixels, pixels[window][..., :3])
    assert torch.equal(prepared.hole, (mask[window] > 0.5).float().expand(2, -1, -1))
    hole = prepared.hole.bool()[..., None].expand(-1, -1, -1, 3)
    assert torch.all(prepared.masked[hole] == 0.5) and torch.equal(prepared.masked[~hole], prepared.pixels[~hole])
    with pytest.raises(ValueError, match="at least 8x8"):
        inputs.inpaint_inputs(torch.rand(1, 7, 16, 3), torch.zeros(1, 7, 16))
    with pytest.raises(ValueError, match="mask has batch 3; expected 1 or the pixels batch 2"):
        inputs.inpaint_inputs(pixels, torch.zeros(3, 13, 21))


def pillow_axis(levels: np.ndarray, out: int, axis: int) -> np.ndarray:
    """One pass of Pillow's 8-bit resampling along `axis`, written from its description: bicubic with a = -0.5,
    the kernel stretched by the scale when shrinking, taps centred on (i + 0.5) * scale, weights normalised to
    sum 1, the sum rounded half up and clipped to 0..255."""

    def cubic(t, a=-0.5):
        t = abs(t)
        if t < 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return (((t - 5) * t + 8) * t - 4) * a
        return 0.0

    size = levels.shape[axis]
    scale = size / out
    stretch = max(scale, 1.0)
    support = 2 * stretch
    moved = np.moveaxis(levels, axis, 0)
    result = np.empty((out,) + moved.shape[1:])
    for i in range(out):
        centre = (i + 0.5) * scale
        first, last = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), size)
        weights = np.array([cubic((j - centre + 0.5) / stretch) for j in range(first, last)])
        weights /= weights.sum()
        total = np.tensordot(weights, moved[first:last], axes=(0, 0))
        result[i] = np.clip(np.floor(total + 0.5), 0, 255)
    return np.moveaxis(result, 0, axis)


def pillow_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """[3, H, W] in [0, 1] -> Pillow's `resize((size, size))` of its 8-bit version: width pass, then height."""
    levels = np.round(image.double().numpy() * 255)
    if levels.shape[2] != size:
        levels = pillow_axis(levels, size, 2)
    if levels.shape[1] != size:
        levels = pillow_axis(levels, size, 1)
    return torch.from_numpy(levels) / 255


@pytest.mark.parametrize("height, width", [(20, 40), (37, 11), (9, 9), (10, 10)])
def test_squash_resamples_in_8_bits_like_the_official_pillow_resize(height, width):
    image = torch.randint(0, 256, (2, height, width, 3), generator=torch.Generator().manual_seed(height)) / 255
    ours = inputs.squash_8bit(image.movedim(-1, 1), 10)
    reference = torch.stack([pillow_resize(i, 10) for i in image.movedim(-1, 1)]).float()
    # the reference sums in float64, torch in float32 (and Pillow in fixed point): a sum at a rounding tie may land
    # one level either way; every other pixel is the same byte
    levels = ((ours - reference) * 255).abs()
    assert levels.max() <= 1 + 1e-4 and (levels > 0.5).float().mean() < 0.01
    assert torch.equal(ours, (ours * 255).round() / 255)  # whole levels, as PIL's output


def test_squash_matches_the_installed_pillow_where_its_pass_order_is_width_first():
    from PIL import Image

    image = torch.randint(0, 256, (1, 60, 90, 3), generator=torch.Generator().manual_seed(0)) / 255
    as_bytes = (image[0] * 255).round().to(torch.uint8).numpy()
    pillow = torch.from_numpy(np.array(Image.fromarray(as_bytes).resize((56, 56), Image.Resampling.BICUBIC))) / 255
    ours = inputs.squash_8bit(image.movedim(-1, 1), 56)[0].movedim(0, -1)
    levels = ((ours - pillow) * 255).abs()
    assert levels.max() <= 1 + 1e-4 and (levels > 0.5).float().mean() < 0.01


def test_reference_pixels_squash_and_center_crop():
    image = torch.rand(1, 20, 40, 3)
    squash = inputs.reference_pixels(image, 10, "squash", mean=(0, 0, 0), std=(1, 1, 1))
    torch.testing.assert_close(squash, inputs.squash_8bit(image.movedim(-1, 1), 10), rtol=0, atol=0)
    center = inputs.reference_pixels(image, 10, "center", mean=(0, 0, 0), std=(1, 1, 1))
    resized = F.interpolate(
        image.movedim(-1, 1), size=(10, 20), mode="bicubic", antialias=True, align_corners=False
    ).clamp(0, 1)
    torch.testing.assert_close(center, resized[..., 5:15], rtol=0, atol=0)
    norm = inputs.reference_pixels(
        torch.full((1, 10, 10, 3), 0.5), 10, "center", mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0)
    )
    assert norm[0, :, 0, 0].tolist() == [0.0, 1.0, 0.25]
    with pytest.raises(ValueError, match="crop must be one of"):
        inputs.reference_pixels(image, 10, "fit")


def test_convert_command_line(tmp_path, capsys):
    import convert_pbe

    sd, _ = _fake_official()
    torch.save({"state_dict": sd}, tmp_path / "model.ckpt")
    written = convert_pbe.main([str(tmp_path / "model.ckpt")])
    assert written == tmp_path / "model.safetensors" and "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists"):
        convert_pbe.main([str(tmp_path / "model.ckpt")])
    assert convert_pbe.main([str(tmp_path / "model.ckpt"), "--overwrite"]) == written


@settings(max_examples=40, deadline=None)
@given(
    mask=arrays(np.float32, (1, 8, 8), elements=st.floats(0, 1, width=32)),
    image=arrays(np.float32, (1, 8, 8, 3), elements=st.floats(0, 1, width=32)),
    threshold=st.floats(0.05, 0.95),
)
def test_masked_source_properties(mask, image, threshold):
    mask, image = torch.from_numpy(mask), torch.from_numpy(image)
    hole = inputs.hole_mask(mask, (8, 8), threshold)
    assert set(hole.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hole, ((1 - mask) < threshold).float())  # keep = (1 - mask >= threshold)
    out = inputs.inpaint_inputs(image, mask, threshold).masked
    kept = ~hole.bool()[..., None].expand_as(image)
    assert torch.equal(out[kept], image[kept])  # background untouched, bit for bit
    assert torch.all(out[~kept] == 0.5)  # hole = 0 in [-1, 1]
