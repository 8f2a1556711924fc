"""Diffuse to Choose step cost: DtC (hint encoder + 13 FiLM) vs a stock ControlNet vs the plain UNet, one run.

Both DtC and ControlNet add one copy of the UNet encoder per CFG step (on the batched cond/uncond
pair), so DtC / ControlNet should stay near 1 (target <= 1.05). All three run on the same full-size
9-channel (inpainting) SD1.5-shaped UNet with random weights, 32x32 latent, CPU, fp32.

Memory: the UNet is 3.4 GB (fp32; the harness briefly holds twice that while loading it). The
DtC hint encoder and the ControlNet would add 1.4-1.5 GB each; here their encoder weights alias the
UNet's tensors (same shapes, same arithmetic, so the same time), which keeps the resident set near
3.6 GB. Set EXEMPLAR_BENCH_REPEATS to trade time for spread.
"""

import os
import resource

import torch
from harness import compare, full_sd15_model, ksampler_run, report, text_conditioning

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import random_state_dict

STEPS = 3
LATENT = 32


def aliased(module: torch.nn.Module, unet: torch.nn.Module) -> None:
    """Point `module`'s encoder tensors at the UNet's tensors of the same name and shape (frees the copies)."""
    source = unet.state_dict()
    shared = {k: v for k, v in module.state_dict().items() if k in source and source[k].shape == v.shape}
    module.load_state_dict({k: source[k] for k in shared}, strict=False, assign=True)


def random_controlnet(base_config: dict, unet: torch.nn.Module):
    """A stock SD1.5-shaped ControlNet (hint 3 channels) through ComfyUI's loader, encoder aliased to `unet`."""
    import comfy.controlnet
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    config = dict(base_config, in_channels=4, hint_channels=3)
    config.pop("out_channels", None)
    net = ControlNet(**config, device="meta", operations=comfy.ops.disable_weight_init)
    unet_keys = set(unet.state_dict())
    shapes = {k: v for k, v in unet.state_dict().items()}
    state = {}
    for key, tensor in net.state_dict().items():
        if key in unet_keys and shapes[key].shape == tensor.shape:
            state[key] = shapes[key]
        else:
            state.update(random_state_dict(_Single(key, tensor.shape), "", seed=3))
    control = comfy.controlnet.load_controlnet_state_dict(state)
    aliased(control.control_model, unet)
    return control


class _Single(torch.nn.Module):
    """One meta tensor under its full name, for random_state_dict."""

    def __init__(self, name, shape):
        super().__init__()
        self.name, self.shape = name, shape

    def state_dict(self, *args, **kwargs):
        return {self.name: torch.empty(self.shape, device="meta")}


def with_control(conditioning, control, hint):
    out = []
    for context, extra in conditioning:
        extra = dict(extra)
        extra["control"] = control.copy().set_cond_hint(hint, 1.0, (0.0, 1.0))
        out.append([context, extra])
    return out


def main():
    from harness import FULL_SD15_UNET

    model = full_sd15_model(in_channels=9)
    positive, negative = text_conditioning(1), text_conditioning(2)
    latent = torch.zeros(1, 4, LATENT, LATENT)
    hint_image = torch.rand(1, LATENT * 8, LATENT * 8, 3, generator=torch.Generator().manual_seed(0))

    glue = pack_submodule("nodes.diffuse_to_choose.adapter_patch")
    adapter = glue.create_adapter(model, image_dim=1536, seed=0)
    aliased(adapter.hint_encoder, model.model.diffusion_model)
    torch.manual_seed(0)
    for film in adapter.film:  # trained-looking FiLM weights: the cost must not depend on zeros
        torch.nn.init.normal_(film.proj.weight, std=1e-3)
    dtc_model, _ = glue.apply_adapter(model, adapter, hint_image, None, 1.0)

    control = random_controlnet(FULL_SD15_UNET, model.model.diffusion_model)
    cn_positive = with_control(positive, control, hint_image.movedim(-1, 1))
    cn_negative = with_control(negative, control, hint_image.movedim(-1, 1))

    repeats = int(os.environ.get("EXEMPLAR_BENCH_REPEATS", "5"))
    per_step = compare(
        {
            "plain KSampler (cfg 5)": lambda: ksampler_run(model, positive, negative, latent, STEPS),
            "stock ControlNet": lambda: ksampler_run(model, cn_positive, cn_negative, latent, STEPS),
            "Diffuse to Choose (hint encoder + FiLM)": lambda: ksampler_run(
                dtc_model, positive, negative, latent, STEPS
            ),
        },
        steps=STEPS,
        repeats=repeats,
    )
    text = report(
        "Diffuse to Choose vs stock ControlNet (full-size 9-ch SD1.5 UNet, 32x32 latent, CPU)",
        per_step,
        "plain KSampler (cfg 5)",
    )
    ratio = per_step["Diffuse to Choose (hint encoder + FiLM)"] / per_step["stock ControlNet"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    extra = (
        f"  DtC / ControlNet step time: {ratio:.3f} (target <= 1.05)\n"
        f"  peak RSS {peak:.1f} GB, threads {torch.get_num_threads()}"
    )
    print(extra, flush=True)
    return text + "\n" + extra


if __name__ == "__main__":
    main()
