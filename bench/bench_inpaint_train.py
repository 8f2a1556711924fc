"""Paint-by-Example fine-tuning and DreamInpainter training steps vs plain LoRA inpainting steps, one run, ratios.

One step = forward and backward, batch 1, 256 px sources (32x32 latent), the same 9-channel SD1.5-shaped UNet
(bench_dtc_train.unet_config: full width; EXEMPLAR_BENCH_RES_BLOCKS=1 for one res block per level) with a rank-16
LoRA on every attention projection, random weights, a random TAESD VAE (its encodes are in every variant), CPU, fp32:

- plain inpainting LoRA step: VAE encodes of the source and the masked source, the UNet with a fixed 77-token text
  context, MSE, backward into the LoRA (the baseline of both ratios);
- PbE fine-tune step: the trainer's own Session.predict (nodes/paint_by_example/trainer.py) with a full-size
  CLIP ViT-L/14 exemplar encoder (224 px, frozen; mapper, final_ln, proj_out and the learnable vector trained) and
  the 1-token context; target: <= 1.05 the plain step;
- DreamInpainter step: the trainer's own Session.predict (nodes/dreaminpainter/trainer.py): the reference's UNet
  pass to the 2nd down stage (256 px, no gradient, once per sample), the scorer's straight-through top-24, the
  projection, the UNet with 77 + 24 tokens; reported.
"""

import os
import resource

import torch
from bench_dtc_train import unet_config
from harness import compare, report

from exemplar_dev import host
from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import random_state_dict, tiny_unet

RES = 256
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


def random_vae():
    import comfy.sd
    import comfy.taesd.taesd

    return comfy.sd.VAE(sd=random_state_dict(comfy.taesd.taesd.TAESD(), "", seed=1))


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
    mask[:, 64:192, 80:200] = 1
    reference = torch.rand(1, 224, 224, 3, generator=g)
    noise = torch.randn(1, 4, RES // 8, RES // 8, generator=g)
    sigma = torch.tensor([2.0])
    text = torch.randn(1, 77, 768, generator=g)

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
                         "PbE fine-tune step": pbe_step}, steps=1, repeats=repeats)
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
        return text

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
    pbe_ratio = pbe_times["PbE fine-tune step"] / pbe_times["plain inpainting LoRA step"]
    di_ratio = di_times["DreamInpainter training step"] / di_times["plain LoRA step (DreamInpainter's UNet)"]
    extra = (
        f"  PbE / plain: {pbe_ratio:.3f} (target <= 1.05); DreamInpainter / plain: {di_ratio:.3f}\n"
        f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB, "
        f"threads {torch.get_num_threads()}"
    )
    print(extra, flush=True)
    return "\n".join([text_pbe, text_di, extra])


if __name__ == "__main__":
    main()
