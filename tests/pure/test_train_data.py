"""Shared training data: the paired dataset folders (pack layout, VITON-HD), bad-sample reports, training masks."""

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_exemplar.models.common import datasets, train_masks


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def colour(h, w, value):
    return np.full((h, w, 3), value, dtype=np.uint8)


def region(h, w, top, left, bottom, right):
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


def test_pairs_layout_reports_each_bad_sample_by_name(tmp_path):
    root = tmp_path / "data"
    save(root / "images" / "good.png", colour(32, 48, 10))
    save(root / "references" / "good.png", colour(20, 20, 200))
    save(root / "masks" / "good.png", region(32, 48, 8, 8, 24, 40))
    (root / "captions").mkdir()
    (root / "captions" / "good.txt").write_text(" a red shirt \n")
    save(root / "images" / "nomask.png", colour(32, 32, 50))
    save(root / "references" / "nomask.png", colour(16, 16, 90))
    save(root / "images" / "lonely.png", colour(32, 32, 0))  # no reference
    save(root / "references" / "orphan.png", colour(8, 8, 0))  # no image
    save(root / "images" / "broken.png", colour(32, 32, 0))
    (root / "references" / "broken.png").write_bytes(b"\x89PNG not really")
    save(root / "images" / "small.png", colour(32, 32, 0))
    save(root / "references" / "small.png", colour(8, 8, 0))
    save(root / "masks" / "small.png", region(16, 16, 0, 0, 8, 8))
    save(root / "images" / "empty.png", colour(32, 32, 0))
    save(root / "references" / "empty.png", colour(8, 8, 0))
    save(root / "masks" / "empty.png", region(32, 32, 0, 0, 0, 0))

    data = datasets.scan_pairs(root)
    assert data.layout == "pairs" and [s.name for s in data.samples] == ["good", "nomask"]
    reasons = dict(data.problems)
    assert set(reasons) == {"orphan.png", "lonely.png", "broken", "small", "empty"}
    assert "without an image" in reasons["orphan.png"] and "without a reference" in reasons["lonely.png"]
    assert "broken.png: unreadable reference" in reasons["broken"]
    assert "small.png: mask is 16x16, its image 32x32" in reasons["small"]
    assert "empty.png: empty mask" in reasons["empty"]
    assert data.report().startswith("2 usable pairs in data (pairs); 5 left out")

    sample = data.load(0, 24, 16, reference_size=8)
    assert sample.caption == "a red shirt"
    assert sample.image.shape == (16, 24, 3) and sample.reference.shape == (8, 8, 3)
    assert torch.allclose(sample.image, torch.full((16, 24, 3), 10 / 255), atol=1e-6)
    expected = torch.zeros(16, 24)
    expected[4:12, 4:20] = 1  # the same region, halved
    assert torch.equal(sample.mask, expected)
    assert data.load(1, 16, 16).mask is None


def test_a_folder_without_a_usable_pair_fails_with_the_report(tmp_path):
    root = tmp_path / "data"
    save(root / "images" / "a.png", colour(8, 8, 0))
    (root / "references").mkdir()
    with pytest.raises(ValueError, match=r"no usable pair(.|\n)*a\.png: image without a reference"):
        datasets.scan_pairs(root)
    with pytest.raises(ValueError, match="found neither images/ \\+ references/"):
        datasets.scan_pairs(tmp_path)
    with pytest.raises(ValueError, match="layout: expected one of"):
        datasets.scan_pairs(root, "coco")


def test_viton_hd_layout_is_read_as_published(tmp_path):
    root = tmp_path / "train"
    save(root / "image" / "00000_00.jpg", colour(32, 24, 120))
    cloth = colour(16, 16, 30)
    save(root / "cloth" / "00000_00.jpg", cloth)
    save(root / "cloth-mask" / "00000_00.jpg", region(16, 16, 0, 0, 16, 8))
    save(root / "agnostic-mask" / "00000_00_mask.png", region(32, 24, 8, 4, 24, 20))
    save(root / "image" / "00001_00.jpg", colour(32, 24, 120))
    save(root / "cloth" / "00001_00.jpg", cloth)
    data = datasets.scan_pairs(root)
    assert data.layout == "viton_hd" and [s.name for s in data.samples] == ["00000_00"]
    assert dict(data.problems) == {"00001_00.jpg": "no agnostic-mask/ file of the same name"}
    sample = data.load(0, 24, 32, reference_size=16)
    assert int(sample.mask.sum()) == 16 * 16
    # the garment's background (right half by its cloth mask) is whitened, the garment kept
    assert float(sample.reference[:, 12:].min()) > 0.99 and float(sample.reference[:, :4].max()) < 0.2


def blob(h=32, w=32):
    mask = torch.zeros(h, w)
    mask[8:20, 10:14] = 1
    mask[14:24, 14:26] = 1  # an L shape: not its own bounding box
    return mask


def test_mask_modes():
    mask = blob()
    g = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731
    assert torch.equal(train_masks.training_mask(mask, "given", g()), mask)
    box = train_masks.training_mask(mask, "box", g())
    assert int(box.sum()) == 16 * 16 and torch.equal(box[8:24, 10:26], torch.ones(16, 16))
    picks = [train_masks.training_mask(mask, "mixed", g(s)) for s in range(400)]
    fine = sum(torch.equal(p, mask) for p in picks)
    assert all(torch.equal(p, mask) or torch.equal(p, box) for p in picks)
    assert 160 <= fine <= 240  # 50/50 by default
    only_box = [train_masks.training_mask(mask, "mixed", g(s), fine_probability=0.0) for s in range(20)]
    assert all(torch.equal(p, box) for p in only_box)
    with pytest.raises(ValueError, match="mask_mode: expected one of"):
        train_masks.training_mask(mask, "circle", g())
    with pytest.raises(ValueError, match="the mask is empty"):
        train_masks.training_mask(torch.zeros(8, 8), "given", g())


def test_irregular_masks_cover_the_box_and_stay_in_the_extended_box():
    mask = blob(64, 64)
    rectangles = curves = 0
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        box, extended = train_masks.extended_box(mask, torch.Generator().manual_seed(seed), 0.4)
        out = train_masks.training_mask(mask, "irregular", g)
        top, left, bottom, right = box
        etop, eleft, ebottom, eright = extended
        assert 0 <= etop <= top and 0 <= eleft <= left and bottom <= ebottom <= 64 and right <= eright <= 64
        ys, xs = torch.nonzero(out, as_tuple=True)
        assert ys.min() >= etop - 6 and ys.max() < ebottom + 6 and xs.min() >= eleft - 6 and xs.max() < eright + 6
        inner = out[top + 6 : bottom - 6, left + 6 : right - 6]  # the box, less the jitter, is always inside
        assert torch.equal(inner, torch.ones_like(inner))
        is_rectangle = int(out.sum()) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        rectangles += bool(is_rectangle)
        curves += not is_rectangle
    assert rectangles >= 10 and curves >= 10


def test_polygon_rasterisation_of_a_square():
    square = torch.tensor([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    out = train_masks.rasterise_polygon(square, 8, 8)
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1
    assert torch.equal(out, expected)


def test_random_box_mask_sides():
    for seed in range(10):
        out = train_masks.random_box_mask(40, 20, torch.Generator().manual_seed(seed))
        ys, xs = torch.nonzero(out, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert 12 <= h <= 28 and 6 <= w <= 14 and int(out.sum()) == h * w


def test_rotation_keeps_the_image_at_zero_and_fills_corners():
    image = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(datasets.rotate_image(image, 0.0), image, atol=1e-5)
    quarter = datasets.rotate_image(image, 90.0)
    assert torch.allclose(quarter, image.rot90(1, dims=(0, 1)), atol=1e-4)  # counter-clockwise
    tilted = datasets.rotate_image(torch.zeros(16, 16, 3), 45.0)
    assert float(tilted[0, 0].min()) > 0.99 and float(tilted[8, 8].max()) < 1e-6  # white corners, content kept
