"""Assets of the DtC training workflow: a tiny paired dataset in the pack's layout and random VGG16 weights.

The dataset is the synthetic task of the learning test: a plain source whose masked box holds a random striped
texture; the reference is that texture. With the box masked out, only the hint (the reference pasted into the box)
tells the model what belongs there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..tiny_models import atomic_save, is_current

PAIRS_FOLDER = "exemplar_dtc_pairs"
VGG_NAME = "exemplar_random_vgg16_features.safetensors"
BUILDER_VERSION = "1"


def texture(size: int, generator: torch.Generator) -> torch.Tensor:
    """[size, size, 3] in 0..1: two random colours in stripes of random frequency and direction."""
    a, b = torch.rand(3, generator=generator), torch.rand(3, generator=generator)
    angle = float(torch.rand(1, generator=generator)) * np.pi
    frequency = 2 + 4 * float(torch.rand(1, generator=generator))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * frequency * 2 * np.pi
    weight = (torch.sin(phase) > 0).float()[..., None]
    return weight * a + (1 - weight) * b


def synthetic_pair(index: int, size: int = 64, reference_size: int = 28, seed: int = 0):
    """(image [size, size, 3], reference [r, r, 3], mask [size, size]) of sample `index`."""
    g = torch.Generator().manual_seed(seed * 100_003 + index)
    reference = texture(reference_size, g)
    side_h = int(size * (0.4 + 0.25 * float(torch.rand(1, generator=g))))
    side_w = int(size * (0.4 + 0.25 * float(torch.rand(1, generator=g))))
    top = int((size - side_h) * float(torch.rand(1, generator=g)))
    left = int((size - side_w) * float(torch.rand(1, generator=g)))
    image = torch.ones(size, size, 3) * (0.35 + 0.3 * torch.rand(1, generator=g))
    patch = (
        F.interpolate(
            reference.movedim(-1, 0)[None], size=(side_h, side_w), mode="bicubic", antialias=True, align_corners=False
        )[0]
        .clamp(0, 1)
        .movedim(0, -1)
    )
    image[top : top + side_h, left : left + side_w] = patch
    mask = torch.zeros(size, size)
    mask[top : top + side_h, left : left + side_w] = 1
    return image, reference, mask


def _png(array: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (array.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    Image.fromarray(pixels).save(tmp)
    os.replace(tmp, path)


def write_synthetic_pairs(
    folder: Path, count: int = 8, size: int = 64, seed: int = 0, start: int = 0, caption=None
) -> Path:
    """`count` pairs (images/, references/, masks/, captions/) in the pack's dataset layout; `caption(image,
    reference, mask)` gives a sample's caption file text (default "a striped patch")."""
    folder = Path(folder)
    for index in range(start, start + count):
        name = f"pair_{index:04d}.png"
        image, reference, mask = synthetic_pair(index, size, seed=seed)
        _png(image, folder / "images" / name)
        _png(reference, folder / "references" / name)
        _png(mask[..., None].expand(-1, -1, 3), folder / "masks" / name)
        (folder / "captions").mkdir(exist_ok=True)
        text = caption(image, reference, mask) if caption else "a striped patch"
        (folder / "captions" / f"pair_{index:04d}.txt").write_text(text + "\n")
    return folder


def write_random_vgg16(directory: Path, seed: int = 0) -> Path:
    """VGG16 `features` weights (torchvision's key names and shapes) drawn at random, fp16 (29 MB)."""
    path = Path(directory) / VGG_NAME
    meta = {"exemplar.kind": "random_vgg16_features", "exemplar.seed": str(seed), "exemplar.builder": BUILDER_VERSION}
    if is_current(path, meta):
        return path
    from ..host import pack_submodule

    network = pack_submodule("models.common.perceptual").VGG16Features(13)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in network.state_dict().items():
        if key.endswith("weight"):
            fan_in = tensor[0].numel()
            state[key] = (torch.randn(tensor.shape, generator=g) * (2.0 / fan_in) ** 0.5).half()
        else:
            state[key] = torch.zeros(tensor.shape, dtype=torch.float16)
    return atomic_save(state, path, meta)


def prepare(base_dir: Path) -> None:
    base_dir = Path(base_dir)
    pairs = base_dir / "input" / PAIRS_FOLDER
    if not (pairs / "masks" / "pair_0003.png").is_file():
        write_synthetic_pairs(pairs, count=4)
