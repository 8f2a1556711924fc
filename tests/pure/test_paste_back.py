"""Paste-back compositing: exact background, the feather ramp, the ring colour match, batch and size errors."""

import pytest
import torch

from comfyui_exemplar.models.compositing import paste_back as pb


def images(b=1, h=24, w=32, seed=0):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


def box_mask(h=24, w=32, top=6, left=8, size=10, b=1):
    mask = torch.zeros(b, h, w)
    mask[:, top : top + size, left : left + size] = 1.0
    return mask


def test_outside_the_mask_every_pixel_is_the_source_bit_for_bit():
    generated, source, mask = images(2, seed=1), images(1, seed=2), box_mask()
    for feather in (0, 1, 4, 50):
        for color_match in (False, True):
            out, weight = pb.paste_back(generated, source, mask, feather, color_match, ring=3)
            outside = mask[0] == 0
            assert torch.equal(out[:, outside], source.expand(2, -1, -1, -1)[:, outside])
            assert torch.equal(weight[:, outside], torch.zeros_like(weight[:, outside]))


def test_feather_ramps_inside_the_mask_by_chessboard_distance():
    mask = box_mask(top=6, left=8, size=10)
    weight = pb.feathered_weight(mask, 4)
    row = weight[0, 11, 8:18]  # through the middle of the 10-px box
    assert row.tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25])
    assert weight[0, 6, 12].item() == pytest.approx(0.25)  # top edge
    assert weight[0, 7, 9].item() == pytest.approx(0.5)  # a corner: chessboard distance 2
    assert torch.equal(pb.feathered_weight(mask, 0), mask)
    with pytest.raises(ValueError, match="feather: expected a number of pixels >= 0"):
        pb.feathered_weight(mask, -1)


def test_deep_inside_the_mask_the_output_is_the_generated_image():
    generated, source, mask = images(seed=3), images(seed=4), box_mask(size=12)
    out, weight = pb.paste_back(generated, source, mask, feather=3)
    core = weight[0] == 1
    assert core.sum() == 8 * 8  # distance >= 3 from the outside: 2 px off each side
    assert torch.equal(out[0, core], generated[0, core])
    edge = (weight[0] > 0) & (weight[0] < 1)
    w = weight[0, edge][:, None]
    torch.testing.assert_close(out[0, edge], source[0, edge] + w * (generated[0, edge] - source[0, edge]))


def test_the_image_border_is_not_an_edge_to_fade():
    mask = torch.zeros(1, 8, 8)
    mask[:, :, :4] = 1.0  # the left half, touching three borders
    weight = pb.feathered_weight(mask, 2)
    assert weight[0, :, 0].tolist() == [1.0] * 8  # the left border stays fully generated
    assert weight[0, 4, :4].tolist() == [1.0, 1.0, 1.0, 0.5]  # the fade is only at the mask's own edge


def test_colour_match_gives_the_generated_ring_the_source_statistics():
    source = images(seed=5)
    generated = (source * 0.5 + 0.3).clamp(0, 1)  # a global colour shift the sampler might make
    mask = box_mask()
    ring = pb.ring_around(mask, 3)
    assert ring.sum() == (16 * 16 - 10 * 10) and not (ring * mask).any()
    matched = pb.match_colours(generated, source, ring)
    m_s, s_s = pb._mean_std(source, ring)
    m_m, s_m = pb._mean_std(matched, ring)
    torch.testing.assert_close(m_m, m_s, rtol=0, atol=1e-6)
    torch.testing.assert_close(s_m, s_s, rtol=0, atol=1e-6)
    # the shift is undone inside the mask too (no clamping happened for this shift)
    inside = mask[0] == 1
    torch.testing.assert_close(matched[0, inside], source[0, inside], rtol=0, atol=1e-5)


def test_colour_match_on_a_flat_ring_only_shifts_the_mean():
    source = images(seed=6)
    generated = torch.full_like(source, 0.4)
    generated[:, 6:16, 8:18] = 0.6
    ring = pb.ring_around(box_mask(), 2)
    matched = pb.match_colours(generated, source, ring)
    m_s, _ = pb._mean_std(source, ring)
    expected = (0.6 - 0.4 + m_s[0]).clamp(0, 1)
    torch.testing.assert_close(matched[0, 10, 10].double(), expected, rtol=0, atol=1e-6)


def test_colour_match_with_a_mask_over_the_whole_image_is_refused():
    with pytest.raises(ValueError, match="color_match: the mask leaves no surrounding pixels"):
        pb.paste_back(images(), images(seed=1), torch.ones(1, 24, 32), 4, True, 8)
    out, _ = pb.paste_back(images(), images(seed=1), torch.ones(1, 24, 32), 0, False, 8)
    assert torch.equal(out, images())


def test_batches_broadcast_from_one_and_mismatches_are_named():
    generated = images(3, seed=7)
    masks = box_mask(b=3)
    masks[1] = 0
    out, _ = pb.paste_back(generated, images(1, seed=8), masks, 2)
    assert out.shape == generated.shape
    assert torch.equal(out[1], images(1, seed=8)[0])  # an empty mask keeps the whole source
    with pytest.raises(ValueError, match=r"source: batch of 2, expected 1 or 3"):
        pb.paste_back(generated, images(2), masks, 2)
    with pytest.raises(ValueError, match=r"mask: batch of 2, expected 1 or 3"):
        pb.paste_back(generated, images(1), box_mask(b=2), 2)


def test_a_source_of_another_size_is_refused_and_a_mask_of_another_size_is_resized():
    with pytest.raises(ValueError, match=r"source: 40x24 with 3 channels, but the generated image is 32x24"):
        pb.paste_back(images(), images(w=40), box_mask(), 2)
    with pytest.raises(ValueError, match=r"mask: expected a MASK \[B, H, W\]"):
        pb.paste_back(images(), images(), torch.zeros(1, 1, 24, 32), 2)
    half = box_mask(h=12, w=16, top=3, left=4, size=5)
    out_small, weight_small = pb.paste_back(images(), images(seed=1), half, 0)
    out_full, weight_full = pb.paste_back(images(), images(seed=1), box_mask(top=6, left=8, size=10), 0)
    assert torch.equal(weight_small, weight_full) and torch.equal(out_small, out_full)
