"""Small inner tasks the tuning tests share (imported by the test modules beside it)."""

import torch
from torch import nn

from hpolab.hypergrad import classification_task


def small_classification_task():
    """A 5-16-2 ReLU network on 200 / 100 linearly separable points, batches of 25."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    xv = torch.randn(100, 5, generator=generator)
    yv = (xv[:, 0] + 0.5 * xv[:, 1] > 0).long()
    torch.manual_seed(0)
    return classification_task(nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2)), (x, y), (xv, yv),
                               batch_size=25)


def noisy_linear_labels(n: int, features: int = 20):
    """Training and validation sets of n points each in ``features`` dimensions (float64),
    labelled by a random linear teacher plus Gaussian noise of scale 2: l2-regularized logistic
    regression on them has an interior best log lambda."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(features, generator=generator, dtype=torch.float64)

    def points():
        x = torch.randn(n, features, generator=generator, dtype=torch.float64)
        return x, (x @ w + 2 * torch.randn(n, generator=generator, dtype=torch.float64) > 0).long()

    return points(), points()
