"""The FDS models: their shapes, and hypergradients through them (train-mode BatchNorm included)."""

import pytest
import torch

from hpolab.hypergrad import classification_task, forward_mode, reverse_mode, schedule, train
from hpolab.models import lenet, wide_resnet


def images(n, channels, side, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, side, side, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("model, shape", [(lenet(1, 28), (5, 1, 28, 28)), (lenet(3, 32), (5, 3, 32, 32)),
                                          (wide_resnet(16, 1), (5, 3, 32, 32)), (wide_resnet(10, 2), (5, 3, 32, 32))],
                         ids=["lenet-mnist", "lenet-svhn", "wrn-16-1", "wrn-10-2"])
def test_models_map_a_batch_of_images_to_ten_logits(model, shape):
    assert model(torch.randn(shape)).shape == (5, 10)


def test_wrn_16_1_has_the_papers_size():
    """WRN-16-1: 2 blocks per group of widths 16, 32, 64, about 0.17 M weights."""
    weights = sum(p.numel() for p in wide_resnet(16, 1).parameters())
    assert 170_000 < weights < 180_000


def fds_setting(model, channels, side):
    torch.manual_seed(0)
    task = classification_task(model, images(16, channels, side, 0), images(8, channels, side, 1), batch_size=8,
                               dtype=torch.float64)
    return task, schedule(4, lr=torch.tensor([0.05, 0.02]), momentum=0.5, windows={"lr": 2}, learn=("lr", "momentum"))


def test_forward_mode_hypergradient_through_lenet_matches_finite_differences():
    task, hyper = fds_setting(lenet(1, 28), 1, 28)
    h, step = hyper.pack(), 1e-6

    def loss(point):
        return float(task.val_loss(train(task, hyper, 0, point).theta))

    fd = torch.tensor([(loss(h + step * e) - loss(h - step * e)) / (2 * step) for e in torch.eye(h.numel(), dtype=h.dtype)])
    grad = forward_mode()(task, hyper, 0).grad
    assert float((grad - fd).abs().max() / fd.abs().max()) < 1e-4


def test_forward_mode_hypergradient_through_wrn_with_batchnorm_equals_reverse_mode():
    """Finite differences are unreliable here (ReLU and BatchNorm kinks on 8-image batches move
    them by 0.5 % between steps 1e-6 and 1e-7); backpropagation through the run is exact."""
    task, hyper = fds_setting(wide_resnet(10, 1), 3, 32)
    forward, reverse = forward_mode()(task, hyper, 0).grad, reverse_mode()(task, hyper, 0).grad
    assert torch.allclose(forward, reverse, rtol=1e-8, atol=1e-12)


def test_bad_model_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="depth must be 6 n"):
        wide_resnet(15)
    with pytest.raises(ValueError, match="image_size must be at least 16"):
        lenet(1, 8)
