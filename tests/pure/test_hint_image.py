import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from comfyui_exemplar.models.diffuse_to_choose.hint_image import Rectangle, build_hint_images, largest_rectangle


def brute_force_area(mask: np.ndarray) -> int:
    rows, cols = mask.shape
    best = 0
    for top, bottom in itertools.combinations_with_replacement(range(rows), 2):
        band = mask[top : bottom + 1].all(axis=0)
        run = 0
        for cell in band:
            run = run + 1 if cell else 0
            best = max(best, run * (bottom - top + 1))
    return best


masks = arrays(bool, st.tuples(st.integers(1, 9), st.integers(1, 9)))


@settings(max_examples=300, deadline=None)
@given(masks)
def test_rectangle_lies_inside_the_mask_and_is_largest(mask):
    rect = largest_rectangle(mask)
    assert rect.area == brute_force_area(mask)
    if rect.area:
        assert mask[rect.top : rect.top + rect.height, rect.left : rect.left + rect.width].all()


def test_known_rectangle_and_empty_mask():
    mask = np.zeros((10, 12), bool)
    mask[2:7, 3:11] = True
    mask[0:10, 5] = True  # a tall thin column: area 10 < 40
    assert largest_rectangle(mask) == Rectangle(2, 3, 5, 8)
    assert largest_rectangle(np.zeros((4, 4), bool)).area == 0


def test_hint_pastes_the_reference_into_the_rectangle_only():
    reference = torch.ones(1, 20, 30, 3) * torch.tensor([0.2, 0.5, 0.9])
    mask = torch.zeros(1, 64, 64)
    mask[0, 10:40, 5:50] = 1
    hint, rect = build_hint_images(reference, mask, (64, 64))
    assert hint.shape == (1, 64, 64, 3) and rect.shape == (1, 64, 64)
    assert torch.equal(rect[0] > 0, mask[0] > 0)
    inside = hint[0, 10:40, 5:50]
    assert torch.allclose(inside, torch.tensor([0.2, 0.5, 0.9]).expand_as(inside), atol=1e-5)
    outside = hint[0].clone()
    outside[10:40, 5:50] = 0
    assert outside.abs().max() == 0


def test_fit_keeps_aspect_ratio_centred():
    reference = torch.ones(1, 10, 10, 3)
    mask = torch.zeros(1, 40, 80)
    mask[0, :, 20:60] = 1  # 40 x 40 square region
    mask[0, 0:20, :] = (
        1  # plus a 20 x 80 band: the largest rectangle is 20 x 80 (area 1600) vs 40 x 40 (1600): first wins
    )
    hint, rect = build_hint_images(reference, mask, (40, 80), fit="fit")
    covered = (hint[0].sum(-1) > 0).nonzero()
    height = int(covered[:, 0].max() - covered[:, 0].min() + 1)
    width = int(covered[:, 1].max() - covered[:, 1].min() + 1)
    assert height == width  # square reference stays square


def test_mask_at_other_resolution_and_batch_broadcast():
    reference = torch.rand(2, 16, 16, 3)
    mask = torch.zeros(1, 32, 32)
    mask[0, 8:24, 8:24] = 1
    hint, rect = build_hint_images(reference, mask, (64, 64))
    assert hint.shape == (2, 64, 64, 3)
    assert rect[0, 16:48, 16:48].all() and rect[0].sum() == 32 * 32


@pytest.mark.parametrize(
    "mask, message",
    [(torch.zeros(1, 32, 32), "mask 0 is empty"), (torch.eye(32)[None], "largest rectangle inside mask 0 is")],
)
def test_bad_masks_are_named_errors(mask, message):
    with pytest.raises(ValueError, match=message):
        build_hint_images(torch.rand(1, 8, 8, 3), mask, (32, 32))


def test_mismatched_batches_are_an_error():
    with pytest.raises(ValueError, match="reference has batch 2, expected 1 or 3"):
        build_hint_images(torch.rand(2, 8, 8, 3), torch.ones(3, 32, 32), (32, 32))
