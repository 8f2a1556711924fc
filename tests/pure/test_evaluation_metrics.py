"""Evaluation metrics against independent implementations: scikit-image for PSNR / SSIM / MSE / CIELAB Delta E,
torchvision's VGG16 for the style features, a direct loop for Gram matrices, numpy for cosines."""

import math

import numpy as np
import pytest
import torch
from skimage import color, metrics

from comfyui_exemplar.models.common import perceptual
from comfyui_exemplar.models.evaluation import embeddings, pixels, plot, style


def images(seed: int, batch: int = 2, h: int = 40, w: int = 48) -> torch.Tensor:
    return torch.rand(batch, h, w, 3, generator=torch.Generator().manual_seed(seed))


def region(seed: int, batch: int = 2, h: int = 40, w: int = 48) -> torch.Tensor:
    return (torch.rand(batch, h, w, generator=torch.Generator().manual_seed(seed)) > 0.6).double()


def test_psnr_and_mse_match_scikit_image_on_the_whole_image():
    a, b = images(0), images(1)
    for i in range(2):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        assert pixels.mse(a, b)[i].item() == pytest.approx(metrics.mean_squared_error(x, y), rel=1e-12)
        expected = metrics.peak_signal_noise_ratio(x, y, data_range=1)
        assert pixels.psnr(a, b)[i].item() == pytest.approx(expected, rel=1e-12)


def test_masked_psnr_and_mse_are_those_of_the_region_pixels_alone():
    a, b, r = images(2), images(3), region(4)
    for i in range(2):
        keep = r[i].bool().numpy()
        x, y = a[i].double().numpy()[keep], b[i].double().numpy()[keep]
        assert pixels.mse(a, b, r)[i].item() == pytest.approx(metrics.mean_squared_error(x, y), rel=1e-12)
        expected = metrics.peak_signal_noise_ratio(x, y, data_range=1)
        assert pixels.psnr(a, b, r)[i].item() == pytest.approx(expected, rel=1e-12)


def test_identical_images_give_inf_psnr_zero_mse_and_an_empty_region_gives_nan():
    a = images(5)
    assert torch.isinf(pixels.psnr(a, a)).all() and torch.equal(pixels.mse(a, a), torch.zeros(2, dtype=torch.float64))
    assert torch.isnan(pixels.mse(a, images(6), torch.zeros(2, 40, 48))).all()


def test_ssim_matches_scikit_image_gaussian_ssim():
    a = images(7)
    b = (a + 0.1 * images(8)).clamp(0, 1)
    for i in range(2):
        expected = metrics.structural_similarity(
            a[i].double().numpy(), b[i].double().numpy(), channel_axis=-1, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )
        assert pixels.ssim(a, b)[i].item() == pytest.approx(expected, abs=1e-10)


def test_masked_ssim_is_the_region_mean_of_scikit_images_ssim_map():
    a, b, r = images(9), images(10), region(11)
    for i in range(2):
        _, full = metrics.structural_similarity(
            a[i].double().numpy(), b[i].double().numpy(), channel_axis=-1, data_range=1.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True,
        )
        ssim_map = full.mean(axis=-1)[5:-5, 5:-5]
        weight = r[i].numpy()[5:-5, 5:-5]
        expected = (ssim_map * weight).sum() / weight.sum()
        assert pixels.ssim(a, b, r)[i].item() == pytest.approx(expected, abs=1e-10)


def test_ssim_of_an_image_with_itself_is_one_and_too_small_images_are_refused():
    a = images(12)
    assert torch.allclose(pixels.ssim(a, a), torch.ones(2, dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError, match="SSIM needs images of at least 11x11 pixels"):
        pixels.ssim(images(0, h=8, w=20), images(1, h=8, w=20))


def test_delta_e_matches_scikit_image_cie76_in_cielab():
    a, b, r = images(13), images(14), region(15)
    for i in range(2):
        distance = color.deltaE_cie76(color.rgb2lab(a[i].double().numpy()), color.rgb2lab(b[i].double().numpy()))
        assert pixels.delta_e(a, b)[i].item() == pytest.approx(distance.mean(), rel=1e-6)
        keep = r[i].bool().numpy()
        assert pixels.delta_e(a, b, r)[i].item() == pytest.approx(distance[keep].mean(), rel=1e-6)


def test_background_metrics_split_outside_and_inside_and_check_sizes():
    source, result = images(16, batch=1), images(17, batch=3)
    mask = torch.zeros(1, 40, 48)
    mask[:, 10:30, 12:36] = 1
    out = pixels.background_metrics(source, result, mask)
    assert list(out) == [f"{m}_{w}" for w in ("outside", "inside") for m in ("psnr", "ssim", "mse", "delta_e")]
    assert all(v.shape == (3,) for v in out.values())
    expected = pixels.mse(source.expand(3, -1, -1, -1), result, (1 - mask).expand(3, -1, -1))
    assert torch.equal(out["mse_outside"], expected)
    preserved = torch.where(mask[..., None].bool(), result, source)
    kept = pixels.background_metrics(source, preserved, mask)
    assert torch.isinf(kept["psnr_outside"]).all() and torch.equal(kept["delta_e_outside"], torch.zeros(3).double())
    with pytest.raises(ValueError, match=r"source is \(40, 48\) pixels but result is \(20, 48\)"):
        pixels.background_metrics(source, images(0, h=20), mask)


def test_cosines_match_numpy_and_the_pairings_follow_the_protocols():
    a = torch.randn(3, 16, generator=torch.Generator().manual_seed(18))
    b = torch.randn(4, 16, generator=torch.Generator().manual_seed(19))
    na, nb = a.double().numpy(), b.double().numpy()
    expected = (na / np.linalg.norm(na, axis=1, keepdims=True)) @ (nb / np.linalg.norm(nb, axis=1, keepdims=True)).T
    np.testing.assert_allclose(embeddings.cosine_matrix(a, b).numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(embeddings.similarities(a, b, "all_pairs").numpy(), expected.mean(1), atol=1e-12)
    np.testing.assert_allclose(embeddings.similarities(a, b[:3]).numpy(), np.diag(expected[:, :3]), atol=1e-12)
    np.testing.assert_allclose(embeddings.similarities(a, b[1:2]).numpy(), expected[:, 1], atol=1e-12)
    with pytest.raises(ValueError, match="paired scoring needs as many references as images"):
        embeddings.similarities(a, b)


def test_clip_score_is_hundred_times_cosine_floored_at_zero():
    cos = torch.tensor([-0.3, 0.0, 0.25, 1.0], dtype=torch.float64)
    assert torch.equal(embeddings.as_score(cos, "clip_score"), torch.tensor([0.0, 0.0, 25.0, 100.0]).double())
    assert torch.equal(embeddings.as_score(cos, "cosine"), cos)


def test_mask_box_crops_each_image_to_its_masks_bounding_box():
    imgs = images(20, batch=2)
    masks = torch.zeros(2, 40, 48)
    masks[0, 5:9, 10:30] = 1
    masks[1, 20, 3] = 1
    crops = embeddings.crop_to_mask_boxes(imgs, masks)
    assert torch.equal(crops[0], imgs[0:1, 5:9, 10:30]) and torch.equal(crops[1], imgs[1:2, 20:21, 3:4])
    with pytest.raises(ValueError, match="mask is empty"):
        embeddings.crop_to_mask_boxes(imgs, torch.zeros(1, 40, 48))


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    model = perceptual.VGG16Features(taps=style.STYLE_LAYERS)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def test_vgg_features_match_torchvisions_vgg16(vgg):
    import torchvision

    reference = torchvision.models.vgg16(weights=None).features.eval()
    reference.load_state_dict({k.removeprefix("features."): v for k, v in vgg.state_dict().items()}, strict=False)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(21))
    ours = vgg(x)
    with torch.no_grad():
        expected = []
        h = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
            1, 3, 1, 1
        )
        for index, module in enumerate(reference):
            h = module(h)
            if index in style.STYLE_LAYERS:
                expected.append(h)
    assert [tuple(o.shape) for o in ours] == [(1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16), (1, 512, 8, 8),
                                              (1, 512, 4, 4)]
    for o, e in zip(ours, expected):
        assert torch.equal(o, e)


def test_vgg_loader_names_what_is_missing(vgg):
    with pytest.raises(ValueError, match=r"style.pth is not a VGG16 weight file: expected torchvision's keys"):
        perceptual.vgg16_features({"classifier.0.weight": torch.zeros(1)}, source="style.pth", taps=style.STYLE_LAYERS)
    partial = {k: v for k, v in vgg.state_dict().items() if k != "features.24.bias"}
    with pytest.raises(ValueError, match=r"style.pth: VGG16 weights lack \['features.24.bias'\]"):
        perceptual.vgg16_features(partial, source="style.pth", taps=style.STYLE_LAYERS)


def test_gram_matches_a_direct_sum():
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    g = style.gram(f)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                direct = sum(f[b, i, y, x] * f[b, j, y, x] for y in range(4) for x in range(5)) / (3 * 4 * 5)
                assert g[b, i, j].item() == pytest.approx(direct.item(), rel=1e-12)


def test_five_patches_are_the_corners_and_the_centre():
    img = images(23, batch=1, h=40, w=60)
    patches = style.five_patches(img, 0.5, size=20)
    x = img.movedim(-1, 1)
    assert patches.shape == (5, 3, 20, 20)
    assert torch.equal(patches[0], x[0, :, :20, :20]) and torch.equal(patches[3], x[0, :, 20:, 40:])
    assert torch.equal(patches[4], x[0, :, 10:30, 20:40])


def test_style_score_is_hundred_for_the_style_image_itself_and_matches_gram_cosines(vgg):
    style_image, other = images(24, batch=1, h=64, w=64), images(25, batch=1, h=64, w=64)
    scores = style.style_scores(vgg, torch.cat([style_image, other]), style_image, size=64)
    assert scores[0].item() == pytest.approx(100.0, abs=1e-9)
    g_other = style.gram_matrices(vgg, other, size=64)
    g_style = style.gram_matrices(vgg, style_image, size=64)
    cosines = [
        torch.nn.functional.cosine_similarity(a[0, p].flatten().double(), b[0, p].flatten().double(), dim=0)
        for a, b in zip(g_other, g_style) for p in range(5)
    ]
    assert scores[1].item() == pytest.approx(100 * torch.stack(cosines).mean().item(), rel=1e-12)
    assert torch.equal(scores, style.style_scores(vgg, torch.cat([style_image, other]), style_image, size=64))
    assert scores[1] < 100


def test_sweep_figure_draws_tiles_and_charts_and_checks_lengths():
    figure = plot.sweep_figure({"PSNR": [20.0, 25.0, math.inf], "SSIM": [0.5, 0.7, 0.9]}, ["1", "2", "3"], "cfg",
                               images(26, batch=3))
    assert figure.shape[0] == 1 and figure.shape[-1] == 3 and figure.shape[1] > plot.CHART_H
    assert figure.shape[2] >= 3 * plot.TILE
    assert figure.std() > 0.05
    with pytest.raises(ValueError, match="x_values has 2 entries but the metrics have 3 points"):
        plot.sweep_figure({"PSNR": [1.0, 2.0, 3.0]}, ["a", "b"])
    with pytest.raises(ValueError, match="metrics have different lengths"):
        plot.sweep_figure({"a": [1.0], "b": [1.0, 2.0]})
