"""Paint by Example through real ComfyUI: loaders (both layouts), encoder, inpaint conditioning,
stock sampling, LoRA, conversion, clear errors, and parity with diffusers' PaintByExamplePipeline
components on the same tiny random weights."""

import pickle

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.paths import BASE_DIR
from exemplar_dev.tiny_models import TINY_SD15_NAME
from exemplar_dev.tiny_pbe import TINY_PBE_DIFFUSERS, TINY_PBE_NAME, TINY_VISION, write_tiny_pbe_checkpoint

CHECKPOINTS = BASE_DIR / "models" / "checkpoints"
DIFFUSERS = BASE_DIR / "models" / "diffusers"


@pytest.fixture(scope="module")
def loaded_diffusers(node):
    return node("ExemplarPbEDiffusersLoader").execute(folder=TINY_PBE_DIFFUSERS).result


def scene(batch=1, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch, size, size, 3, generator=g)
    mask = torch.zeros(1, size, size)
    mask[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return pixels, mask


def test_loader_gives_native_sd1_model_with_pbe_concat_order(tiny_pbe):
    model, vae, encoder = tiny_pbe
    from comfy import supported_models

    assert isinstance(model.model.model_config, supported_models.SD15)
    assert model.model.model_config.unet_config["in_channels"] == 9
    assert model.model.concat_keys == ("masked_image", "mask_inverted")
    assert encoder.context_dim == 768 and encoder.image_size == 56
    assert encoder.patcher.model is encoder.model  # managed by ComfyUI's model management
    assert vae.latent_channels == 4


def test_both_layouts_load_identical_weights(tiny_pbe, loaded_diffusers):
    for a, b in zip(
        (tiny_pbe[0].model.diffusion_model, tiny_pbe[2].model, tiny_pbe[1].first_stage_model),
        (loaded_diffusers[0].model.diffusion_model, loaded_diffusers[2].model, loaded_diffusers[1].first_stage_model),
    ):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key


def test_ckpt_pickle_loads_with_weights_only_and_equals_safetensors(tiny_pbe, tmp_path):
    loader = pack_submodule("nodes.paint_by_example.loader")
    path = write_tiny_pbe_checkpoint(tmp_path, name="tiny.ckpt", fmt="ckpt")
    model, _, encoder = loader.load_checkpoint(path)
    reference = tiny_pbe[2].model.state_dict()
    for key, value in encoder.model.state_dict().items():  # the .ckpt is fp32, the shipped file fp16
        torch.testing.assert_close(
            value, reference[key], rtol=0, atol=2e-3 * max(1.0, reference[key].abs().max().item())
        )


def test_encode_node_outputs_reference_token_and_learned_vector(node, tiny_pbe):
    encoder = tiny_pbe[2]
    images = torch.rand(3, 70, 90, 3, generator=torch.Generator().manual_seed(3))
    positive, negative = (
        node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=images, crop="squash").result
    )
    assert positive[0][0].shape == (3, 1, 768) and negative[0][0].shape == (3, 1, 768)
    inputs = pack_submodule("models.paint_by_example.inputs")
    expected = encoder.model(inputs.reference_pixels(images, 56, "squash"))
    torch.testing.assert_close(positive[0][0], expected.float(), rtol=0, atol=0)
    for row in negative[0][0]:
        torch.testing.assert_close(row[None], encoder.model.learnable_vector.float(), rtol=0, atol=0)
    # one conditioning per reference: the second image alone gives the second row
    single = node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=images[1:2], crop="squash").result[0]
    torch.testing.assert_close(single[0][0][0], positive[0][0][1], rtol=0, atol=1e-5)
    centred = node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=images, crop="center").result[0]
    assert not torch.allclose(centred[0][0], positive[0][0])


def test_reference_mask_blanks_the_background(node, tiny_pbe):
    encoder = tiny_pbe[2]
    image = torch.rand(1, 56, 56, 3, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 56, 56)
    mask[:, 10:40, 12:44] = 1
    masked = (
        node("ExemplarPbEEncode")
        .execute(exemplar_encoder=encoder, reference=image, crop="squash", reference_mask=mask)
        .result[0]
    )
    white = torch.where(mask[..., None] > 0, image, torch.ones_like(image))
    plain = node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=white, crop="squash").result[0]
    torch.testing.assert_close(masked[0][0], plain[0][0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="reference_mask has batch 2; expected 1 or the reference batch 1"):
        node("ExemplarPbEEncode").execute(
            exemplar_encoder=encoder, reference=image, crop="squash", reference_mask=mask.repeat(2, 1, 1)
        )


def test_inpaint_conditioning_values_and_soft_mask_threshold(node, tiny_pbe):
    vae = tiny_pbe[1]
    pixels, _ = scene(size=64)
    mask = torch.zeros(1, 32, 32)  # half resolution: resized to the image bilinearly
    mask[:, 8:24, 8:24] = 0.6  # soft, above the hole threshold -> hole
    mask[:, 0:4, 0:4] = 0.4  # soft, below -> kept
    positive = [[torch.zeros(1, 1, 768), {}]]
    out_pos, out_neg, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=positive, vae=vae, pixels=pixels, mask=mask, mask_threshold=0.5, noise_mask=True
    ).result
    full = pack_submodule("models.common.masks").resize_mask(mask, (64, 64))
    keep = (1 - full >= 0.5).float()
    assert keep[0, 0, 0] == 1 and keep[0, 32, 32] == 0
    expected_masked = pixels.clone()
    expected_masked[keep[..., None].expand_as(pixels) == 0] = 0.5
    torch.testing.assert_close(out_pos[0][1]["concat_latent_image"], vae.encode(expected_masked), rtol=0, atol=1e-6)
    hole_latent = out_pos[0][1]["concat_mask"]
    assert hole_latent.shape == (1, 1, 8, 8) and set(hole_latent.unique().tolist()) == {0.0, 1.0}
    assert hole_latent[0, 0, 4, 4] == 1 and hole_latent[0, 0, 0, 0] == 0
    assert out_neg[0][1]["concat_mask"] is hole_latent
    torch.testing.assert_close(latent["samples"], vae.encode(pixels), rtol=0, atol=0)
    torch.testing.assert_close(latent["noise_mask"][:, 0], 1 - keep, rtol=0, atol=0)
    assert "concat_mask" not in positive[0][1]  # inputs untouched


def test_latent_mask_stays_soft_off_the_8_pixel_grid_as_in_the_official_code(node, tiny_pbe):
    model, vae, _ = tiny_pbe
    pixels, _ = scene(size=64)
    mask = torch.zeros(1, 64, 64)
    mask[:, 12:44, 20:52] = 1  # every edge halfway through a latent cell (pixel 8i + 4)
    positive = [[torch.zeros(1, 1, 768), {}]]
    out_pos, _, _ = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=positive, vae=vae, pixels=pixels, mask=mask, mask_threshold=0.5, noise_mask=True
    ).result
    # official: keep binarised in pixels, then Resize (bilinear) to the latent size
    keep_pixels = (1 - mask >= 0.5).float()
    keep_latent = torch.nn.functional.interpolate(keep_pixels[:, None], size=(8, 8), mode="bilinear")
    soft = (keep_latent > 0) & (keep_latent < 1)
    assert soft.sum() >= 8 and set(keep_latent[soft].unique().tolist()) <= {0.25, 0.5, 0.75}
    conds = model.model.extra_conds(
        **out_pos[0][1], noise=torch.zeros(1, 4, 8, 8), device=torch.device("cpu"), cross_attn=out_pos[0][0]
    )
    unet_concat = conds["c_concat"].cond  # what the PbE UNet gets after x_t
    assert torch.equal(unet_concat[:, 4:], keep_latent)
    assert torch.equal(unet_concat[:, :4], out_pos[0][1]["concat_latent_image"] * 0.18215)


def test_reference_and_source_batches_broadcast_or_are_refused(node, tiny_pbe):
    _, vae, encoder = tiny_pbe
    references = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    positive, negative = node("ExemplarPbEEncode").execute(
        exemplar_encoder=encoder, reference=references, crop="squash"
    ).result
    pixels, mask = scene(size=64)
    out_pos, _, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=negative, vae=vae, pixels=pixels, mask=mask, mask_threshold=0.5, noise_mask=True
    ).result
    # one source, two references: two results, each source copy with its own reference
    assert latent["samples"].shape[0] == 2 and latent["noise_mask"].shape[0] == 2
    assert torch.equal(latent["samples"][0], latent["samples"][1])
    assert out_pos[0][1]["noise_concat"].shape[0] == 2 and out_pos[0][0].shape[0] == 2
    three, _ = scene(batch=3, size=64)
    with pytest.raises(ValueError, match=r"positive holds 2 references but pixels has batch 3"):
        node("ExemplarPbEInpaintConditioning").execute(
            positive=positive, negative=negative, vae=vae, pixels=three, mask=mask, mask_threshold=0.5, noise_mask=True
        )


def test_stock_ksampler_keeps_background_and_source_model_untouched(node, tiny_pbe):
    from comfy import sample as comfy_sample
    from comfy import sampler_helpers

    model, vae, encoder = tiny_pbe
    pixels, mask = scene(size=64)
    positive, negative = (
        node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=pixels, crop="squash").result
    )
    positive, negative, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=negative, vae=vae, pixels=pixels, mask=mask, mask_threshold=0.5, noise_mask=True
    ).result
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items() if "input_blocks.0" in k}
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    for sampler in ("euler", "dpmpp_2m"):
        out = comfy_sample.sample(
            model,
            noise,
            2,
            5.0,
            sampler,
            "karras",
            positive,
            negative,
            latent["samples"],
            noise_mask=latent["noise_mask"],
            disable_pbar=True,
            seed=0,
        )
        assert out.shape == latent["samples"].shape and torch.isfinite(out).all()
        latent_mask = sampler_helpers.prepare_mask(latent["noise_mask"], noise.shape, "cpu")
        outside = latent_mask == 0
        torch.testing.assert_close(out[outside], latent["samples"][outside], rtol=0, atol=1e-5)
        assert not torch.allclose(out[latent_mask == 1], latent["samples"][latent_mask == 1])
    for key, value in before.items():
        assert torch.equal(model.model.diffusion_model.state_dict()[key], value)


def test_lora_keys_are_those_of_a_stock_sd15_inpainting_checkpoint(tiny_pbe, tiny_inpaint):
    """The loader builds the same native UNet that ComfyUI's checkpoint loader builds for an SD1.5 inpainting file
    (the tiny PbE and inpainting UNets share one config): every LoRA key maps alike, so SD1.5-inpaint LoRAs apply."""
    from comfy import lora as comfy_lora

    pbe_keys = comfy_lora.model_lora_keys_unet(tiny_pbe[0].model, {})
    stock_keys = comfy_lora.model_lora_keys_unet(tiny_inpaint[0].model, {})
    assert "lora_unet_input_blocks_1_1_proj_in" in pbe_keys
    assert pbe_keys == stock_keys


def test_parity_with_diffusers_encoder_and_unet(node, tiny_pbe, equal_up_to_rounding):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder

    model, vae, encoder = tiny_pbe
    folder = DIFFUSERS / TINY_PBE_DIFFUSERS
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig

    # built from its config and loaded strictly from the folder's weights (transformers 5 no longer
    # reads a clip_vision_model config through CLIPPreTrainedModel.from_pretrained)
    config = {k: v for k, v in TINY_VISION.items() if k != "model_type"}
    reference_encoder = PaintByExampleImageEncoder(CLIPVisionConfig(**config)).eval()
    weights = load_file(str(folder / "image_encoder" / "model.safetensors"))
    if not any(k.startswith("model.vision_model.") for k in reference_encoder.state_dict()):  # transformers >= 5 layout
        weights = {k.replace("model.vision_model.", "model.", 1): v for k, v in weights.items()}
    reference_encoder.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    unet = diffusers.UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()

    images = torch.rand(2, 80, 64, 3, generator=torch.Generator().manual_seed(5))
    pixels = pack_submodule("models.paint_by_example.inputs").reference_pixels(images, 56, "center")
    ours = node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=images, crop="center").result
    with torch.no_grad():
        theirs, uncond = reference_encoder(pixels, return_uncond_vector=True)
    # two implementations of one network: rounding in units of the output's magnitude, per layer
    encoder_units = equal_up_to_rounding(ours[0][0][0], theirs, roundings=reference_encoder)
    assert torch.equal(ours[1][0][0][:1], uncond)  # the learned vector itself, copied

    source, mask = scene(batch=2, size=64, seed=6)
    positive, _, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=ours[0], negative=ours[1], vae=vae, pixels=source, mask=mask, mask_threshold=0.5, noise_mask=True
    ).result
    ms = model.model.model_sampling
    t = torch.tensor([500.0, 500.0])
    sigma = ms.sigma(t)
    x_t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(7))  # DDPM-scaled x_t
    x = x_t * (sigma[:, None, None, None] ** 2 + 1) ** 0.5  # ComfyUI's sigma-scaled input
    conds = model.model.extra_conds(**positive[0][1], noise=x, device=torch.device("cpu"), cross_attn=positive[0][0])
    with torch.no_grad():
        denoised = model.model.apply_model(
            x, sigma, c_concat=conds["c_concat"].cond, c_crossattn=conds["c_crossattn"].cond
        )
        ours_eps = (x - denoised) / sigma[:, None, None, None]
        keep = 1 - positive[0][1]["concat_mask"]
        unet_in = torch.cat([x_t, positive[0][1]["concat_latent_image"] * 0.18215, keep], dim=1)
        theirs_eps = unet(unet_in, t, encoder_hidden_states=ours[0][0][0]).sample
    unet_units = equal_up_to_rounding(ours_eps, theirs_eps, roundings=unet)
    print(f"\nparity in units of eps*max|output|: encoder {encoder_units:.1f}, UNet eps {unet_units:.1f}")


def test_plain_sd15_checkpoint_is_refused_with_what_was_found(node):
    error = pack_submodule("models.paint_by_example.checkpoint").PbECheckpointError
    with pytest.raises(error, match=r"(?s)4 input channels, not 9.*no exemplar image encoder\).*CLIP text encoder"):
        node("ExemplarPbECheckpointLoader").execute(ckpt_name=TINY_SD15_NAME)


def test_truncated_and_unsafe_files_are_refused(comfy, tmp_path):
    loader = pack_submodule("nodes.paint_by_example.loader")
    error = pack_submodule("models.paint_by_example.checkpoint").PbECheckpointError
    data = (CHECKPOINTS / TINY_PBE_NAME).read_bytes()
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(error, match="cut.safetensors: not a readable safetensors file"):
        loader.load_checkpoint(truncated)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "callback": pickle.PicklingError("x")}, unsafe)  # any non-allow-listed object
    with pytest.raises(error, match="needs arbitrary unpickling"):
        loader.load_checkpoint(unsafe)
    cut_ckpt = tmp_path / "cut.ckpt"
    write_tiny_pbe_checkpoint(tmp_path, name="full.ckpt", fmt="ckpt")
    cut_ckpt.write_bytes((tmp_path / "full.ckpt").read_bytes()[:5000])
    with pytest.raises(error, match="cut.ckpt: not a readable PyTorch checkpoint"):
        loader.load_checkpoint(cut_ckpt)


def test_convert_node_writes_equivalent_safetensors(node, model_folder):
    from safetensors.torch import load_file

    checkpoints = model_folder("checkpoints")
    name = "exemplar_tiny_pbe_conv.ckpt"
    write_tiny_pbe_checkpoint(checkpoints, name=name, fmt="ckpt")
    target = checkpoints / "exemplar_tiny_pbe_conv.safetensors"
    convert = node("ExemplarPbEConvertCheckpoint")
    assert convert.execute(ckpt_name=name, overwrite=False).result[0] == target.name
    original = torch.load(checkpoints / name, weights_only=True)["state_dict"]
    converted = load_file(str(target))
    assert original.keys() == converted.keys()
    assert all(torch.equal(original[k], converted[k]) for k in original)
    with pytest.raises(ValueError, match="exists"):
        convert.execute(ckpt_name=name, overwrite=False)


def test_controlnet_combines_with_the_pbe_model(node, tiny_pbe):
    from comfy import cldm, controlnet, ops
    from comfy import sample as comfy_sample

    from exemplar_dev.tiny_models import TINY_SD15_UNET, random_state_dict

    model, vae, encoder = tiny_pbe
    config = {k: v for k, v in TINY_SD15_UNET.items() if k not in ("out_channels", "transformer_depth_output")}
    with torch.device("meta"):
        net = cldm.cldm.ControlNet(hint_channels=3, device="meta", operations=ops.disable_weight_init, **config)
    weights = random_state_dict(net, "", 0)
    zeroed = {
        k: (torch.zeros_like(v) if k.startswith(("zero_convs", "middle_block_out")) else v) for k, v in weights.items()
    }
    pixels, mask = scene(size=64)
    positive, negative = (
        node("ExemplarPbEEncode").execute(exemplar_encoder=encoder, reference=pixels, crop="squash").result
    )
    positive, negative, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=negative, vae=vae, pixels=pixels, mask=mask, mask_threshold=0.5, noise_mask=False
    ).result
    apply = node("ControlNetApplyAdvanced")()
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(1))

    def run(pos, neg):
        return comfy_sample.sample(
            model, noise, 1, 5.0, "euler", "normal", pos, neg, latent["samples"], disable_pbar=True, seed=0
        )

    plain = run(positive, negative)
    outputs = []
    for sd in (zeroed, weights):
        control = controlnet.load_controlnet_state_dict(dict(sd))
        pos, neg = apply.apply_controlnet(positive, negative, control, pixels, 1.0, 0.0, 1.0, vae=vae)
        outputs.append(run(pos, neg))
    torch.testing.assert_close(outputs[0], plain, rtol=0, atol=1e-5)  # zero convs: no effect
    assert torch.isfinite(outputs[1]).all() and not torch.allclose(outputs[1], plain, atol=1e-3)


def _graph(sampler_nodes: dict) -> dict:
    from exemplar_dev.assets import REFERENCE_IMAGE, SOURCE_IMAGE

    graph = {
        "1": {"class_type": "ExemplarPbECheckpointLoader", "inputs": {"ckpt_name": TINY_PBE_NAME}},
        "2": {"class_type": "LoadImage", "inputs": {"image": SOURCE_IMAGE}},
        "3": {"class_type": "LoadImage", "inputs": {"image": REFERENCE_IMAGE}},
        "4": {
            "class_type": "ExemplarPbEEncode",
            "inputs": {"exemplar_encoder": ["1", 2], "reference": ["3", 0], "crop": "center"},
        },
        "5": {
            "class_type": "ExemplarPbEInpaintConditioning",
            "inputs": {
                "positive": ["4", 0],
                "negative": ["4", 1],
                "vae": ["1", 1],
                "pixels": ["2", 0],
                "mask": ["2", 1],
                "mask_threshold": 0.5,
                "noise_mask": True,
            },
        },
        "20": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 1]}},
        "21": {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}},
    }
    graph.update(sampler_nodes)
    return graph


@pytest.mark.parametrize("sampler", ["KSamplerAdvanced", "SamplerCustomAdvanced"])
def test_stock_sampler_nodes_run_the_pbe_graph(comfy, sampler):
    from exemplar_dev.host import run_prompt

    if sampler == "KSamplerAdvanced":
        nodes = {
            "10": {
                "class_type": "KSamplerAdvanced",
                "inputs": {
                    "model": ["1", 0],
                    "positive": ["5", 0],
                    "negative": ["5", 1],
                    "latent_image": ["5", 2],
                    "add_noise": "enable",
                    "noise_seed": 1,
                    "steps": 2,
                    "cfg": 5.0,
                    "sampler_name": "dpmpp_2m",
                    "scheduler": "karras",
                    "start_at_step": 0,
                    "end_at_step": 10000,
                    "return_with_leftover_noise": "disable",
                },
            }
        }
    else:
        nodes = {
            "6": {
                "class_type": "CFGGuider",
                "inputs": {"model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "cfg": 5.0},
            },
            "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
            "8": {
                "class_type": "BasicScheduler",
                "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 2, "denoise": 1.0},
            },
            "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": 2}},
            "10": {
                "class_type": "SamplerCustomAdvanced",
                "inputs": {
                    "noise": ["9", 0],
                    "guider": ["6", 0],
                    "sampler": ["7", 0],
                    "sigmas": ["8", 0],
                    "latent_image": ["5", 2],
                },
            },
        }
    outputs = run_prompt(_graph(nodes))
    assert outputs["21"]["images"], outputs


def test_diffusers_sd15_pbe_unet_config_maps_to_comfyuis_sd15_inpaint_config(comfy):
    loader = pack_submodule("nodes.paint_by_example.loader")
    official_diffusers_unet = {  # unet/config.json of the released diffusers PbE pipeline (SD1 UNet, 9 channels)
        "in_channels": 9, "out_channels": 4, "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 768, "attention_head_dim": 8,
    }
    config = loader.unet_config_from_diffusers(official_diffusers_unet)
    # ComfyUI's own table entry for a diffusers SD1.5 inpainting UNet (comfy/model_detection.py)
    assert config["transformer_depth"] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert config["transformer_depth_output"] == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert config["channel_mult"] == [1, 2, 4, 4] and config["num_res_blocks"] == [2, 2, 2, 2]
    assert (config["model_channels"], config["context_dim"], config["num_heads"], config["in_channels"]) == (
        320,
        768,
        8,
        9,
    )
    assert config["use_linear_in_transformer"] is False


def test_encoder_is_loaded_through_model_management(tiny_pbe):
    from comfy import model_management

    encoder = tiny_pbe[2]
    encoder.encode(torch.zeros(1, 3, 56, 56))
    assert any(entry.model is encoder.patcher for entry in model_management.current_loaded_models)
