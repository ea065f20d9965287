"""Models of the FDS experiments, as plain ``nn.Module``s usable with ``torch.func``.

``lenet`` is LeCun et al.'s LeNet-5 layout (two 5x5 convolutions with max pooling, then
120-84-classes) for 28x28 MNIST or 32x32 SVHN. ``wide_resnet`` is Zagoruyko & Komodakis'
WRN-depth-k with pre-activation basic blocks, as in torchvision's ResNet code: WRN-16-1 is
the FDS paper's CIFAR-10 model. Both work with ``functional_call``, ``jvp`` and ``vmap``
(train-mode BatchNorm through ``replace_all_batch_norm_modules_``, which
:class:`~hpolab.hypergrad.task.FlatModel` applies).
"""

from __future__ import annotations

from torch import nn

from hpolab.validation import check_count


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
