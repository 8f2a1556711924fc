"""Paired training data for the reference-driven inpainting trainers (Diffuse to Choose; DreamInpainter and Paint by
Example reuse it): a source image, the reference that belongs in it, the region to regenerate, a caption.

Two folder layouts are read as they are, pairs matched by file name (stem):

``pairs`` (the pack's layout)::

    images/NAME.png        the source (target) image
    references/NAME.png    the reference (product photo, garment, subject)
    masks/NAME.png         optional: white = the region to regenerate, same size as the image
    captions/NAME.txt      optional: a caption

``viton_hd`` (VITON-HD as published, one split folder such as ``train/``)::

    image/NAME.jpg             the person
    cloth/NAME.jpg             the garment
    cloth-mask/NAME.jpg        optional: the garment's silhouette (its background is whitened)
    agnostic-mask/NAME_mask.png (or NAME.png)  the region to regenerate

Every sample is checked when the folder is scanned: a missing partner, an unreadable file, a mask whose size
differs from its image's and an empty mask are each reported with the file name, counted, and the sample left
out; a folder with no usable sample is an error that lists what was wrong. Images are read on use, so a large
dataset is not held in memory; they are fitted to the training size by models/common/image_folder.py (centre
crop, antialiased bicubic), masks by the same crop, then binarised (models/common/masks.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .image_folder import IMAGE_SUFFIXES, fit_images, read_image
from .masks import binary_mask, blank_outside_mask

LAYOUTS = ("auto", "pairs", "viton_hd")


@dataclass(frozen=True)
class PairFiles:
    name: str
    image: Path
    reference: Path
    mask: Path | None = None
    reference_mask: Path | None = None
    caption: str = ""


@dataclass
class PairSample:
    """One loaded sample: image [H, W, 3], reference [S, S, 3] in 0..1, mask [H, W] binary or None, caption."""

    name: str
    image: torch.Tensor
    reference: torch.Tensor
    mask: torch.Tensor | None
    caption: str


@dataclass
class PairDataset:
    root: Path
    layout: str
    samples: list[PairFiles]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file name, what is wrong)

    def __len__(self) -> int:
        return len(self.samples)

    def report(self) -> str:
        lines = [f"{len(self.samples)} usable pairs in {self.root.name} ({self.layout}); {len(self.problems)} left out"]
        lines += [f"  {name}: {reason}" for name, reason in self.problems]
        return "\n".join(lines)

    def load(self, index: int, width: int, height: int, reference_size: int = 224) -> PairSample:
        files = self.samples[index]
        image = fit_images(_read(files.image)[None], width, height)[0]
        reference = _read(files.reference)[None]
        if files.reference_mask is not None:
            reference = blank_outside_mask(reference, _read_mask(files.reference_mask)[None])
        reference = fit_images(reference, reference_size, reference_size)[0]
        mask = None
        if files.mask is not None:
            full = _read_mask(files.mask)[None, :, :, None].expand(-1, -1, -1, 3)
            mask = binary_mask(fit_images(full, width, height)[..., 0])[0]
        return PairSample(files.name, image, reference, mask, files.caption)


def _read(path: Path) -> torch.Tensor:
    try:
        return read_image(path)
    except Exception as error:  # noqa: BLE001  (any decoder failure is the same report: this file)
        raise ValueError(f"{path.name}: cannot be read as an image ({error})") from error


def _read_mask(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        grey = ImageOps.exif_transpose(im).convert("L")
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def detect_layout(root: Path) -> str:
    if (root / "image").is_dir() and (root / "cloth").is_dir():
        return "viton_hd"
    if (root / "images").is_dir() and (root / "references").is_dir():
        return "pairs"
    raise ValueError(
        f"dataset folder {root.name!r}: found neither images/ + references/ (the pack's layout) nor image/ + cloth/ "
        "(VITON-HD); see docs/training.md"
    )


def _candidates(root: Path, layout: str) -> tuple[list[PairFiles], list[tuple[str, str]]]:
    problems = []
    if layout == "pairs":
        images, references, masks = _files(root / "images"), _files(root / "references"), _files(root / "masks")
        reference_masks = {}
    else:
        images, references, reference_masks = (
            _files(root / "image"),
            _files(root / "cloth"),
            _files(root / "cloth-mask"),
        )
        masks = {stem.removesuffix("_mask"): p for stem, p in _files(root / "agnostic-mask").items()}
    for stem in sorted(set(references) - set(images)):
        problems.append((references[stem].name, "reference without an image of the same name"))
    found = []
    for stem, image in images.items():
        if stem not in references:
            problems.append((image.name, "image without a reference of the same name"))
            continue
        if layout == "viton_hd" and stem not in masks:
            problems.append((image.name, "no agnostic-mask/ file of the same name"))
            continue
        caption_file = root / "captions" / f"{stem}.txt"
        caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else ""
        found.append(PairFiles(stem, image, references[stem], masks.get(stem), reference_masks.get(stem), caption))
    return found, problems


def _check(files: PairFiles) -> str | None:
    """What is wrong with a sample, or None."""
    sizes = {}
    for label, path in (("image", files.image), ("reference", files.reference), ("mask", files.mask)):
        if path is None:
            continue
        try:
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                sizes[label] = ImageOps.exif_transpose(im).size
        except Exception as error:  # noqa: BLE001
            return f"{path.name}: unreadable {label} ({type(error).__name__}: {error})"
    if files.mask is not None:
        if sizes["mask"] != sizes["image"]:
            (mw, mh), (iw, ih) = sizes["mask"], sizes["image"]
            return f"{files.mask.name}: mask is {mw}x{mh}, its image {iw}x{ih}"
        if not bool((_read_mask(files.mask) > 0.5).any()):
            return f"{files.mask.name}: empty mask (no pixel above 0.5 marks a region)"
    return None


def scan_pairs(root: str | Path, layout: str = "auto") -> PairDataset:
    """The usable samples of a dataset folder and a report of those left out (see the module docstring)."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    if not root.is_dir():
        raise ValueError(f"dataset folder {str(root)!r} does not exist")
    if layout == "auto":
        layout = detect_layout(root)
    candidates, problems = _candidates(root, layout)
    samples = []
    for files in candidates:
        problem = _check(files)
        if problem is None:
            samples.append(files)
        else:
            problems.append((files.name, problem))
    dataset = PairDataset(root, layout, samples, problems)
    if not samples:
        raise ValueError(f"dataset folder {root.name!r} has no usable pair.\n{dataset.report()}")
    return dataset


def rotate_image(image: torch.Tensor, degrees: float, fill: float = 1.0) -> torch.Tensor:
    """[H, W, C] rotated by `degrees` (counter-clockwise) about its centre, bilinear; uncovered corners = `fill`."""
    height, width = image.shape[:2]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    aspect = width / height  # rotate in pixel units, not in the [-1, 1] box
    theta = torch.tensor([[cos, -sin / aspect, 0.0], [sin * aspect, cos, 0.0]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    pixels = torch.cat([image.movedim(-1, 0).float(), torch.ones(1, height, width)])[None]
    rotated = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    colour, cover = rotated[:-1], rotated[-1:]
    return (colour + fill * (1 - cover)).clamp(0, 1).movedim(0, -1).to(image.dtype)
