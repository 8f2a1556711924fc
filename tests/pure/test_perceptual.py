"""The perceptual loss's VGG16 equals torchvision's own VGG16 feature extractor on the same (random) weights."""

import pytest
import torch

from comfyui_exemplar.models.common import perceptual

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.mark.parametrize("layers", [1, 5, 13])
def test_features_match_torchvision(reference, layers):
    from torchvision.models.feature_extraction import create_feature_extractor

    taps = perceptual.relu_indices(layers)
    extractor = create_feature_extractor(reference, return_nodes={f"features.{i}": str(i) for i in taps})
    ours = perceptual.vgg16_features(reference.state_dict(), layers)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    normalised = (images - torch.tensor(perceptual.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        perceptual.IMAGENET_STD
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = extractor(normalised)
        got = ours(images)
    assert len(got) == layers
    for index, feature in zip(taps, got):
        torch.testing.assert_close(feature, expected[str(index)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("taps", [(1, 6, 11, 18, 25), (0, 4, 30)])
def test_taps_at_any_feature_index_match_torchvision(reference, taps):
    ours = perceptual.vgg16_features(reference.state_dict(), taps=taps)
    assert len(ours.features) == taps[-1] + 1
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = ours(images)
        h = (images - torch.tensor(perceptual.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
            perceptual.IMAGENET_STD
        ).view(1, 3, 1, 1)
        expected = []
        for index, module in enumerate(reference.features):
            h = module(h)
            if index in taps:
                expected.append(h.clone())  # torchvision's ReLUs work in place
    assert len(got) == len(taps)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


def test_taps_and_layers_are_checked():
    assert perceptual.VGG16Features().taps == perceptual.VGG16Features(layers=5).taps == [1, 3, 6, 8, 11]
    assert perceptual.VGG16Features(taps=(3, 8)).taps == [3, 8]
    with pytest.raises(ValueError, match="layers or taps, not both"):
        perceptual.VGG16Features(layers=2, taps=(1,))
    with pytest.raises(ValueError, match=r"taps: expected increasing indices in 0..30 "
                       r"\(VGG16 `features`\), got \[6, 1\]"):
        perceptual.VGG16Features(taps=(6, 1))
    with pytest.raises(ValueError, match=r"got \[31\]"):
        perceptual.VGG16Features(taps=(31,))
    with pytest.raises(ValueError, match=r"taps: expected torchvision VGG16 `features` indices"):
        perceptual.VGG16Features(taps=())


def test_the_first_five_layers_are_conv1_1_to_conv3_1():
    assert perceptual.relu_indices(5) == [1, 3, 6, 8, 11]
    network = perceptual.VGG16Features(5)
    assert [type(m).__name__ for m in network.features][-2:] == ["Conv2d", "ReLU"] and len(network.features) == 12
    with pytest.raises(ValueError, match="VGG16 has 13 convolutions"):
        perceptual.VGG16Features(14)


def test_torchvision_file_loads_in_both_forms(reference, tmp_path):
    from safetensors.torch import save_file

    pth = tmp_path / "vgg16-397923af.pth"
    torch.save(reference.state_dict(), pth)  # the published file is this state dict, classifier included
    features_only = {
        k.removeprefix("features."): v.contiguous()
        for k, v in reference.state_dict().items()
        if k.startswith("features.")
    }
    st = tmp_path / "vgg16_features.safetensors"
    save_file(features_only, str(st))
    a = perceptual.vgg16_features(perceptual.read_weight_file(pth))
    b = perceptual.vgg16_features(perceptual.read_weight_file(st))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not any(p.requires_grad for p in a.parameters())
    with pytest.raises(ValueError, match="is not a VGG16 weight file"):
        perceptual.vgg16_features({"conv.weight": torch.zeros(1)}, source="other.pth")
    truncated = {k: v for k, v in reference.state_dict().items() if k != "features.10.weight"}
    with pytest.raises(ValueError, match=r"lack \['features.10.weight'\]"):
        perceptual.vgg16_features(truncated, source="vgg.pth")


def test_loss_is_zero_on_equal_images_and_grows_with_the_difference(reference):
    network = perceptual.vgg16_features(reference.state_dict())
    g = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, 32, 32, generator=g)
    noise = torch.randn(1, 3, 32, 32, generator=g)
    assert float(perceptual.perceptual_loss(network, target, target)) == 0.0
    losses = [float(perceptual.perceptual_loss(network, target + s * noise, target)) for s in (0.01, 0.1, 0.5)]
    assert 0 < losses[0] < losses[1] < losses[2]
    generated = (target + 0.1 * noise).requires_grad_(True)
    perceptual.perceptual_loss(network, generated, target).backward()
    assert generated.grad is not None and float(generated.grad.abs().sum()) > 0
