"""Diffuse to Choose on the Paint-by-Example loader's 9-channel MODEL: DINOv2 image conditioning
into PbE inpaint conditioning, the hint path patched onto the PbE UNet."""

import torch

from exemplar_dev.tiny_dtc import tiny_dinov2


def sample(model, positive, negative, latent):
    import comfy.sample

    samples = latent["samples"]
    noise = torch.randn(samples.shape, generator=torch.Generator().manual_seed(0))
    return comfy.sample.sample(
        model, noise, 2, 5.0, "euler", "normal", positive, negative, samples,
        noise_mask=latent.get("noise_mask"), disable_pbar=True, seed=0,
    )


def test_dtc_on_the_pbe_model_is_identity_untrained_and_live_when_trained(node, tiny_pbe, tmp_path):
    model, vae, _ = tiny_pbe
    g = torch.Generator().manual_seed(7)
    person = torch.rand(1, 64, 64, 3, generator=g)
    garment = torch.rand(1, 48, 40, 3, generator=g)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:56, 12:52] = 1

    adapter = node("ExemplarDtCAdapterCreate").execute(model=model, image_dim=32, seed=3).result[0]
    positive, negative = node("ExemplarDtCImageConditioning").execute(
        clip_vision=tiny_dinov2(tmp_path), reference=garment, adapter=adapter, resolution=224, crop="center",
    ).result
    positive, negative, latent = node("ExemplarPbEInpaintConditioning").execute(
        positive=positive, negative=negative, vae=vae, pixels=person, mask=mask,
    ).result
    hint = (
        node("ExemplarDtCHint").execute(image=person, mask=mask, reference=garment, fit="stretch", min_side=8).result[0]
    )

    plain = sample(model, positive, negative, latent)
    patched = node("ExemplarDtCApply").execute(model=model, adapter=adapter, hint=hint, strength=1.0).result[0]
    assert patched is not model
    assert torch.equal(sample(patched, positive, negative, latent), plain)

    with torch.no_grad():  # a "trained" FiLM on the first skip: the hint path now changes the output
        adapter.film[0].proj.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(1))
    changed = sample(patched, positive, negative, latent)
    assert not torch.equal(changed, plain)
    assert torch.equal(sample(model, positive, negative, latent), plain)  # the PbE model itself is untouched
