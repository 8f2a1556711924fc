"""The one mask convention (1 = region to regenerate): resize, binarise, masked source, blanking."""

import pytest
import torch
import torch.nn.functional as F

from comfyui_exemplar.models.common import masks


def test_resize_is_bilinear_and_the_identity_at_the_same_size():
    mask = torch.rand(2, 6, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks.resize_mask(mask, (6, 10)), mask)
    assert torch.equal(masks.resize_mask(mask[0], (6, 10)), mask[:1])  # a 2-D mask is a batch of one
    expected = F.interpolate(mask[:, None], size=(12, 5), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(masks.resize_mask(mask, (12, 5)), expected)
    with pytest.raises(ValueError, match=r"a mask is \[B, H, W\] or \[H, W\]"):
        masks.resize_mask(torch.zeros(1, 1, 4, 4), (2, 2))


def test_binary_mask_is_resize_then_strictly_above_the_threshold():
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :9] = 1  # 9 of 16 columns
    binary = masks.binary_mask(mask, (2, 2))
    bilinear = F.interpolate(mask[:, None], size=(2, 2), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(binary, (bilinear > 0.5).float()) and binary.tolist() == [[[1.0, 0.0], [1.0, 0.0]]]
    soft = torch.tensor([[[0.0, 0.5, 0.50001, 1.0]]])
    assert masks.binary_mask(soft).tolist() == [[[0.0, 0.0, 1.0, 1.0]]]  # exactly 0.5 stays outside
    assert masks.binary_mask(soft, threshold=0.2).tolist() == [[[0.0, 1.0, 1.0, 1.0]]]


def test_half_covered_latent_cells_fall_the_same_way_from_either_side():
    # a hole mask and its complement binarised at latent size never both claim a cell (exact halves stay out)
    hole = torch.zeros(1, 32, 32)
    hole[:, 4:20, 12:28] = 1
    region = masks.binary_mask(hole, (4, 4))
    keep = masks.binary_mask(1 - hole, (4, 4))
    assert torch.equal(
        region, 1 - (F.interpolate((1 - hole)[:, None], size=(4, 4), mode="bilinear")[:, 0] >= 0.5).float()
    )
    assert not torch.any((region == 1) & (keep == 1))


def test_masked_source_fills_the_region_and_keeps_every_other_pixel_exactly():
    image = torch.rand(2, 8, 8, 3, generator=torch.Generator().manual_seed(1))
    region = torch.zeros(1, 8, 8)
    region[:, 2:5, 3:7] = 1
    out = masks.masked_source(image, region)
    inside = region.bool()[..., None].expand(2, -1, -1, 3)
    assert out.shape == image.shape and torch.all(out[inside] == 0.5) and torch.equal(out[~inside], image[~inside])
    assert (
        torch.all(masks.masked_source(image.half(), region, fill=0.0)[inside] == 0)
        and masks.masked_source(image.half(), region).dtype == torch.float16
    )
    with pytest.raises(ValueError, match="image batch 2 and mask batch 3 differ"):
        masks.masked_source(image, torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="resize it first"):
        masks.masked_source(image, torch.zeros(1, 4, 4))


def test_blank_outside_mask_whitens_the_background_and_keeps_the_subject():
    images = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(2))
    subject = torch.zeros(1, 4, 4)
    subject[:, 1:3, 1:3] = 1
    out = masks.blank_outside_mask(images, subject)
    weight = F.interpolate(subject[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0, ..., None]
    torch.testing.assert_close(out, images * weight + (1 - weight), rtol=0, atol=0)
    assert torch.all(out[:, 0, 0] == 1) and torch.equal(out[:, 3:5, 3:5], images[:, 3:5, 3:5])
