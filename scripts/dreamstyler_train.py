"""Train a DreamStyler staged embedding from the command line, with the same code as the trainer node.

Runs inside a ComfyUI install (its Python, its model code), without the server:

    python scripts/dreamstyler_train.py --comfyui /path/to/ComfyUI \\
        --checkpoint /path/to/v1-5-pruned-emaonly.safetensors \\
        --images style.png --captions "a woman reading a book" --token "<sks1>" \\
        --out-dir /path/to/ComfyUI/models/embeddings --name my_style

The checkpoint is an SD1.x, SD2.x or SDXL text-to-image checkpoint (eps or v prediction). On SDXL every stage trains a
CLIP-L and a bigG vector: the files hold `clip_l` / `clip_g` per stage, the layout ComfyUI's embedding loader reads.

Writes <name>.safetensors (with metadata) and <name>.bin (the official layout). Images are
centre-cropped to a square and resized to --resolution (the paper: 512) with antialiased bicubic
interpolation, the pack's one image-folder convention (models/common/image_folder.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cli_boot


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--comfyui",
        default=os.environ.get("COMFYUI_DIR"),
        help="ComfyUI folder (default: $COMFYUI_DIR, else the ComfyUI this pack is installed in)",
    )
    p.add_argument("--checkpoint", required=True, help="an SD1.x / SD2.x / SDXL checkpoint file (eps or v prediction)")
    p.add_argument("--images", nargs="+", required=True, help="style image files or folders of images")
    p.add_argument("--captions", nargs="+", default=["a painting"], help="one caption per image, or one for all")
    p.add_argument("--token", default="<sks1>")
    p.add_argument("--template", default="A painting of {caption} in the style of {token}")
    p.add_argument("--stages", type=int, default=6)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--flip", type=float, default=0.5, help="probability of the mirrored image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-word", default="painting")
    p.add_argument("--vectors-per-stage", type=int, default=1)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--name", default="dreamstyler_style")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--cpu", action="store_true", help="run on the CPU")
    return p.parse_args(argv)


def image_paths(entries: list[str], image_folder) -> list[Path]:
    """--images: files as given, folders expanded to their image files (sorted by name)."""
    files = []
    for entry in map(Path, entries):
        if entry.is_dir():
            files += image_folder.image_files(entry)
        elif entry.is_file():
            files.append(entry)
        else:
            sys.exit(f"--images: {entry} does not exist")
    if not files:
        sys.exit(f"--images: no image files found ({', '.join(image_folder.IMAGE_SUFFIXES)})")
    return files


def main(argv=None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    cli_boot.boot_comfyui(cli_boot.comfyui_dir(options.comfyui), options.cpu)
    import cli_checkpoint

    training = cli_boot.pack_module("nodes.dreamstyler.trainer")
    inversion = cli_boot.pack_module("models.dreamstyler.staged_inversion")
    image_folder = cli_boot.pack_module("models.common.image_folder")
    files = image_paths(options.images, image_folder)
    images, names = image_folder.load_images(files, options.resolution, options.resolution), [f.name for f in files]
    training.check_target(options.out_dir, options.name, options.overwrite)
    model, clip, vae, family = cli_checkpoint.load(options.checkpoint, "DreamStyler", cli_checkpoint.TEXT_TO_IMAGE)
    if clip is None or vae is None:
        sys.exit(f"--checkpoint {options.checkpoint} has no text encoder or VAE; a full {family} checkpoint is needed")
    settings = inversion.InversionSettings(
        stages=options.stages,
        steps=options.steps,
        learning_rate=options.lr,
        batch_size=options.batch_size,
        flip_probability=options.flip,
        seed=options.seed,
    )
    print(f"training {options.token} on {family}, {len(names)} image(s): {', '.join(names)}", flush=True)
    started = time.perf_counter()
    every = max(1, options.steps // 20)

    def on_step(step, loss):
        if (step + 1) % every == 0 or step + 1 == options.steps:
            print(
                f"step {step + 1}/{options.steps}  loss {loss:.4f}  {time.perf_counter() - started:.0f} s", flush=True
            )

    embedding, losses = training.train(
        model,
        clip,
        vae,
        images,
        options.captions,
        options.token,
        settings,
        options.template,
        options.init_word,
        options.vectors_per_stage,
        on_step,
    )
    ours, official = training.write_files(embedding, options.out_dir, options.name, options.overwrite)
    print(f"wrote {ours} and {official}; {training.loss_summary(losses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
