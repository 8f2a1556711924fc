"""Diffuse to Choose training step vs a diffusers ControlNet training step, one run, ratios.

One step = forward and backward, batch 1, 32x32 latent (256 px hint image), same 9-channel SD1.5-shaped UNet
(harness.FULL_SD15_UNET) and the same 257-token context on both sides, random weights, CPU, fp32:

- DtC: the trainer's own call (nodes/diffuse_to_choose/trainer.py: hint CNN + UNet-encoder copy + 13 FiLM on
  ComfyUI's UNet, the whole adapter trainable: `trainable="all"`);
- ControlNet: diffusers' `ControlNetModel.from_unet` + `UNet2DConditionModel`, the ControlNet trainable (as in
  diffusers' train_controlnet.py).

Backbones differ (ComfyUI's UNet vs diffusers'), so each side's plain UNet forward+backward is timed too and the
normalised ratio (DtC / its UNet) / (ControlNet / its UNet) is reported beside the raw one (target <= 1.15).
Memory: weights + gradients of the trainable part + the activations autograd saves for backward (counted with
saved-tensor hooks; under gradient checkpointing only what the checkpointed regions keep), per variant.

Attention: diffusers runs PyTorch's scaled-dot-product attention on every device; ComfyUI runs it on NVIDIA GPUs
(and with --use-pytorch-cross-attention) but its sub-quadratic attention on the CPU, which is what made ComfyUI's
UNet ~1.5x slower than diffusers' here. So ComfyUI is booted with PyTorch attention (the kernel DtC users train with
on a GPU, and the one the ControlNet side uses); EXEMPLAR_BENCH_ATTENTION=comfyui-cpu-default measures the CPU
default instead.

EXEMPLAR_BENCH_RES_BLOCKS=1 halves the depth (full size needs ~14 GB of RAM), EXEMPLAR_BENCH_REPEATS trades time
for spread, EXEMPLAR_BENCH_THREADS caps torch's threads.
"""

import os
import resource

import torch
from harness import FULL_SD15_UNET, compare, report

from exemplar_dev import host
from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import random_state_dict, tiny_unet

LATENT = 32
TOKENS = 257


def unet_config() -> dict:
    """The full-size 9-channel UNet, or with EXEMPLAR_BENCH_RES_BLOCKS=1 the same widths at one res block per level
    (ComfyUI detects SD1.5 only at 320 channels, so depth is what can shrink)."""
    blocks = int(os.environ.get("EXEMPLAR_BENCH_RES_BLOCKS", "2"))
    if blocks == 2:
        return dict(FULL_SD15_UNET, in_channels=9)
    if blocks != 1:
        raise ValueError(f"EXEMPLAR_BENCH_RES_BLOCKS: 1 or 2, got {blocks}")
    return dict(
        FULL_SD15_UNET, in_channels=9, num_res_blocks=[1, 1, 1, 1], transformer_depth=[1, 1, 1, 0],
        transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0],
    )


class SavedBytes:
    """Bytes autograd saves for backward while active (each storage once)."""

    def __init__(self):
        self.storages = {}

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def nbytes(params) -> int:
    return sum(p.numel() * p.element_size() for p in params)


def comfy_side(config, inputs, checkpointing: bool):
    import comfy.sd

    trainer = pack_submodule("nodes.diffuse_to_choose.trainer")
    adapter_patch = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    model = comfy.sd.load_diffusion_model_state_dict(random_state_dict(tiny_unet(config), "", seed=0))
    with torch.inference_mode(False):
        adapter = adapter_patch.create_adapter(model, image_dim=768, seed=0)
        torch.manual_seed(0)
        for film in adapter.film:  # trained-looking FiLM: the cost must not depend on zeros
            torch.nn.init.normal_(film.proj.weight, std=1e-3)
        params = trainer._trainable_parameters(adapter, "all")
    from comfy_extras.nodes_train import find_all_highest_child_module_with_forward, patch, unpatch

    session = trainer.Session(model, None, adapter, torch.float32, False)
    session.injection.set_hint(inputs["hint_image"])
    # the blocks Session(gradient_checkpointing=True) wraps; patched around one step only, because they are the
    # same module objects for every variant here
    blocks = find_all_highest_child_module_with_forward(session.patched.model.diffusion_model)
    blocks += find_all_highest_child_module_with_forward(adapter.hint_encoder)

    def step(ckpt=checkpointing, plain=False):
        for m in blocks if ckpt else ():
            patch(m)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = inputs["x"].requires_grad_(plain)
                conds = {"c_concat": inputs["concat"], "c_crossattn": inputs["context"]}
                if plain:
                    out = model.model.apply_model(x, inputs["sigma"], **conds)
                else:
                    out = trainer.call_model(session.patched, x, inputs["sigma"], torch.float32, **conds)
                out.float().square().mean().backward()
        finally:
            for m in blocks if ckpt else ():
                unpatch(m)
        for p in params:
            p.grad = None
        return out

    return model, adapter, params, step, session


def diffusers_side(config, inputs):
    from diffusers import ControlNetModel, UNet2DConditionModel

    c = config["model_channels"]
    blocks = config["num_res_blocks"][0]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=9, out_channels=4, block_out_channels=(c, 2 * c, 4 * c, 4 * c),
        layers_per_block=blocks, cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).requires_grad_(False)
    controlnet = ControlNetModel.from_unet(unet, conditioning_channels=3).train()
    x9 = torch.cat([inputs["x"], inputs["concat"]], dim=1)
    t = torch.tensor([500])
    hint = inputs["hint_image"].movedim(-1, 1)

    def step(checkpointing=False, plain=False):
        if checkpointing:
            unet.enable_gradient_checkpointing()
            controlnet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()
            controlnet.disable_gradient_checkpointing()
        unet.train(checkpointing)  # diffusers checkpoints only modules in training mode
        if plain:
            out = unet(x9.requires_grad_(True), t, encoder_hidden_states=inputs["context"]).sample
        else:
            down, mid = controlnet(x9, t, encoder_hidden_states=inputs["context"], controlnet_cond=hint,
                                   return_dict=False)
            out = unet(x9, t, encoder_hidden_states=inputs["context"], down_block_additional_residuals=down,
                       mid_block_additional_residual=mid).sample
        out.square().mean().backward()
        controlnet.zero_grad(set_to_none=True)
        return out

    return unet, controlnet, step


def attention() -> str:
    name = os.environ.get("EXEMPLAR_BENCH_ATTENTION", "pytorch")
    if name not in ("pytorch", "comfyui-cpu-default"):
        raise ValueError(f"EXEMPLAR_BENCH_ATTENTION: 'pytorch' or 'comfyui-cpu-default', got {name!r}")
    return name


def main():
    host.boot(pytorch_attention=attention() == "pytorch")
    config = unet_config()
    g = torch.Generator().manual_seed(0)
    inputs = {
        "x": torch.randn(1, 4, LATENT, LATENT, generator=g),
        "concat": torch.randn(1, 5, LATENT, LATENT, generator=g),
        "context": torch.randn(1, TOKENS, 768, generator=g),
        "hint_image": torch.rand(1, LATENT * 8, LATENT * 8, 3, generator=g),
        "sigma": torch.tensor([2.0]),
    }
    model, adapter, dtc_params, dtc_step, session = comfy_side(config, inputs, False)
    unet, controlnet, cn_step = diffusers_side(config, inputs)

    repeats = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "3"))
    variants = {
        "ComfyUI UNet fwd+bwd": lambda: dtc_step(plain=True),
        "DtC training step": lambda: dtc_step(False),
        "DtC training step (grad ckpt)": lambda: dtc_step(True),
        "diffusers UNet fwd+bwd": lambda: cn_step(plain=True),
        "ControlNet training step": lambda: cn_step(False),
        "ControlNet training step (grad ckpt)": lambda: cn_step(True),
    }
    per_step = compare(variants, steps=1, repeats=repeats)
    depth = config["num_res_blocks"][0]
    title = (
        f"DtC vs ControlNet training step (9-ch SD1.5-shaped UNet, {depth} res blocks per level, 32x32, CPU, "
        f"ComfyUI attention: {attention()})"
    )
    text = report(title, per_step, "ControlNet training step")

    memory = {}
    for name, run in (("DtC", dtc_step), ("ControlNet", cn_step)):
        for ckpt in (False, True):
            with SavedBytes() as saved:
                run(ckpt)
            memory[(name, ckpt)] = saved.total
    weights = {
        "DtC": (nbytes(model.model.diffusion_model.parameters()) + nbytes(adapter.parameters()), nbytes(dtc_params)),
        "ControlNet": (nbytes(unet.parameters()) + nbytes(controlnet.parameters()),
                       nbytes([p for p in controlnet.parameters() if p.requires_grad])),
    }
    raw = per_step["DtC training step"] / per_step["ControlNet training step"]
    normalised = (per_step["DtC training step"] / per_step["ComfyUI UNet fwd+bwd"]) / (
        per_step["ControlNet training step"] / per_step["diffusers UNet fwd+bwd"]
    )
    lines = [
        f"  DtC / ControlNet step time: {raw:.3f} raw, {normalised:.3f} normalised by each backbone (target <= 1.15)",
        f"  grad ckpt: DtC x{per_step['DtC training step (grad ckpt)'] / per_step['DtC training step']:.2f} time, "
        f"ControlNet x{per_step['ControlNet training step (grad ckpt)'] / per_step['ControlNet training step']:.2f}",
    ]
    for name, (all_weights, trained) in weights.items():
        lines.append(
            f"  {name}: weights {all_weights / 1e9:.2f} GB, grads {trained / 1e9:.2f} GB, saved activations "
            f"{memory[(name, False)] / 1e9:.2f} GB (grad ckpt {memory[(name, True)] / 1e9:.2f} GB)"
        )
    lines.append(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB, "
                 f"threads {torch.get_num_threads()}")
    session.release()
    extra = "\n".join(lines)
    print(extra, flush=True)
    return text + "\n" + extra


if __name__ == "__main__":
    main()
