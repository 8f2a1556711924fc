"""Paint by Example's training data: Bezier masks (properties) and the reference augmentation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_exemplar.models.common import train_masks
from comfyui_exemplar.models.paint_by_example import augment

SIZE = 64
JITTER = 5.0

boxes = st.tuples(
    st.integers(0, SIZE - 12), st.integers(0, SIZE - 12), st.integers(12, SIZE), st.integers(12, SIZE)
).map(lambda t: (t[0], t[1], min(SIZE, t[0] + t[2]), min(SIZE, t[1] + t[3])))


def box_of(top, left, bottom, right):
    mask = torch.zeros(SIZE, SIZE)
    mask[top:bottom, left:right] = 1
    return mask


@settings(max_examples=60, deadline=None)
@given(box=boxes, seed=st.integers(0, 2**31 - 1), extend=st.floats(0.0, 0.4))
def test_bezier_polygon_is_closed_and_stays_in_the_extended_box(box, seed, extend):
    mask = box_of(*box)
    g = torch.Generator().manual_seed(seed)
    inner, extended = train_masks.extended_box(mask, g, extend)
    points = train_masks.bezier_polygon(inner, extended, g, JITTER)
    assert points.shape == (72, 2)
    etop, eleft, ebottom, eright = extended
    assert float(points[:, 0].min()) >= eleft - JITTER and float(points[:, 0].max()) <= eright + JITTER
    assert float(points[:, 1].min()) >= etop - JITTER and float(points[:, 1].max()) <= ebottom + JITTER
    # closed: no gap between consecutive points (the last back to the first included) wider than a curve's longest
    # step (a fraction 0.1 of its span around a corner) plus the jitter of both ends
    steps = (points - points.roll(-1, 0)).norm(dim=1)
    span = max(ebottom - etop, eright - eleft)
    assert float(steps.max()) <= 0.2 * span + 2 * JITTER * 2**0.5 + 1e-9


@settings(max_examples=60, deadline=None)
@given(box=boxes, seed=st.integers(0, 2**31 - 1))
def test_irregular_mask_lies_in_the_extended_box_covers_the_box_and_has_area_in_range(box, seed):
    mask = box_of(*box)
    top, left, bottom, right = box
    _, extended = train_masks.extended_box(mask, torch.Generator().manual_seed(seed), 0.4)
    out = train_masks.training_mask(mask, "irregular", torch.Generator().manual_seed(seed))
    etop, eleft, ebottom, eright = extended
    ys, xs = torch.nonzero(out, as_tuple=True)
    margin = JITTER + 1
    assert ys.min() >= etop - margin and ys.max() < ebottom + margin
    assert xs.min() >= eleft - margin and xs.max() < eright + margin
    inner = out[int(top + margin) : int(bottom - margin), int(left + margin) : int(right - margin)]
    assert torch.equal(inner, torch.ones_like(inner))  # the object's box (less the jitter) is always covered
    low = max(0, bottom - top - 2 * margin) * max(0, right - left - 2 * margin)
    high = (ebottom - etop + 2 * margin) * (eright - eleft + 2 * margin)
    assert low <= float(out.sum()) <= high
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_crop_to_box_pads_by_ten_pixels_within_the_image():
    image = torch.arange(SIZE * SIZE * 3, dtype=torch.float32).reshape(SIZE, SIZE, 3)
    crop = augment.crop_to_box(image, box_of(20, 5, 30, 60))
    assert crop.shape == (30, 64, 3)  # rows 10..40; columns 0..64 (clipped on both sides)
    assert torch.equal(crop, image[10:40, 0:64])


def reference():
    return torch.rand(40, 30, 3, generator=torch.Generator().manual_seed(0))


def test_augmentation_without_randomness_is_the_resize():
    plain = augment.ReferenceAugmentation(56, 0.0, 0.0, 0.0, 0.0)
    out = augment.augment_reference(reference(), plain, torch.Generator().manual_seed(1))
    assert out.shape == (56, 56, 3)
    assert torch.equal(out, augment._resize(reference(), 56))


def test_each_augmentation_changes_the_reference_and_draws_repeat_for_a_seed():
    base = augment._resize(reference(), 56)
    off = dict(flip_probability=0.0, rotation_degrees=0.0, blur_probability=0.0, elastic_probability=0.0)
    flip = augment.ReferenceAugmentation(56, **{**off, "flip_probability": 1.0})
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(augment.augment_reference(reference(), flip, g()), base.flip(1))
    for name, value in (("rotation_degrees", 20.0), ("blur_probability", 1.0), ("elastic_probability", 1.0)):
        only = augment.ReferenceAugmentation(56, **{**off, name: value})
        first = augment.augment_reference(reference(), only, g())
        assert float((first - base).abs().mean()) > 1e-3, name
        assert torch.equal(first, augment.augment_reference(reference(), only, g())), name
        assert float(first.min()) >= 0 and float(first.max()) <= 1


def test_blur_keeps_a_flat_image_and_smooths_an_edge():
    flat = torch.full((32, 32, 3), 0.4)
    assert torch.allclose(augment.gaussian_blur(flat, 1.5), flat, atol=1e-6)
    edge = torch.zeros(32, 32, 3)
    edge[:, 16:] = 1
    blurred = augment.gaussian_blur(edge, 1.5)
    assert 0.2 < float(blurred[0, 15, 0]) < 0.5 and 0.5 < float(blurred[0, 16, 0]) < 0.8


def test_elastic_warp_moves_pixels_by_at_most_the_strength():
    image = torch.linspace(0, 1, 32)[None, :, None].expand(32, 32, 3).contiguous()  # a horizontal ramp
    noise = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    warped = augment.elastic_warp(image, noise, smooth=3.0, strength=2.0)
    step = 1 / 31  # the ramp rises by this per pixel
    assert float((warped - image).abs().max()) <= 2.0 * step + 1e-5
    assert float((warped - image).abs().max()) > 0.2 * step


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="blur_probability must be in"):
        augment.ReferenceAugmentation(blur_probability=1.5).validate()
    with pytest.raises(ValueError, match="rotation_degrees"):
        augment.ReferenceAugmentation(rotation_degrees=-1).validate()
