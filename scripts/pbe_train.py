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
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--mask-mode", default="irregular", choices=["irregular", "given", "box", "mixed"])
    p.add_argument("--reference-source", default="reference", choices=["reference", "image_box"])
    p.add_argument("--reference-dropout", type=float, default=0.2)
    p.add_argument("--flip-probability", type=float, default=0.5)
    p.add_argument("--rotation-degrees", type=float, default=20.0)
    p.add_argument("--blur-probability", type=float, default=0.3)
    p.add_argument("--elastic-probability", type=float, default=0.3)
    return p.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    cli_boot.one_gpu_per_rank(opts.cpu)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(opts.comfyui), opts.cpu)
    trainer = cli_boot.pack_module("nodes.paint_by_example.trainer")
    loader = cli_boot.pack_module("nodes.paint_by_example.loader")
    datasets = cli_boot.pack_module("models.common.datasets")
    train_loop = cli_boot.pack_module("models.common.train_loop")
    import torch

    rank, world = train_loop.init_distributed(opts.cpu)
    log, on_step, on_preview = train_cli.progress(rank, opts.preview_dir)
    settings = trainer.PbESettings.from_values(vars(opts))
    settings.validate()
    with torch.inference_mode(False):
        model, vae, encoder = loader.load_checkpoint(opts.checkpoint)
        dataset = datasets.scan_pairs(opts.dataset, opts.layout)
        log(dataset.report())
        log(f"{len(dataset)} pairs, world size {world}, training {settings.trainable} for {settings.steps} steps")
        output = Path(opts.output)

        def checkpoint(result):
            path = trainer.save_checkpoint(train_loop.checkpoint_path(output, result.step), model, vae, result)
            log(f"checkpoint {path}")

        result = trainer.train_pbe(
            model,
            vae,
            encoder,
            dataset,
            settings,
            resume_from=opts.resume,
            checkpoint=checkpoint,
            on_step=on_step,
            on_preview=on_preview,
            extra_metadata={"trainer": "cli"},
        )
        if rank == 0:
            trainer.save_checkpoint(output, model, vae, result)
            log(f"wrote {output}")
        if opts.rank_report_dir:
            state = dict(result.encoder_state)
            state.update(cli_boot.pack_module("models.dreambooth.lora_file").lora_state_dict(result.lora))
            train_loop.write_rank_report(opts.rank_report_dir, state, result.losses)
    train_loop.finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
