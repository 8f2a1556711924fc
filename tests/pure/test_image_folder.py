"""The one image-folder loader (models/common/image_folder.py): which files, which orientation, which resampling."""

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_exemplar.models.common.image_folder import (
    fit_images,
    image_files,
    load_image_folder,
    load_images,
    read_image,
)


def save(path, pixels, **kwargs):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path, **kwargs)


def test_files_are_the_images_sorted_by_name(tmp_path):
    for name in ("b.png", "a.JPG", "c.webp", "notes.txt", "d.gif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "e.png").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.JPG", "b.png", "c.webp"]
    assert load_image_folder(tmp_path / "e.png", 8, 8) is None


def test_bands_outside_the_centre_crop_are_cut_away(tmp_path):
    wide = np.zeros((60, 120, 3), np.uint8)
    wide[:, :30] = (255, 0, 0)
    wide[:, 30:90] = (0, 255, 0)
    wide[:, 90:] = (0, 0, 255)
    save(tmp_path / "wide.png", wide)
    tall = wide.transpose(1, 0, 2).copy()
    save(tmp_path / "tall.png", tall)
    images = load_images([tmp_path / "wide.png", tmp_path / "tall.png"], 20, 20)
    assert images.shape == (2, 20, 20, 3) and images.dtype == torch.float32
    green = torch.tensor([0.0, 1.0, 0.0])
    torch.testing.assert_close(images, green.expand_as(images).contiguous(), rtol=0, atol=1e-6)
    # a target of the image's own aspect ratio crops nothing: all three bands, a third each
    same_aspect = load_images([tmp_path / "wide.png"], 30, 15)[0]
    assert same_aspect.shape == (15, 30, 3)
    assert (
        same_aspect[:, :6, 0].min() > 0.99
        and same_aspect[:, 12:18, 1].min() > 0.99
        and same_aspect[:, -6:, 2].min() > 0.99
    )


def test_shrinking_is_antialiased():
    """A one-pixel checkerboard shrunk 7x is flat grey; plain bilinear sampling lands on single pixels: 0s and 1s."""
    board = (torch.arange(63)[:, None] + torch.arange(63)[None]) % 2
    image = board.float()[None, ..., None].repeat(1, 1, 1, 3)
    small = fit_images(image, 9, 9)
    assert small.shape == (1, 9, 9, 3)
    assert (small - 0.5).abs().max() < 0.02
    plain = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(9, 9), mode="bilinear", align_corners=False)
    assert (plain - 0.5).abs().max() > 0.4  # so the property above is one the convention chose, not one any resize has


def test_same_size_passes_through_and_values_stay_in_range():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 16, 24, 4, generator=g)
    torch.testing.assert_close(fit_images(image, 24, 16), image[..., :3], rtol=0, atol=0)
    sharp = (torch.rand(1, 50, 50, 3, generator=g) > 0.5).float()
    up = fit_images(sharp, 80, 80)
    assert up.min() >= 0 and up.max() <= 1 and up.shape == (1, 80, 80, 3)


def test_exif_orientation_and_rgb_conversion(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    save(tmp_path / "rotated.jpg", pixels, exif=exif.tobytes(), quality=100)
    upright = read_image(tmp_path / "rotated.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:15].mean() > 0.9 and upright[-15:].mean() < 0.1  # the white half is now on top
    Image.fromarray(np.full((8, 8), 128, np.uint8), "L").save(tmp_path / "grey.png")
    Image.fromarray(np.full((8, 8, 4), (10, 20, 30, 0), np.uint8), "RGBA").save(tmp_path / "alpha.png")
    grey, alpha = load_images([tmp_path / "grey.png", tmp_path / "alpha.png"], 8, 8)
    torch.testing.assert_close(grey, torch.full((8, 8, 3), 128 / 255))
    torch.testing.assert_close(alpha, torch.tensor([10, 20, 30]).expand(8, 8, 3) / 255.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="IMAGE batch"):
        fit_images(torch.zeros(8, 8, 3), 8, 8)
    with pytest.raises(ValueError, match="no image files"):
        load_images([], 8, 8)
