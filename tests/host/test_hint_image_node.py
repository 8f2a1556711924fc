import pytest
import torch


def test_hint_node_sizes_to_the_source_and_rejects_empty_masks(node):
    hint_node = node("ExemplarHintImage")
    image = torch.rand(1, 96, 128, 3)
    mask = torch.zeros(1, 48, 64)
    mask[:, 10:30, 20:50] = 1
    hint, rect = hint_node.execute(
        image=image, mask=mask, reference=torch.rand(1, 32, 32, 3), fit="stretch", min_side=8
    ).result
    assert hint.shape == (1, 96, 128, 3) and rect.shape == (1, 96, 128)
    assert rect.sum() == 40 * 60
    with pytest.raises(ValueError, match="mask 0 is empty"):
        hint_node.execute(
            image=image, mask=torch.zeros(1, 48, 64), reference=torch.rand(1, 8, 8, 3), fit="fit", min_side=8
        )


def test_deprecated_hint_image_node_equals_dtc_hint(node):
    deprecated = node("ExemplarHintImage")
    kept = node("ExemplarDtCHint")
    assert deprecated.define_schema().is_deprecated and not kept.define_schema().is_deprecated
    g = torch.Generator().manual_seed(0)
    image, reference = torch.rand(1, 64, 80, 3, generator=g), torch.rand(1, 20, 30, 3, generator=g)
    mask = torch.zeros(1, 32, 40)
    mask[:, 5:25, 8:30] = 1
    inputs = dict(image=image, mask=mask, reference=reference, fit="fit", min_side=8)
    old_hint, old_rectangle = deprecated.execute(**inputs).result
    _, hint_image, _, rectangle = kept.execute(**inputs).result
    assert torch.equal(old_hint, hint_image) and torch.equal(old_rectangle, rectangle)
