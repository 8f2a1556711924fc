"""DreamBooth on SDXL: LoRA on the UNet and both text encoders, read back by ComfyUI's stock LoRA loader, on the tiny
SDXL checkpoint."""

import pytest
import torch

from exemplar_dev.host import pack_submodule

pytestmark = pytest.mark.slow  # every SDXL text encode runs the full-size bigG tower


@pytest.fixture(scope="module")
def trainer(comfy):
    return pack_submodule("nodes.dreambooth.trainer")


def attention_projection_count(module) -> int:
    from comfy.ldm.modules.attention import CrossAttention

    return 4 * sum(isinstance(m, CrossAttention) for m in module.modules())  # q, k, v, out of each


def test_every_lora_module_is_applied_by_the_stock_loader(node, tiny_sdxl, trainer, model_folder):
    import comfy.lora
    from safetensors.torch import save_file

    model, clip, _ = tiny_sdxl
    unet_names = trainer.unet_lora_names(model.model)
    text_names = trainer.text_encoder_lora_names(clip)
    assert len(unet_names) == attention_projection_count(model.model.diffusion_model) == 4 * 2 * (24 + 1 + 6)
    te1 = [n for n in text_names.values() if n.startswith("lora_te1_")]
    te2 = [n for n in text_names.values() if n.startswith("lora_te2_")]
    assert len(te1) == 4 * 12 and len(te2) == 4 * 32 and len(text_names) == len(te1) + len(te2)
    modules = dict(model.model.named_modules()) | {f"clip.{k}": v for k, v in clip.patcher.model.named_modules()}
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, name in {**unet_names, **{f"clip.{k}": v for k, v in text_names.items()}}.items():
        out_features, in_features = modules[key[: -len(".weight")]].weight.shape
        state[f"{name}.lora_down.weight"] = torch.randn(2, in_features, generator=g)
        state[f"{name}.lora_up.weight"] = torch.randn(out_features, 2, generator=g)
        state[f"{name}.alpha"] = torch.tensor(2.0)
    save_file(state, str(model_folder("loras") / "sdxl_all_modules.safetensors"))
    lora_model, lora_clip = node("LoraLoader")().load_lora(model, clip, "sdxl_all_modules.safetensors", 1.0, 1.0)
    assert len(lora_model.patches) == len(unet_names)
    assert len(lora_clip.patcher.patches) == len(text_names)
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    assert len(comfy.lora.load_lora(state, key_map, log_missing=False)) == len(unet_names) + len(text_names)


@pytest.fixture(scope="module")
def trained(tiny_sdxl, trainer):
    """A one-step DreamBooth LoRA (UNet + both text encoders, prior preservation) on the tiny SDXL model."""
    model, clip, vae = tiny_sdxl
    g = torch.Generator().manual_seed(1)
    instance = trainer.encode_images(vae, torch.rand(1, 64, 64, 3, generator=g), 64)
    classes = trainer.encode_images(vae, torch.rand(1, 64, 64, 3, generator=g), 64)
    settings = trainer.DreamBoothSettings(
        rank=2, alpha=2.0, learning_rate=0.05, steps=1, prior_loss_weight=1.0, train_text_encoder=True, seed=0
    )
    prompts = trainer.PromptSet("a sks dog", "a dog")
    return trainer.train_dreambooth(model, instance, prompts, settings, clip=clip, class_latents=classes)


def prediction(model, clip, prompt="a sks dog"):
    import comfy.model_management

    comfy.model_management.load_models_gpu([model])
    out = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True, return_dict=True)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7)) * 3
    conds = model.model.extra_conds(
        noise=x, cross_attn=out["cond"], pooled_output=out["pooled_output"], width=64, height=64
    )
    return model.model.apply_model(x, torch.tensor([3.0]), **{k: v.cond for k, v in conds.items()})


def test_trained_lora_names_both_text_encoders_and_the_unet(trained):
    names = {k.split(".", 1)[0] for k in trained.state_dict}
    assert any(n.startswith("lora_unet_") for n in names)
    assert any(n.startswith("lora_te1_") for n in names) and any(n.startswith("lora_te2_") for n in names)
    assert trained.losses[0]["prior"] > 0 and trained.losses[0]["instance"] > 0


def test_lora_at_strength_zero_is_the_base_model_and_trained_lora_changes_it(tiny_sdxl, trained):
    import comfy.sd

    model, clip, _ = tiny_sdxl
    base = prediction(model, clip)
    zero_model, zero_clip = comfy.sd.load_lora_for_models(model, clip, trained.state_dict, 0.0, 0.0)
    assert len(zero_model.patches) > 0 and len(zero_clip.patcher.patches) > 0
    assert torch.equal(prediction(zero_model, zero_clip), base)
    full_model, full_clip = comfy.sd.load_lora_for_models(model, clip, trained.state_dict, 1.0, 1.0)
    changed_unet = prediction(full_model, clip)
    assert torch.isfinite(changed_unet).all() and not torch.equal(changed_unet, base)
    text = full_clip.encode_from_tokens(full_clip.tokenize("a sks dog"), return_pooled=True, return_dict=True)
    plain = clip.encode_from_tokens(clip.tokenize("a sks dog"), return_pooled=True, return_dict=True)
    assert not torch.equal(text["cond"][..., :768], plain["cond"][..., :768])  # CLIP-L changed
    assert not torch.equal(text["cond"][..., 768:], plain["cond"][..., 768:])  # bigG changed
    assert not torch.equal(text["pooled_output"], plain["pooled_output"])


def test_class_images_carry_sdxl_size_conditioning(node, tiny_sdxl, trainer):
    """Class images equal the stock sampler's with original and target size = the class image size, uncropped, in the
    conditioning; another size conditioning gives other images."""
    import comfy.sample

    model, clip, vae = tiny_sdxl
    ours = trainer.generate_class_images(model, clip, vae, "a dog", 1, 64, 64, 1, 1.0, "euler", "normal", 5, 1)

    def stock(size):
        out = clip.encode_from_tokens(clip.tokenize("a dog"), return_pooled=True, return_dict=True)
        cond = [[out.pop("cond"), {**out, **size}]]
        latent = torch.zeros(1, 4, 8, 8)
        noise = comfy.sample.prepare_noise(latent, 5)
        samples = comfy.sample.sample(
            model, noise, 1, 1.0, "euler", "normal", cond, cond, latent, disable_pbar=True, seed=5
        )
        return vae.decode(samples).float()

    sized = dict(width=64, height=64, crop_w=0, crop_h=0, target_width=64, target_height=64)
    assert torch.equal(ours, stock(sized))
    assert not torch.equal(ours, stock(dict(width=1024, height=1024, target_width=1024, target_height=1024)))
