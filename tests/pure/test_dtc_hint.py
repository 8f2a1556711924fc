import pytest
import torch

from comfyui_exemplar.models.diffuse_to_choose.hint import build_hint
from comfyui_exemplar.models.diffuse_to_choose.vit_positions import interpolate_position_embeddings


def test_the_hint_greys_the_mask_region_of_the_source_and_keeps_the_rest():
    image = torch.rand(2, 16, 16, 4)
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1  # at image size: rows/cols 4..11
    hint = build_hint(image, mask, torch.ones(1, 4, 4, 3), min_side=2)
    out = hint.masked_source
    assert out.shape == (2, 16, 16, 3)
    assert torch.equal(out[:, 4:12, 4:12], torch.full((2, 8, 8, 3), 0.5))
    keep = torch.ones(2, 16, 16, dtype=torch.bool)
    keep[:, 4:12, 4:12] = False
    assert torch.equal(out[keep], image[..., :3][keep])
    with pytest.raises(ValueError, match="image batch 2 and mask batch 3 differ"):
        build_hint(torch.rand(2, 8, 8, 3), torch.ones(3, 8, 8), torch.ones(1, 4, 4, 3), min_side=2)


def test_build_hint_broadcasts_one_reference_over_a_batch_of_masks():
    mask = torch.zeros(2, 32, 32)
    mask[0, 0:16, 0:16] = 1
    mask[1, 16:32, 8:32] = 1
    hint = build_hint(torch.rand(1, 32, 32, 3), mask, torch.ones(1, 10, 10, 3))
    assert hint.batch == 2 and hint.masked_source.shape == (2, 32, 32, 3)
    assert torch.equal(hint.rectangle, mask)
    assert torch.equal(hint.hint_image[..., 0] > 0.5, mask > 0)


def test_position_embeddings_resample_to_a_smaller_grid():
    positions = torch.randn(1, 1 + 37 * 37, 8)
    same = interpolate_position_embeddings(positions, (37, 37))
    assert same is positions
    small = interpolate_position_embeddings(positions, (16, 16))
    assert small.shape == (1, 257, 8) and torch.equal(small[:, 0], positions[:, 0])
    constant = torch.ones(1, 1 + 9, 4)
    torch.testing.assert_close(interpolate_position_embeddings(constant, (5, 5)), torch.ones(1, 26, 4))
    with pytest.raises(ValueError, match="do not form a square grid"):
        interpolate_position_embeddings(torch.zeros(1, 11, 4), (2, 2))
