"""The studies' models, as plain ``nn.Module``s usable with ``torch.func``.

``lenet`` is LeCun et al.'s LeNet-5 layout (two 5x5 convolutions with max pooling, then
120-84-classes) for 28x28 MNIST or 32x32 SVHN. ``wide_resnet`` is Zagoruyko & Komodakis'
WRN-depth-k with pre-activation basic blocks, as in torchvision's ResNet code: WRN-16-1 is
the FDS paper's CIFAR-10 model. Both work with ``functional_call``, ``jvp`` and ``vmap``
(train-mode BatchNorm through ``replace_all_batch_norm_modules_``, which
:class:`~hpolab.hypergrad.task.FlatModel` applies).

The HOZOG paper's CIFAR-10 networks (section 3.2): ``two_layer_cnn``, two convolutions with
max pooling and local response normalization; ``cifar_vgg16`` and ``cifar_resnet152``,
torchvision's models with their heads fitted to 32 x 32 inputs. Local response normalization
holds no state, so it needs no patching for ``vmap``.

The HD paper's networks (Baydin et al., studies 06 and 07): ``mnist_mlp`` (two hidden layers of
1000 ReLUs), ``torch_blog_vgg16`` (the Torch blog's VGG-16 with BatchNorm and dropout, not
HOZOG's ``cifar_vgg16``), ``cifar_resnet18`` and the ``cpu`` scale's ``small_cnn``. The local
SGD study's: ``logistic_regression`` and an ``mlp``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hpolab.validation import check_count


def logistic_regression(features: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Logistic regression: one logit of ``features`` inputs, weights and bias starting at 0
    (the local SGD study's convex task, whose runs then differ only in data order)."""
    model = nn.Linear(features, 1).to(dtype)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    return model


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, flatten: bool = False) -> nn.Module:
    """Fully connected layers of ``sizes`` (inputs first) with ``activation`` between them, after
    an ``nn.Flatten`` if ``flatten``; torch's default initialization, drawn in layer order."""
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [activation()] if index else []
        layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


def lenet(in_channels: int = 1, image_size: int = 28, classes: int = 10) -> nn.Module:
    """LeNet-5: conv 5x5 (6) - max pool - conv 5x5 (16) - max pool - 120 - 84 - classes, ReLU."""
    check_count("in_channels", in_channels, minimum=1)
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 (two 5x5 convolutions and two poolings), got {image_size}")
    side = ((image_size - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * side * side, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, classes),
    )


class _Block(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the (projected) input."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(inputs), nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(outputs), nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(inputs, outputs, 1, stride, bias=False)
                         if stride != 1 or inputs != outputs else None)

    def forward(self, x):
        out = nn.functional.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(nn.functional.relu(self.bn2(out)))
        return out + skip


def wide_resnet(depth: int = 16, widen: int = 1, classes: int = 10, in_channels: int = 3) -> nn.Module:
    """WRN-depth-widen for 32x32 images: (depth - 4) / 6 blocks per group of widths 16k, 32k, 64k."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6 n + 4 with n >= 1 (10, 16, 22, 28...), got {depth}")
    check_count("widen", widen, minimum=1)
    blocks = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
    for group in range(3):
        for index in range(blocks):
            inputs = widths[group] if index == 0 else widths[group + 1]
            stride = 2 if group > 0 and index == 0 else 1
            layers.append(_Block(inputs, widths[group + 1], stride))
    layers += [nn.BatchNorm2d(widths[3]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(widths[3], classes)]
    return nn.Sequential(*layers)


def two_layer_cnn(width: int = 64, hidden: tuple[int, int] = (384, 192), classes: int = 10,
                  in_channels: int = 3, image_size: int = 32) -> nn.Module:
    """The HOZOG paper's "2-layer CNN with convolutional, max pooling, and normalizing layers".

    The paper names the layers but not their sizes; this is the model of that description in
    TensorFlow's CIFAR-10 tutorial (Krizhevsky's cuda-convnet layout): conv 5x5 (``width``) -
    ReLU - max pool 3x3 stride 2 - local response normalization - conv 5x5 (``width``) - ReLU -
    local response normalization - max pool 3x3 stride 2 - ``hidden[0]`` - ``hidden[1]`` -
    ``classes``, ReLU between. The normalization is TensorFlow's ``lrn(depth_radius=4,
    bias=1, alpha=0.001 / 9, beta=0.75)``: PyTorch divides alpha by the window (9), so
    ``alpha=0.001`` here. Pooling pads by 1 ("SAME"), so 32 x 32 images become 8 x 8.

    Example:
      >>> two_layer_cnn()(torch.zeros(2, 3, 32, 32)).shape
      torch.Size([2, 10])
    """
    check_count("width", width, minimum=1)
    if len(hidden) != 2:
        raise ValueError(f"hidden must hold two layer widths, got {hidden!r}")
    for size in hidden:
        check_count("hidden", size, minimum=1)
    if image_size < 4:
        raise ValueError(f"image_size must be at least 4 (two poolings by 2), got {image_size}")
    side = (image_size - 1) // 2 + 1
    side = (side - 1) // 2 + 1

    def normalize():
        return nn.LocalResponseNorm(size=9, alpha=0.001, beta=0.75, k=1.0)

    return nn.Sequential(
        nn.Conv2d(in_channels, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1), normalize(),
        nn.Conv2d(width, width, 5, padding=2), nn.ReLU(), normalize(), nn.MaxPool2d(3, 2, padding=1),
        nn.Flatten(), nn.Linear(width * side * side, hidden[0]), nn.ReLU(),
        nn.Linear(hidden[0], hidden[1]), nn.ReLU(), nn.Linear(hidden[1], classes),
    )


def cifar_vgg16(classes: int = 10) -> nn.Module:
    """torchvision's VGG-16 (no BatchNorm, as Simonyan & Zisserman's) for 32 x 32 images, as the
    HOZOG paper adapts it: after five poolings a 32 x 32 image is 512 x 1 x 1, so the first
    fully connected layer takes 512 inputs instead of 512 x 7 x 7 (and no pooling to 7 x 7).

    Its two dropout layers are left out: ``vmap`` over HOZOG's q + 1 runs forbids random ops
    (``randomness="error"``), and the runs must see the same noise (common random numbers)."""
    from torchvision.models import vgg16

    model = vgg16(num_classes=classes)
    model.avgpool = nn.Identity()
    model.classifier = nn.Sequential(nn.Linear(512, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True),
                                     nn.Linear(4096, classes))
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):  # torchvision's initialization of VGG's linear layers
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.constant_(layer.bias, 0)
    return model


def cifar_resnet152(classes: int = 10) -> nn.Module:
    """torchvision's ResNet-152 with a ``classes``-way head. Its adaptive average pooling already
    fits 32 x 32 images (the last stage is 1 x 1), so nothing else changes. Its BatchNorm layers
    normalize with batch statistics under :class:`~hpolab.hypergrad.task.FlatModel`."""
    from torchvision.models import resnet152

    return resnet152(num_classes=classes)


# --- the HD paper's networks (studies 06, 07) ---------------------------------------------------


def mnist_mlp(hidden: int = 1000) -> nn.Module:
    """The paper's MNIST network: two hidden layers of 1000 ReLU units (Baydin et al.'s MLP)."""
    return mlp((784, hidden, hidden, 10), flatten=True)


def small_cnn() -> nn.Module:
    """Two 3x3 conv blocks (16, 32 channels) and a linear layer: seconds per epoch on a CPU
    (the ``cpu`` scale's stand-in for VGG-16)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


# The Torch blog's VGG (Zagoruyko 2015, "92.45% on CIFAR-10 in Torch"): channels of each 3x3
# conv with the dropout after it ("M": 2x2 max pool).
TORCH_BLOG_VGG = [(64, 0.3), (64, 0), "M", (128, 0.4), (128, 0), "M", (256, 0.4), (256, 0.4), (256, 0), "M",
                  (512, 0.4), (512, 0.4), (512, 0), "M", (512, 0.4), (512, 0.4), (512, 0), "M"]


def torch_blog_vgg16() -> nn.Module:
    """The VGG-16 of the HD paper (Baydin et al.), from the Torch blog: 13 conv-BN(eps 1e-3)-ReLU layers with
    dropout 0.3 / 0.4 after most of them, then Dropout(0.5)-Linear(512, 512)-BN-ReLU-
    Dropout(0.5)-Linear(512, 10); convolutions initialized N(0, 2 / (9 * out channels))."""
    layers, channels = [], 3
    for entry in TORCH_BLOG_VGG:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            continue
        width, dropout = entry
        conv = nn.Conv2d(channels, width, 3, padding=1)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (9 * width)))
        nn.init.zeros_(conv.bias)
        layers += [conv, nn.BatchNorm2d(width, eps=1e-3), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        channels = width
    classifier = [nn.Flatten(), nn.Dropout(0.5), nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                  nn.Dropout(0.5), nn.Linear(512, 10)]
    return nn.Sequential(*layers, *classifier)


def cifar_resnet18() -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first conv, no max pool)."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
