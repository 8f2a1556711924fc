import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import tiny_clip_vision


@pytest.fixture(scope="module")
def clip_vision(comfy, tmp_path_factory):
    return tiny_clip_vision(tmp_path_factory.mktemp("clip_vision"))


def encode(node, **inputs):
    return node("ExemplarReferenceEncodeCLIPVision").execute(**inputs).result[0]


def test_patch_tokens_are_the_encoders_last_hidden_state(node, clip_vision):
    image = torch.rand(2, 80, 64, 3, generator=torch.Generator().manual_seed(1))
    tokens = encode(node, clip_vision=clip_vision, reference=image, tokens="patches", crop="center")
    expected = clip_vision.encode_image(image, crop=True)["last_hidden_state"][:, 1:]
    assert isinstance(tokens, pack_submodule("models.dreaminpainter.tokens").ExemplarTokens)
    assert tokens.grid == (4, 4) and tokens.tokens.shape == (2, 16, 64)
    torch.testing.assert_close(tokens.tokens, expected.float(), rtol=0, atol=0)
    assert tokens.source["encoder"] == "clip_vision"


def test_subject_mask_and_blank_background(node, clip_vision):
    image = torch.rand(1, 56, 56, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 56, 56)
    mask[:, :28, :28] = 1
    plain = encode(node, clip_vision=clip_vision, reference=image, tokens="patches", crop="none", subject_mask=mask)
    assert torch.allclose(plain.mask.view(4, 4)[:2, :2], torch.ones(2, 2))
    assert plain.mask.view(4, 4)[2:, 2:].max() == 0
    blanked = encode(
        node,
        clip_vision=clip_vision,
        reference=image,
        tokens="patches",
        crop="none",
        subject_mask=mask,
        blank_background=True,
    )
    white_outside = image.clone()
    white_outside[:, 28:, :] = 1
    white_outside[:, :, 28:] = 1
    expected = clip_vision.encode_image(white_outside, crop=False)["last_hidden_state"][:, 1:]
    torch.testing.assert_close(blanked.tokens, expected.float(), rtol=0, atol=1e-6)
    assert not torch.allclose(blanked.tokens, plain.tokens)


def test_mismatched_mask_batch_is_a_clear_error(node, clip_vision):
    with pytest.raises(ValueError, match="subject_mask has batch 3; expected 1 or the reference batch 2"):
        encode(
            node,
            clip_vision=clip_vision,
            reference=torch.rand(2, 56, 56, 3),
            tokens="cls",
            crop="center",
            subject_mask=torch.ones(3, 56, 56),
        )
