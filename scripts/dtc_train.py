"""Diffuse to Choose adapter training from the command line: the same trainer as the Train DtC Adapter node.

One process:
    python scripts/dtc_train.py --checkpoint sd15_inpainting.safetensors --clip-vision dinov2_giant.safetensors \
        --dataset viton_hd/train --output models/exemplar/dtc/viton.safetensors --vgg16 vgg16-397923af.pth \
        --perceptual-weight 0.1

The checkpoint is an SD1.x, SD2.x or SDXL inpainting checkpoint (9-channel UNet input; SDXL: e.g.
sd_xl_base_1.0_inpainting_0.1.safetensors, its adapter has 10 FiLM). An SDXL UNet also reads a vector conditioning:
--prompt is encoded with the checkpoint's own CLIP-L + bigG (as CLIP Text Encode does) and its pooled output, with
the training resolution as the size values, conditions every step; its tokens are not used (the image tokens are
the context).

Several GPUs (or CPU processes, gloo) through torchrun; every rank draws its own pairs and noise and the gradients
are averaged before each step, so all ranks end with the same weights:
    torchrun --standalone --nproc_per_node 8 scripts/dtc_train.py ...same arguments...

Without --adapter a fresh adapter is made from the checkpoint's UNet encoder (as Create DtC Adapter does), with
--image-dim matching the CLIP vision model's width. ComfyUI is imported from --comfyui (default: $COMFYUI_DIR,
else the ComfyUI this pack is installed in).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cli_boot
import train_cli


def parse_args(argv=None):
    p = train_cli.common_parser("Train a Diffuse to Choose adapter (comfyui-exemplar).", 1e-5)
    p.add_argument("--checkpoint", required=True, help="SD1.x / SD2.x / SDXL inpainting checkpoint (single file)")
    p.add_argument("--prompt", default="", help="SDXL: the text whose pooled output conditions the UNet (default: '')")
    p.add_argument("--clip-vision", required=True, help="DINOv2 CLIP vision file (as Load CLIP Vision reads it)")
    p.add_argument("--output", required=True, help="adapter file to write (.safetensors)")
    p.add_argument("--adapter", help="adapter file to start from (default: a fresh one made from the checkpoint)")
    p.add_argument("--image-dim", type=int, default=0, help="fresh adapter: token width (default: the encoder's)")
    p.add_argument("--adapter-seed", type=int, default=0, help="fresh adapter: seed of its random initial weights")
    p.add_argument("--reference-size", type=int, default=224)
    p.add_argument("--trainable", default="all", choices=["film", "film+hint_cnn", "film+hint_cnn+encoder", "all"])
    p.add_argument("--mask-mode", default="mixed", choices=["mixed", "given", "box", "irregular"])
    p.add_argument("--fine-probability", type=float, default=0.5)
    p.add_argument("--flip-probability", type=float, default=0.5)
    p.add_argument("--rotation-degrees", type=float, default=10.0)
    p.add_argument("--condition-dropout", type=float, default=0.1)
    p.add_argument("--perceptual-weight", type=float, default=0.0)
    p.add_argument("--vgg16", help="VGG16 ImageNet weights (torchvision's vgg16-397923af.pth) for the perceptual loss")
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    cli_boot.one_gpu_per_rank(opts.cpu)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(opts.comfyui), opts.cpu)
    trainer = cli_boot.pack_module("nodes.diffuse_to_choose.trainer")
    adapter_patch = cli_boot.pack_module("nodes.diffuse_to_choose.adapter_patch")
    datasets = cli_boot.pack_module("models.common.datasets")
    perceptual = cli_boot.pack_module("models.common.perceptual")
    train_loop = cli_boot.pack_module("models.common.train_loop")
    vector_conditioning = cli_boot.pack_module("nodes.common.vector_conditioning")
    import cli_checkpoint
    import torch

    import comfy.clip_vision
    import comfy.sd

    rank, world = train_loop.init_distributed(opts.cpu)

    log, on_step, on_preview = train_cli.progress(rank, opts.preview_dir, ("loss", "diffusion", "perceptual"))

    settings = trainer.DtCSettings.from_values(vars(opts))
    settings.validate()
    with torch.inference_mode(False):
        model, _clip, vae, family = cli_checkpoint.load(
            opts.checkpoint, "Diffuse to Choose", cli_checkpoint.INPAINTING, output_clip=False
        )
        log(f"{family} inpainting model")
        text_conditioning = None
        if vector_conditioning.needs_vector_conditioning(model):
            clip = comfy.sd.load_checkpoint_guess_config(opts.checkpoint, output_vae=False, output_model=False)[1]
            if clip is None:
                raise SystemExit(f"--checkpoint {opts.checkpoint}: this {family} model needs its text encoders")
            text_conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(opts.prompt))
            del clip
        clip_vision = comfy.clip_vision.load(opts.clip_vision)
        if clip_vision is None:
            raise SystemExit(f"--clip-vision {opts.clip_vision}: not a CLIP vision model ComfyUI recognises")
        dataset = datasets.scan_pairs(opts.dataset, opts.layout)
        log(dataset.report())
        if opts.adapter:
            adapter = adapter_patch.load_adapter(opts.adapter)
        else:
            width = opts.image_dim or clip_vision.model.embeddings.patch_embeddings.projection.out_channels
            adapter = adapter_patch.create_adapter(model, image_dim=width, seed=opts.adapter_seed)
        vgg = None
        if opts.perceptual_weight > 0:
            if not opts.vgg16:
                raise SystemExit("--perceptual-weight > 0 needs --vgg16 (torchvision's vgg16-397923af.pth)")
            vgg = perceptual.vgg16_features(perceptual.read_weight_file(opts.vgg16), source=opts.vgg16)
        log(f"{len(dataset)} pairs, world size {world}, training {settings.trainable} for {settings.steps} steps")
        output = Path(opts.output)

        def checkpoint(result):
            path = trainer.save_checkpoint(train_loop.checkpoint_path(output, result.step), result)
            log(f"checkpoint {path}")

        result = trainer.train_dtc(model, vae, clip_vision, adapter, dataset, settings, vgg=vgg,
                                   resume_from=opts.resume, checkpoint=checkpoint, on_step=on_step,
                                   on_preview=on_preview, extra_metadata={"trainer": "cli"},
                                   text_conditioning=text_conditioning)
        if rank == 0:
            trainer.save_checkpoint(output, result)
            log(f"wrote {output}")
        if opts.rank_report_dir:
            train_loop.write_rank_report(opts.rank_report_dir, result.adapter.state_dict(), result.losses)
    train_loop.finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
