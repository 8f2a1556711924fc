import logging

import pytest
import torch

from exemplar_dev.host import pack_submodule

RES = 64  # 8x8 latents on the tiny model


@pytest.fixture
def base(tiny_sd15):
    return tiny_sd15


@pytest.fixture
def loras(model_folder):
    """Every LoRA a test trains lands in its own temporary loras folder."""
    return model_folder("loras")


def subject_images(n=2, seed=0):
    """Smooth synthetic 'subject' photos: a coloured blob on a plain background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, RES), torch.linspace(0, 1, RES), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy = 0.3 + 0.4 * torch.rand(2, generator=g)
        blob = (((xx - cx) / 0.2) ** 2 + ((yy - cy) / 0.25) ** 2 <= 1).float()[..., None]
        out.append(blob * torch.tensor([0.85, 0.2, 0.1]) + (1 - blob) * torch.tensor([0.9, 0.9, 0.8]))
    return torch.stack(out)


def train(node, base, name, **overrides):
    model, clip, vae = base
    inputs = dict(
        model=model,
        clip=clip,
        vae=vae,
        instance_images=subject_images(),
        instance_prompt="a sks dog",
        class_prompt="a dog",
        lora_name=name,
        steps=2,
        learning_rate=1e-3,
        rank=4,
        alpha=4.0,
        prior_loss_weight=1.0,
        batch_size=1,
        grad_accumulation=1,
        train_text_encoder=False,
        resolution=RES,
        training_seed=0,
        training_dtype="fp32",
        checkpoint_every=0,
        resume_from="none",
        gradient_checkpointing=False,
        class_images=subject_images(3, seed=5).flip(-1),
    )
    inputs.update(overrides)
    return node("ExemplarDreamBoothTrain").execute(**inputs).result


def losses(csv):
    rows = [line.split(",") for line in csv.strip().splitlines()[1:]]
    return [dict(step=int(r[0]), loss=float(r[1]), instance=float(r[2]), prior=float(r[3])) for r in rows]


def eps_mse(model, clip, vae, images, prompt, draws=6):
    """Instance denoising loss of a MODEL at fixed noise and timesteps (epsilon space)."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    trainer = pack_submodule("nodes.dreambooth.trainer")
    x0 = model.model.process_latent_in(trainer.encode_images(vae, images, RES))
    cond = clip.encode_from_tokens(clip.tokenize(prompt))
    g = torch.Generator().manual_seed(123)
    ms = model.model.model_sampling
    total = 0.0
    for i in range(draws):
        noise = torch.randn(x0.shape, generator=g)
        sigma = torch.full((x0.shape[0],), float(ms.percent_to_sigma(0.2 + 0.6 * i / (draws - 1))))
        xt = ms.noise_scaling(sigma, noise, x0)
        denoised = model.model.apply_model(xt, sigma, c_crossattn=cond.repeat(x0.shape[0], 1, 1))
        eps = (xt - denoised) / sigma.view(-1, 1, 1, 1)
        total += torch.nn.functional.mse_loss(eps, noise).item() / draws
    return total


def denoise(model, clip, prompt="a sks dog"):
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    cond = clip.encode_from_tokens(clip.tokenize(prompt))
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7)) * 3
    return model.model.apply_model(x, torch.tensor([3.0]), c_crossattn=cond)


def test_identifier_node_reports_tokenisation_and_rare_candidates(node, base):
    _, clip, _ = base
    identifier, report, candidates = (
        node("ExemplarDreamBoothIdentifier").execute(clip=clip, identifier=" sks ", count=5, min_rank=40000).result
    )
    assert identifier == "sks"
    assert "48136" in report and "one token" in report
    hf = pack_submodule("nodes.dreambooth.nodes").clip_tokenizer(clip)
    vocab = hf.get_vocab()
    names = candidates.split("\n")
    assert len(names) == 5
    ids = [vocab[n + "</w>"] for n in names]
    assert ids == sorted(ids, reverse=True) and min(ids) >= 40000
    for n in names:
        assert hf(f"a {n}", add_special_tokens=False)["input_ids"][1:] == [vocab[n + "</w>"]]
    multi = (
        node("ExemplarDreamBoothIdentifier").execute(clip=clip, identifier="zqxjkvb", count=1, min_rank=40000).result[1]
    )
    assert "tokens: prefer a single-token identifier" in multi


@pytest.mark.slow
def test_instance_loss_decreases_and_base_model_is_untouched(node, base, loras):
    model, clip, vae = base
    before_base = denoise(model, clip)
    before = eps_mse(model, clip, vae, subject_images(), "a sks dog")
    out_model, out_clip, name, csv = train(
        node, base, "test_db/decrease", steps=25, learning_rate=2e-3, prior_loss_weight=0.0
    )
    assert out_model is not model and out_clip is not clip and name == "test_db/decrease.safetensors"
    assert len(losses(csv)) == 25
    after = eps_mse(out_model, out_clip, vae, subject_images(), "a sks dog")
    assert after < 0.9 * before, (before, after)
    torch.testing.assert_close(denoise(model, clip), before_base, rtol=0, atol=0)


@pytest.mark.slow
def test_trainer_outputs_carry_the_lora_as_stock_load_lora_applies_the_file(node, base, loras):
    model, clip, _ = base
    base_out = denoise(model, clip)
    base_cond = clip.encode_from_tokens(clip.tokenize("a sks dog"))
    out_model, out_clip, name, _ = train(node, base, "test_db/one_queue", steps=2, train_text_encoder=True,
                                         learning_rate=5e-3)
    assert (loras / name).is_file()
    lora_model, lora_clip = node("LoraLoader")().load_lora(model, clip, name, 1.0, 1.0)
    trained = denoise(out_model, out_clip)
    assert not torch.allclose(trained, base_out, atol=1e-4)
    torch.testing.assert_close(trained, denoise(lora_model, lora_clip), rtol=0, atol=0)
    cond = out_clip.encode_from_tokens(out_clip.tokenize("a sks dog"))
    assert not torch.allclose(cond, base_cond, atol=1e-5)
    torch.testing.assert_close(cond, lora_clip.encode_from_tokens(lora_clip.tokenize("a sks dog")), rtol=0, atol=0)
    # the inputs carry no patch and predict exactly as before
    assert not model.patches and not clip.patcher.patches
    torch.testing.assert_close(denoise(model, clip), base_out, rtol=0, atol=0)
    torch.testing.assert_close(clip.encode_from_tokens(clip.tokenize("a sks dog")), base_cond, rtol=0, atol=0)


def test_prior_term_is_the_class_half_weighted_by_lambda(node, base, loras):
    first = {}
    for lam in (0.5, 2.0):
        first[lam] = losses(train(node, base, f"test_db/lam{lam}", steps=1, prior_loss_weight=lam)[3])[0]
    for lam, row in first.items():
        assert row["loss"] == pytest.approx(row["instance"] + lam * row["prior"], rel=1e-5)
    assert first[0.5]["instance"] == pytest.approx(first[2.0]["instance"], rel=1e-6)
    assert first[0.5]["prior"] == pytest.approx(first[2.0]["prior"], rel=1e-6)
    other_class = losses(train(node, base, "test_db/other", steps=1, class_images=subject_images(3, seed=9))[3])[0]
    assert other_class["instance"] == pytest.approx(first[0.5]["instance"], rel=1e-6)
    assert other_class["prior"] != pytest.approx(first[0.5]["prior"], rel=1e-5)
    plain = losses(train(node, base, "test_db/plain", steps=1, prior_loss_weight=0.0)[3])[0]
    assert plain["prior"] == 0.0 and plain["loss"] == plain["instance"]


@pytest.mark.slow
def test_lora_loads_in_stock_loader_on_model_and_clip(node, base, loras, caplog):
    from comfy import lora as comfy_lora
    from comfy import sd as comfy_sd
    from comfy import utils as comfy_utils

    model, clip, vae = base
    name = train(node, base, "test_db/te", steps=3, train_text_encoder=True, learning_rate=5e-3)[2]
    path = loras / name
    lora = comfy_utils.load_torch_file(str(path))
    assert any(k.startswith("lora_te_") for k in lora) and any(k.startswith("lora_unet_") for k in lora)
    key_map = comfy_lora.model_lora_keys_unet(model.model, {})
    key_map = comfy_lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    with caplog.at_level(logging.WARNING):
        patches = comfy_lora.load_lora(lora, key_map)
    assert "lora key not loaded" not in caplog.text
    assert len(patches) == len([k for k in lora if k.endswith(".alpha")])  # every module applied
    assert sum(1 for k in patches if k.startswith("diffusion_model.")) == 56  # 7 transformer blocks x 8 projections
    assert sum(1 for k in patches if k.startswith("clip_l.")) == 48  # 12 layers x 4 projections

    base_out = denoise(model, clip)
    lora_model, lora_clip = node("LoraLoader")().load_lora(model, clip, name, 1.0, 1.0)
    assert not torch.allclose(denoise(lora_model, lora_clip), base_out, atol=1e-4)
    # the CLIP half alone changes the conditioning
    _, clip_only = node("LoraLoader")().load_lora(model, clip, name, 0.0, 1.0)
    assert not torch.allclose(
        clip_only.encode_from_tokens(clip_only.tokenize("a sks dog")),
        clip.encode_from_tokens(clip.tokenize("a sks dog")),
        atol=1e-5,
    )
    # strength 0 through the stock patch path (no shortcut): exactly the base model
    zero_model, zero_clip = comfy_sd.load_lora_for_models(model, clip, lora, 0.0, 0.0)
    torch.testing.assert_close(denoise(zero_model, zero_clip), base_out, rtol=0, atol=0)


def test_checkpoint_and_resume_continue_the_same_run(node, base, loras):
    straight = train(node, base, "test_db/straight", steps=4)[2]
    train(node, base, "test_db/resumable", steps=4, checkpoint_every=2)
    checkpoint = "test_db/resumable_step000002.safetensors"
    assert (loras / checkpoint).is_file()
    resumed = train(node, base, "test_db/resumed", steps=4, resume_from=checkpoint)
    models_lora = pack_submodule("models.dreambooth.lora_file")
    a, meta_a = models_lora.load_lora_file(loras / straight)
    b, meta_b = models_lora.load_lora_file(loras / resumed[2])
    assert meta_b["exemplar.step"] == "4" and len(losses(resumed[3])) == 2
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_class_images_node_generates_after_supplied_images(node, base):
    model, clip, vae = base
    supplied = subject_images(1)
    run = node("ExemplarDreamBoothClassImages").execute
    kwargs = dict(model=model, clip=clip, vae=vae, class_noun="dog", width=64, height=64, steps=2, cfg=5.0,
                  sampler_name="euler", scheduler="normal", batch_size=2)
    images, prompt = run(count=3, seed=10, images=supplied, **kwargs).result
    assert prompt == "a dog" and images.shape == (3, 64, 64, 3)
    torch.testing.assert_close(images[0], supplied[0])
    # generated image i uses seed + i, whatever the batching
    single = run(count=1, seed=11, **kwargs).result[0]
    torch.testing.assert_close(images[2], single[0], rtol=0, atol=2e-3)
    assert not torch.allclose(images[1], images[2])


def test_class_images_from_an_input_subfolder(node, base, input_folder):
    from PIL import Image

    model, clip, vae = base
    folder = input_folder / "test_db_class"
    folder.mkdir()
    pixels = (subject_images(2, seed=3).numpy() * 255).round().astype("uint8")
    for i, image in enumerate(pixels):
        Image.fromarray(image).resize((96, 80)).save(folder / f"{i}.png")
    images, _ = node("ExemplarDreamBoothClassImages").execute(
        model=model, clip=clip, vae=vae, class_noun="dog", count=2, width=64, height=64, steps=1, cfg=1.0,
        sampler_name="euler", scheduler="normal", seed=0, batch_size=1, folder="test_db_class").result
    image_folder = pack_submodule("models.common.image_folder")
    torch.testing.assert_close(images, image_folder.load_image_folder(folder, 64, 64))
    assert images.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="folder: 'nope' is not a subfolder"):
        node("ExemplarDreamBoothClassImages").execute(
            model=model, clip=clip, vae=vae, class_noun="dog", count=2, width=64, height=64, steps=1, cfg=1.0,
            sampler_name="euler", scheduler="normal", seed=0, batch_size=1, folder="nope")


def test_class_image_folder_stays_inside_the_input_folder(node, base, input_folder, tmp_path):
    from PIL import Image

    model, clip, vae = base
    outside = tmp_path / "secret_images"
    outside.mkdir()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(outside / "private_photo.png")
    inside = input_folder / "mixed"
    inside.mkdir()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(inside / "ok.png")
    (inside / "leak.png").symlink_to(outside / "private_photo.png")
    (input_folder / "linked_out").symlink_to(outside, target_is_directory=True)
    kwargs = dict(model=model, clip=clip, vae=vae, class_noun="dog", count=1, width=64, height=64, steps=1,
                  cfg=1.0, sampler_name="euler", scheduler="normal", seed=0, batch_size=1)
    escapes = {str(outside): "expected a subfolder", "../secret_images": "expected a subfolder",
               "mixed/../../secret_images": "expected a subfolder", "linked_out": "expected a subfolder",
               "mixed": "'leak.png' in 'mixed' links outside the input folder"}
    for folder, message in escapes.items():
        with pytest.raises(ValueError, match=message) as error:
            node("ExemplarDreamBoothClassImages").execute(folder=folder, **kwargs)
        assert str(error.value).startswith("folder: ") and "private_photo" not in str(error.value)
    (inside / "leak.png").unlink()
    images, _ = node("ExemplarDreamBoothClassImages").execute(folder="mixed", **kwargs).result
    assert images.shape == (1, 64, 64, 3) and images[0, 0, 0, 1] > 0.7 and images[0, 0, 0, 0] < 0.1


def test_an_existing_lora_is_replaced_only_when_overwrite_is_on(node, base, loras):
    name = train(node, base, "test_db/kept", steps=1)[2]
    before = (loras / name).read_bytes()
    message = "lora_name: loras/test_db/kept.safetensors already exists; choose another name or enable overwrite"
    for overrides in ({}, {"overwrite": False}, {"model": None, "vae": None}):  # refused before any work
        with pytest.raises(ValueError, match=message):
            train(node, base, " test_db/kept ", steps=1, training_seed=1, **overrides)
    assert (loras / name).read_bytes() == before
    assert train(node, base, "test_db/kept", steps=1, training_seed=1, overwrite=True)[2] == name
    assert (loras / name).read_bytes() != before


def test_bad_inputs_are_clear_errors(node, base, loras):
    with pytest.raises(ValueError, match="lora_name: a relative name without"):
        train(node, base, "../outside")
    with pytest.raises(ValueError, match="resolution must be a multiple of 8"):
        train(node, base, "test_db/bad", resolution=60)
    two_steps = train(node, base, "test_db/two_steps", steps=2)[2]
    with pytest.raises(ValueError, match="resume_from is at step 2"):
        train(node, base, "test_db/bad", steps=2, resume_from=two_steps)
    written = sorted(p.name for p in (loras / "test_db").iterdir())
    assert written == ["two_steps.safetensors", "two_steps.safetensors.optimizer-state"]  # the refusals wrote nothing
    model, clip, vae = base
    with pytest.raises(ValueError, match="class_noun: expected a noun"):
        node("ExemplarDreamBoothClassImages").execute(
            model=model, clip=clip, vae=vae, class_noun=" ", count=1, width=64, height=64, steps=1, cfg=1.0,
            sampler_name="euler", scheduler="normal", seed=0, batch_size=1)
