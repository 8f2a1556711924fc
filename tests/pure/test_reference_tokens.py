import pytest
import torch

from comfyui_exemplar.models.dreaminpainter.reference_tokens import (
    mask_to_grid,
    patch_grid,
    preprocess_mask,
    vision_tokens,
)
from comfyui_exemplar.models.dreaminpainter.tokens import ExemplarTokens


def vit_output(batch=2, side=4, dim=8):
    hidden = torch.randn(batch, 1 + side * side, dim, generator=torch.Generator().manual_seed(0))
    return hidden, torch.randn(batch, 5)


def test_patch_mode_keeps_grid_positions():
    hidden, embeds = vit_output()
    tokens = vision_tokens(hidden, embeds, "patches")
    assert tokens.tokens.shape == (2, 16, 8) and tokens.grid == (4, 4)
    assert torch.equal(tokens.tokens, hidden[:, 1:])
    assert torch.equal(tokens.positions[0], torch.arange(16))


def test_cls_and_embeds_modes():
    hidden, embeds = vit_output()
    cls = vision_tokens(hidden, embeds, "cls")
    assert torch.equal(cls.tokens, hidden[:, :1]) and cls.grid is None and (cls.positions == -1).all()
    pooled = vision_tokens(hidden, embeds, "image_embeds")
    assert torch.equal(pooled.tokens[:, 0], embeds)
    both = vision_tokens(hidden, embeds, "cls+patches")
    assert both.count == 17 and both.positions[0, 0] == -1 and both.positions[0, 1] == 0


def test_subject_mask_becomes_per_token_coverage():
    hidden, embeds = vit_output(batch=1)
    mask = torch.zeros(1, 8, 8)
    mask[0, :4, :4] = 1  # top-left quarter = grid cells (0,0),(0,1),(1,0),(1,1)
    tokens = vision_tokens(hidden, embeds, "patches", mask)
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1
    assert torch.allclose(tokens.mask[0], expected.flatten())


def test_gather_keeps_positions_and_mask():
    hidden, embeds = vit_output()
    tokens = vision_tokens(hidden, embeds, "patches", torch.rand(1, 8, 8))
    picked = tokens.gather(torch.tensor([[3, 1], [0, 15]]))
    assert torch.equal(picked.positions, torch.tensor([[3, 1], [0, 15]]))
    assert torch.equal(picked.tokens[1, 1], tokens.tokens[1, 15])
    assert torch.equal(picked.mask[0], tokens.mask[0, [3, 1]])


def test_preprocess_mask_center_crop_matches_geometry():
    mask = torch.zeros(1, 100, 200)
    mask[:, :, :40] = 1  # inside the left quarter, which a centre crop removes
    assert preprocess_mask(mask, 50, crop=True).max() == 0
    assert preprocess_mask(mask, 50, crop=False)[0, :, :9].min() > 0.99


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="square patch grid"):
        patch_grid(1 + 15)
    with pytest.raises(ValueError, match="unknown token mode"):
        vision_tokens(*vit_output(), "everything")
    with pytest.raises(ValueError, match="positions must be"):
        ExemplarTokens(torch.zeros(1, 3, 2), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="subject_mask has batch 3"):
        vision_tokens(*vit_output(batch=2), "patches", torch.ones(3, 4, 4))
    assert mask_to_grid(torch.ones(1, 7, 7), (2, 2)).shape == (1, 4)
