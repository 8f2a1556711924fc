"""Perceptual loss on ImageNet VGG16 features (Diffuse to Choose's auxiliary loss; shared with the inpainting trainers).

The network is torchvision's VGG16 `features` stack, built here layer for layer with the same module indices,
so its file loads as it is: torchvision's published `vgg16-397923af.pth` (keys `features.N.weight` /
`features.N.bias`; the classifier keys are ignored), a safetensors copy of it, or a file holding only the
features keys without the `features.` prefix. Nothing is downloaded.

The outputs are taken at `taps`, indices into torchvision's `features` (0..30; e.g. the style score's
relu1_1 ... relu5_1 = 1, 6, 11, 18, 25), or at the ReLUs of the first `layers` convolutions. "The first five
layers" (DtC paper) are read as the first five convolutions with their ReLUs (conv1_1, conv1_2, conv2_1, conv2_2,
conv3_1; torchvision indices features.1, .3, .6, .8, .11). Inputs are images in [0, 1], normalised with ImageNet's
mean and std as torchvision's weights expect. The loss is the mean over the taps of the mean squared difference of
the two images' features.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_LAYERS = 5


def _modules() -> list[nn.Module]:
    modules, channels = [], 3
    for entry in VGG16_LAYOUT:
        if entry == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, entry, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            channels = entry
    return modules


FEATURE_COUNT = len(_modules())  # 31: torchvision's features.0 .. features.30


def relu_indices(layers: int) -> list[int]:
    """torchvision `features` indices of the ReLUs after the first `layers` convolutions."""
    indices, index = [], 0
    for entry in VGG16_LAYOUT:
        if entry == "M":
            index += 1
            continue
        indices.append(index + 1)
        index += 2
    if not 1 <= layers <= len(indices):
        raise ValueError(f"layers: VGG16 has {len(indices)} convolutions, got {layers}")
    return indices[:layers]


class VGG16Features(nn.Module):
    """torchvision's VGG16 `features` up to the last tap; forward returns the outputs of the tapped modules.

    Give `taps` (increasing `features` indices) or `layers` (the ReLUs of the first `layers` convolutions),
    not both; neither means `layers=5`."""

    def __init__(self, layers: int | None = None, taps: Sequence[int] | None = None):
        super().__init__()
        if layers is not None and taps is not None:
            raise ValueError(f"VGG16Features takes layers or taps, not both (got layers={layers}, taps={taps})")
        if taps is None:
            taps = relu_indices(DEFAULT_LAYERS if layers is None else layers)
        self.taps = check_taps(taps)
        self.features = nn.Sequential(*_modules()[: self.taps[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B, 3, H, W] in [0, 1] -> the feature maps at the taps."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VGG16 takes images [B, 3, H, W]; got shape {tuple(images.shape)}")
        x = (images - self.mean.to(images)) / self.std.to(images)
        out = []
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.taps:
                out.append(x)
        return out


def check_taps(taps: Sequence[int]) -> list[int]:
    """`taps` as a list, checked to be increasing torchvision `features` indices."""
    taps = list(taps)
    if not taps or any(not isinstance(t, int) or isinstance(t, bool) for t in taps):
        raise ValueError(
            f"taps: expected torchvision VGG16 `features` indices (ints 0..{FEATURE_COUNT - 1}), got {taps}"
        )
    if taps[0] < 0 or taps[-1] >= FEATURE_COUNT or any(a >= b for a, b in zip(taps, taps[1:])):
        raise ValueError(f"taps: expected increasing indices in 0..{FEATURE_COUNT - 1} (VGG16 `features`), got {taps}")
    return taps


def features_state_dict(state_dict: dict[str, torch.Tensor], source: str = "file") -> dict[str, torch.Tensor]:
    """The `features.*` entries of a torchvision VGG16 state dict (or an unprefixed features-only one)."""
    prefixed = {k: v for k, v in state_dict.items() if k.startswith("features.")}
    if prefixed:
        return prefixed
    if state_dict and all(k.split(".", 1)[0].isdigit() for k in state_dict):
        return {f"features.{k}": v for k, v in state_dict.items()}
    raise ValueError(
        f"{source} is not a VGG16 weight file: expected torchvision's keys 'features.0.weight', ... "
        f"(e.g. vgg16-397923af.pth); found {sorted(state_dict)[:3]}"
    )


def vgg16_features(
    state_dict: dict[str, torch.Tensor],
    layers: int | None = None,
    source: str = "file",
    taps: Sequence[int] | None = None,
) -> VGG16Features:
    """A frozen VGG16Features (eval, fp32) of `layers` or `taps` holding the weights of `state_dict`."""
    network = VGG16Features(layers, taps)
    wanted = network.state_dict()
    given = features_state_dict(state_dict, source)
    missing = [k for k in wanted if k not in given]
    if missing:
        raise ValueError(
            f"{source}: VGG16 weights lack {missing[:3]} (a torchvision VGG16 file has all of features.0..28)"
        )
    for key, tensor in wanted.items():
        if given[key].shape != tensor.shape:
            raise ValueError(
                f"{source}: {key} has shape {tuple(given[key].shape)}, VGG16 expects {tuple(tensor.shape)}"
            )
    network.load_state_dict({k: given[k].float() for k in wanted})
    return network.train(False).requires_grad_(False)


def read_weight_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A .safetensors file, or a torch .pth/.pt file read with weights_only (no code runs)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path.name}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def perceptual_loss(network: VGG16Features, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the taps of mse(features(generated), features(target)); images [B, 3, H, W] in [0, 1]."""
    if generated.shape != target.shape:
        raise ValueError(f"perceptual loss: generated {tuple(generated.shape)} and target {tuple(target.shape)} differ")
    with torch.no_grad():
        reference = network(target.float())
    ours = network(generated.float())
    return torch.stack([torch.nn.functional.mse_loss(a, b) for a, b in zip(ours, reference)]).mean()
