"""Paint-by-Example fine-tuning and DreamInpainter training steps vs plain LoRA inpainting steps, one run, ratios.

One step = forward and backward, batch 1, the same 9-channel SD1.5-shaped UNet (bench_dtc_train.unet_config: full
size; EXEMPLAR_BENCH_RES_BLOCKS=1 for one res block per level) with a rank-16 LoRA on every attention projection,
random weights, CPU, fp32, at the papers' training size (512 px sources, 64x64 latent; EXEMPLAR_BENCH_TRAIN_RES to
change it). Every variant encodes the source and the masked source with the VAE SD1.5 and PbE train with (KL-f8,
full size; EXEMPLAR_BENCH_VAE=taesd for the small TAESD).

- plain inpainting LoRA step (the baseline of both ratios): the VAE encodes, the caption through SD1.5's frozen
  CLIP ViT-L/14 text encoder (full size, 77 tokens), the UNet, MSE, backward into the LoRA;
- PbE fine-tune step: the trainer's own Session.predict (nodes/paint_by_example/trainer.py), in which a full-size
  CLIP ViT-L/14 exemplar encoder (224 px, frozen tower; mapper, final_ln, proj_out and the learnable vector trained)
  takes the text encoder's place, the 1-token context; target: <= 1.05 the plain step;
- DreamInpainter step: the trainer's own Session.predict (nodes/dreaminpainter/trainer.py): the reference's UNet
  pass to the 2nd down stage (no gradient, once per sample), the scorer's straight-through top-24, the
  projection, the UNet with 77 + 24 tokens (the caption encoded as in the plain step); reported.

The caption encode is timed on its own too, so the report also gives each ratio against a plain step whose text
context was encoded beforehand.
"""

import os
import resource

import torch
from bench_dtc_train import unet_config
from harness import compare, report

from exemplar_dev import host
from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import random_state_dict, tiny_unet

RES = int(os.environ.get("EXEMPLAR_BENCH_TRAIN_RES", "512"))
VAE_KIND = os.environ.get("EXEMPLAR_BENCH_VAE", "sd")
VIT_L = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_layers": 24,
    "num_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "layer_norm_eps": 1e-5,
}


def vit_l_exemplar_encoder():
    """The PbE exemplar encoder at the official sizes (ViT-L/14 + 5 mapper blocks + 768-d projection), random."""
    encoder_module = pack_submodule("models.paint_by_example.encoder")
    tower = pack_submodule("models.paint_by_example.clip_vision_tower").VisionTowerConfig(**VIT_L)
    config = encoder_module.ExemplarEncoderConfig(tower, 5, 1024, 1, 768)
    torch.manual_seed(0)
    encoder = encoder_module.ExemplarEncoder(config).eval().requires_grad_(False)
    return pack_submodule("nodes.paint_by_example.loader").PbEExemplarEncoder(encoder, "cpu", "cpu")


SD_VAE_CONFIG = {  # SD1.x's KL-f8 autoencoder
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}


def random_vae():
    import comfy.sd

    if VAE_KIND == "taesd":
        import comfy.taesd.taesd

        return comfy.sd.VAE(sd=random_state_dict(comfy.taesd.taesd.TAESD(), "", seed=1))
    if VAE_KIND != "sd":
        raise ValueError(f"EXEMPLAR_BENCH_VAE: sd or taesd, got {VAE_KIND!r}")
    from comfy.ldm.models.autoencoder import AutoencoderKL

    with torch.device("meta"):
        autoencoder = AutoencoderKL(ddconfig=SD_VAE_CONFIG, embed_dim=4)
    return comfy.sd.VAE(sd=random_state_dict(autoencoder, "", seed=1))


def text_encoder():
    """SD1.5's CLIP ViT-L/14 text encoder at full size (ComfyUI's module, random weights), frozen."""
    import json
    from pathlib import Path

    import comfy.ops
    import comfy.sd1_clip
    from comfy.clip_model import CLIPTextModel

    config = json.loads((Path(comfy.sd1_clip.__file__).parent / "sd1_clip_config.json").read_text())
    with torch.device("meta"):
        model = CLIPTextModel(config, torch.float32, "meta", comfy.ops.disable_weight_init)
    model.load_state_dict(random_state_dict(model, "", seed=2), strict=False, assign=True)
    return model.train(False).requires_grad_(False)


def main():
    host.boot()
    import comfy.sd

    training = pack_submodule("nodes.common.training")
    noising = pack_submodule("models.common.noising")
    masks = pack_submodule("models.common.masks")
    pbe = pack_submodule("nodes.paint_by_example.trainer")
    di = pack_submodule("nodes.dreaminpainter.trainer")
    config = unet_config()
    model = comfy.sd.load_diffusion_model_state_dict(random_state_dict(tiny_unet(config), "", seed=0))
    vae = random_vae()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, RES, RES, 3, generator=g)
    mask = torch.zeros(1, RES, RES)
    mask[:, RES // 4 : 3 * RES // 4, 5 * RES // 16 : 25 * RES // 32] = 1
    reference = torch.rand(1, 224, 224, 3, generator=g)
    noise = torch.randn(1, 4, RES // 8, RES // 8, generator=g)
    sigma = torch.tensor([2.0])
    clip_text = text_encoder()
    caption = torch.full((1, 77), 49407)  # start, 12 word tokens, end padding: a caption's token ids
    caption[0, 0] = 49406
    caption[0, 1:13] = torch.randint(1000, 40000, (12,), generator=g)

    def encode_caption():
        with torch.no_grad():
            return clip_text(caption)[0]

    with torch.inference_mode(False):
        pbe_settings = pbe.PbESettings(resolution=RES, trainable="lora+head+vector", lora_rank=16, lora_alpha=16.0)
        pbe_session = pbe.Session(model, vae, pbe_settings, {}, torch.float32)
        encoder = pbe.training_encoder(vit_l_exemplar_encoder())
        pbe_params = pbe._encoder_parameters(encoder, ("head", "vector")) + pbe_session.lora_parameters()
        for p in pbe_session.lora_parameters():  # trained-looking LoRA: the cost must not depend on zeros
            torch.nn.init.normal_(p, std=1e-3)
        pbe_batch = pbe.PbEBatch(image, mask, reference, torch.tensor([True]))
    # one UNet, one LoRA-wrapped clone at a time: the PbE session is released before the DreamInpainter one loads

    def plain_step(session, params):
        with torch.inference_mode(False), torch.enable_grad():
            base = session.patched.model
            text = encode_caption()
            x0 = base.process_latent_in(session.vae.encode(image))
            masked = session.vae.encode(masks.masked_source(image, mask))
            hole = masks.binary_mask(mask, tuple(x0.shape[-2:]))[:, None]
            xt = noising.add_noise(x0, noise, sigma)
            conds = base.extra_conds(noise=xt, device=xt.device, cross_attn=text, concat_latent_image=masked,
                                     concat_mask=hole)
            out = training.call_model(session.patched, xt, sigma, torch.float32, **{k: v.cond for k, v in
                                                                                   conds.items()})
            noising.implied_noise(xt, out.float(), sigma).sub(noise).square().mean().backward()
        for p in params:
            p.grad = None

    def pbe_step():
        with torch.inference_mode(False), torch.enable_grad():
            _x0, xt, denoised = pbe_session.predict(encoder, pbe_batch, noise, sigma, torch.float32)
            noising.implied_noise(xt, denoised, sigma).sub(noise).square().mean().backward()
        for p in pbe_params:
            p.grad = None

    repeats = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))
    lora = pbe_session.lora_parameters()
    pbe_times = compare({"plain inpainting LoRA step": lambda: plain_step(pbe_session, lora),
                         "PbE fine-tune step": pbe_step, "caption encode alone": encode_caption},
                        steps=1, repeats=repeats)
    pbe_session.release()

    with torch.inference_mode(False):
        di_settings = di.DISettings(resolution=RES, reference_resolution=RES, k=24, trainable="projection+scorer+lora",
                                    lora_rank=16, lora_alpha=16.0)
        di_session = di.Session(model, vae, di_settings, {}, torch.float32)
        for p in di_session.lora_parameters():
            torch.nn.init.normal_(p, std=1e-3)
        dim = di_session.reference_tokens(reference, di_settings).shape[-1]
        scorer, projection = di._parts(dim, 768, di_settings)
        projection.gate.data.fill_(0.1)
        scorer.requires_grad_(True)
        projection.requires_grad_(True)
        di_params = list(scorer.parameters()) + list(projection.parameters()) + di_session.lora_parameters()
        di_batch = di.DIBatch(image, mask, reference, ["a photo"], torch.tensor([False]))

    def text_of(prompts, device):
        return encode_caption()

    def di_step():
        with torch.inference_mode(False), torch.enable_grad():
            _x0, xt, denoised, region = di_session.predict(
                (scorer, projection), di_batch, text_of, di_settings, noise, sigma, torch.float32,
                torch.Generator().manual_seed(0),
            )
            (noising.implied_noise(xt, denoised, sigma).sub(noise).square() * region).mean().backward()
        for p in di_params:
            p.grad = None

    lora = di_session.lora_parameters()
    di_times = compare({"plain LoRA step (DreamInpainter's UNet)": lambda: plain_step(di_session, lora),
                        "DreamInpainter training step": di_step}, steps=1, repeats=repeats)
    di_session.release()

    depth = config["num_res_blocks"][0]
    title = f"training steps (9-ch SD1.5-shaped UNet, {depth} res blocks per level, {RES} px, LoRA rank 16, CPU)"
    text_pbe = report(title + ": Paint by Example", pbe_times, "plain inpainting LoRA step")
    text_di = report(title + ": DreamInpainter", di_times, "plain LoRA step (DreamInpainter's UNet)")
    plain, caption_cost = pbe_times["plain inpainting LoRA step"], pbe_times["caption encode alone"]
    pbe_ratio = pbe_times["PbE fine-tune step"] / plain
    di_plain = di_times["plain LoRA step (DreamInpainter's UNet)"]
    di_ratio = di_times["DreamInpainter training step"] / di_plain
    extra = (
        f"  PbE / plain: {pbe_ratio:.3f} (target <= 1.05); DreamInpainter / plain: {di_ratio:.3f}\n"
        f"  against a plain step given its text context ready-made (caption encode {caption_cost:.2f} s taken off):"
        f" PbE {pbe_times['PbE fine-tune step'] / (plain - caption_cost):.3f}, DreamInpainter "
        f"{(di_times['DreamInpainter training step'] - caption_cost) / (di_plain - caption_cost):.3f}\n"
        f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB, "
        f"threads {torch.get_num_threads()}"
    )
    print(extra, flush=True)
    return "\n".join([text_pbe, text_di, extra])


if __name__ == "__main__":
    main()
