"""Diffuse to Choose on SDXL: the adapter on the tiny SDXL inpainting checkpoint (10 FiLM), applied through the nodes
and trained through the DtC training stack with SDXL's pooled output and size conditioning."""

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_sdxl_inpaint import random_sdxl_conditioning

RES = 64  # 8x8 latents
REFERENCE = 28  # tiny DINOv2 at 2x2 patches + CLS


@pytest.fixture(scope="module")
def trainer(comfy):
    return pack_submodule("nodes.diffuse_to_choose.trainer")


@pytest.fixture(scope="module")
def adapter(node, tiny_sdxl_inpaint):
    return node("ExemplarDtCAdapterCreate").execute(model=tiny_sdxl_inpaint[0], image_dim=32, seed=1).result[0]


def images(seed):
    g = torch.Generator().manual_seed(seed)
    source = torch.rand(1, RES, RES, 3, generator=g)
    mask = torch.zeros(1, RES, RES)
    mask[:, 16:48, 12:52] = 1
    return source, mask, torch.rand(1, 56, 56, 3, generator=g)


def tryon(node, model, vae, adapter, dinov2, text, strength=1.0, seed=0):
    """The DtC try-on graph of the shipped workflow, node by node, sampled 2 steps; returns the latent."""
    import comfy.sample

    source, mask, reference = images(seed)
    positive, negative = (
        node("ExemplarDtCImageConditioning")
        .execute(
            clip_vision=dinov2,
            reference=reference,
            adapter=adapter,
            resolution=REFERENCE,
            crop="center",
            text_conditioning=text,
        )
        .result
    )
    positive, negative, latent = node("InpaintModelConditioning")().encode(
        positive=positive, negative=negative, vae=vae, pixels=source, mask=mask, noise_mask=True
    )
    hint = node("ExemplarDtCHint").execute(image=source, mask=mask, reference=reference, fit="stretch", min_side=8)
    patched = node("ExemplarDtCApply").execute(model=model, adapter=adapter, hint=hint.result[0], strength=strength)
    patched = patched.result[0]
    samples = latent["samples"]
    noise = torch.randn(samples.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        patched,
        noise,
        2,
        5.0,
        "euler",
        "normal",
        positive,
        negative,
        samples,
        noise_mask=latent["noise_mask"],
        disable_pbar=True,
        seed=0,
    )


def test_untrained_adapter_on_sdxl_has_10_films_and_is_the_exact_identity(node, tiny_sdxl_inpaint, dinov2, adapter):
    model, _clip, vae = tiny_sdxl_inpaint
    assert len(adapter.film) == 10  # conv_in + 2 + down + 2 + down + 2 skips, plus the middle block
    assert adapter.hint_encoder.label_emb is not None and adapter.context_dim == 2048
    text = random_sdxl_conditioning(1, size=RES)
    calls = []
    handles = [film.register_forward_hook(lambda *_: calls.append(1)) for film in adapter.film]
    try:
        patched = tryon(node, model, vae, adapter, dinov2, text)
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == 10 * 2  # every FiLM, once per sampling step (cond and uncond in one batch)
    assert torch.equal(patched, tryon(node, model, vae, adapter, dinov2, text, strength=0.0))


def test_a_trained_film_changes_the_sdxl_sample(node, tiny_sdxl_inpaint, dinov2, adapter):
    model, _clip, vae = tiny_sdxl_inpaint
    adapter_patch = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    trained = adapter_patch.training_copy(adapter).requires_grad_(False).eval()
    with torch.no_grad():
        for film in trained.film:
            film.proj.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(2))
    text = random_sdxl_conditioning(1, size=RES)
    assert not torch.allclose(
        tryon(node, model, vae, trained, dinov2, text), tryon(node, model, vae, adapter, dinov2, text)
    )


def test_image_conditioning_carries_the_text_conditionings_vector_entries(node, dinov2, adapter):
    text = random_sdxl_conditioning(3, size=1024)
    reference = images(4)[2]
    encode = node("ExemplarDtCImageConditioning")
    plain = encode.execute(
        clip_vision=dinov2, reference=reference, adapter=adapter, resolution=REFERENCE, crop="center"
    )
    positive, negative = encode.execute(
        clip_vision=dinov2,
        reference=reference,
        adapter=adapter,
        resolution=REFERENCE,
        crop="center",
        text_conditioning=text,
    ).result
    for ours, theirs in zip((positive, negative), plain.result):
        assert torch.equal(ours[0][0], theirs[0][0]) and ours[0][0].shape == (1, 5, 2048)
        assert ours[0][1]["pooled_output"] is text[0][1]["pooled_output"]
        assert {k: ours[0][1][k] for k in ("width", "target_height", "crop_w")} == {
            "width": 1024,
            "target_height": 1024,
            "crop_w": 0,
        }
    with pytest.raises(ValueError, match="text_conditioning is empty"):
        encode.execute(
            clip_vision=dinov2,
            reference=reference,
            adapter=adapter,
            resolution=REFERENCE,
            crop="center",
            text_conditioning=[],
        )


def settings(trainer, **overrides):
    values = dict(steps=2, learning_rate=1e-3, resolution=RES, reference_size=REFERENCE, mask_mode="mixed")
    return trainer.DtCSettings(**{**values, **overrides})


def test_sdxl_training_forward_is_the_base_model_exactly_with_sdxl_vector_conditioning(
    trainer, tiny_sdxl_inpaint, dinov2, adapter, pairs
):
    model, _clip, vae = tiny_sdxl_inpaint
    text = random_sdxl_conditioning(5)
    text[0][1] = {"pooled_output": text[0][1]["pooled_output"]}  # no sizes: the training resolution is used
    batch = trainer.draw_batch(pairs[0], settings(trainer), 2, torch.Generator().manual_seed(3))
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    sigmas = torch.tensor([2.0, 0.5])
    adapter_patch = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    with torch.inference_mode(False), torch.no_grad():
        copy = adapter_patch.training_copy(adapter)
        session = trainer.Session(model, vae, copy, torch.float32, False)
        try:
            context_of = trainer._Context(dinov2, copy, REFERENCE)
            x0, xt, patched = trainer._predict(
                session.patched, session.injection, session.vae, context_of, batch, noise, sigmas, torch.float32, text
            )
            hint = pack_submodule("models.diffuse_to_choose.hint").build_hint(
                batch.images, batch.masks, batch.references
            )
            base = model.model
            sizes = {"width": RES, "height": RES, "crop_w": 0, "crop_h": 0, "target_width": RES, "target_height": RES}
            y = base.encode_adm(pooled_output=text[0][1]["pooled_output"], **sizes).expand(2, -1)
            masked = base.process_latent_in(session.vae.encode(hint.masked_source))
            plain = base.apply_model(
                xt,
                sigmas,
                c_concat=torch.cat([_latent_mask(batch.masks), masked], dim=1),
                c_crossattn=context_of(batch.references, batch.keep_reference, xt.device),
                y=y,
            )
        finally:
            session.release()
    assert torch.equal(patched, plain.float())
    with pytest.raises(ValueError, match="text_conditioning: this model \\(SDXL\\) needs a text conditioning"):
        trainer.train_dtc(model, vae, dinov2, adapter, pairs[0], settings(trainer))


def _latent_mask(masks):
    """The mask channel as ComfyUI's concat_cond builds it: bilinear to latent size, rounded."""
    import comfy.utils

    size = (masks.shape[-1] // 8, masks.shape[-2] // 8)
    return comfy.utils.common_upscale(masks[:, None], *size, "bilinear", "center").round()


@pytest.mark.slow
def test_a_short_sdxl_training_run_lowers_the_loss(trainer, tiny_sdxl_inpaint, dinov2, adapter, pairs):
    model, _clip, vae = tiny_sdxl_inpaint
    train, held_out = pairs
    text = random_sdxl_conditioning(6, size=RES)
    s = settings(
        trainer,
        steps=20,
        learning_rate=3e-3,
        trainable="film+hint_cnn",
        mask_mode="given",
        condition_dropout=0.0,
        rotation_degrees=0.0,
    )
    before = trainer.masked_x0_error(model, vae, dinov2, adapter, held_out, s, samples=4, text_conditioning=text)
    result = trainer.train_dtc(model, vae, dinov2, adapter, train, s, text_conditioning=text)
    after = trainer.masked_x0_error(model, vae, dinov2, result.adapter, held_out, s, samples=4, text_conditioning=text)
    print(f"SDXL held-out x0 error inside the mask: untrained {before:.4f}, trained {after:.4f} ({after / before:.3f})")
    assert after < 0.8 * before, (before, after)
    first, last = result.losses[0]["loss"], sum(entry["loss"] for entry in result.losses[-5:]) / 5
    assert last < first, (first, last)
    assert all(not film.proj.weight.detach().any() for film in adapter.film)
