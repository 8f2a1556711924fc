"""Paint by Example fine-tuning from the command line: the same trainer as the Fine-tune Paint by Example node.

One process:
    python scripts/pbe_train.py --checkpoint models/checkpoints/paint_by_example.safetensors \
        --dataset my_pairs --output models/checkpoints/pbe/my_finetune.safetensors

Several GPUs (or CPU processes, gloo) through torchrun; every rank draws its own pairs and noise and the gradients
are averaged before each step, so all ranks end with the same weights:
    torchrun --standalone --nproc_per_node 8 scripts/pbe_train.py ...same arguments...

The checkpoint is read as Load Paint-by-Example Checkpoint reads it (official single file, .ckpt or .safetensors);
the output is a checkpoint of the same layout. ComfyUI is imported from --comfyui (default: $COMFYUI_DIR, else the
ComfyUI this pack is installed in).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cli_boot
import train_cli


def parse_args(argv=None):
    p = train_cli.common_parser("Fine-tune Paint by Example (comfyui-exemplar).", 1e-5)
    p.add_argument("--checkpoint", required=True, help="Paint-by-Example checkpoint (.ckpt / .safetensors)")
    p.add_argument("--output", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument(
        "--trainable",
        default="lora+head+vector",
        choices=["lora+head+vector", "head+vector", "lora+vector", "lora", "vector"],
    )
    train_cli.lora_options(p)
    train_cli.mask_mode_option(p, ["irregular", "given", "box", "mixed"])
    p.add_argument("--reference-source", default="reference", choices=["reference", "image_box"])
    train_cli.add_options(
        p,
        float,
        reference_dropout=0.2,
        flip_probability=0.5,
        rotation_degrees=20.0,
        blur_probability=0.3,
        elastic_probability=0.3,
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    run = train_cli.start(opts)
    trainer = cli_boot.pack_module("nodes.paint_by_example.trainer")
    loader = cli_boot.pack_module("nodes.paint_by_example.loader")
    import torch

    settings = train_cli.settings_of(opts, trainer.PbESettings)
    with torch.inference_mode(False):
        model, vae, encoder = loader.load_checkpoint(opts.checkpoint)
        dataset = train_cli.pairs(opts, run, settings)
        output = Path(opts.output)

        def checkpoint(result):
            path = trainer.save_checkpoint(run.train_loop.checkpoint_path(output, result.step), model, vae, result)
            run.log(f"checkpoint {path}")

        result = trainer.train_pbe(
            model, vae, encoder, dataset, settings, resume_from=opts.resume, checkpoint=checkpoint, **run.hooks
        )
        if run.rank == 0:
            trainer.save_checkpoint(output, model, vae, result)
            run.log(f"wrote {output}")
    lora_state_dict = cli_boot.pack_module("models.dreambooth.lora_file").lora_state_dict
    return train_cli.finish(opts, run, result, lambda r: {**r.encoder_state, **lora_state_dict(r.lora)})


if __name__ == "__main__":
    sys.exit(main())
