"""The closed-form MLP gradient and Hessian-times-tangents (hpolab.hypergrad.mlp_tangents)
against torch's double-backward, and forward mode with and without them."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from hpolab.hypergrad import classification_task, schedule
from hpolab.hypergrad.forward import forward_hypergradient
from hpolab.hypergrad.mlp_tangents import cross_entropy_tangents, mlp_layers
from hpolab.hypergrad.task import FlatModel


def images(n, seed, classes=3):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 3, dtype=torch.float64, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return x, y


ARCHITECTURES = {
    "tanh": lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 3)),
    "relu-sigmoid-deep": lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Sigmoid(),
                                               nn.Linear(4, 3)),
    "no-bias-identity": lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 5, bias=False), nn.Identity(),
                                              nn.Linear(5, 4), nn.Linear(4, 3, bias=False)),
    "linear": lambda: nn.Sequential(nn.Flatten(), nn.Linear(6, 3)),
}


def double_backward(module, theta, x, y, Z, l2=None):
    """(loss, g, H Z) by autograd, one double-backward per row."""
    flat = FlatModel(module)
    theta = theta.detach().requires_grad_()
    loss = nn.functional.cross_entropy(flat(theta, x), y)
    if l2 is not None:
        loss = loss + torch.exp(l2) * (theta**2).sum()
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    rows = [torch.autograd.grad(grad, theta, grad_outputs=z, retain_graph=True)[0] for z in Z]
    return loss.detach(), grad.detach(), torch.stack(rows)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("l2", [None, -3.0], ids=["no-l2", "l2"])
def test_closed_form_gradient_and_hessian_tangents_equal_double_backward(name, l2):
    torch.manual_seed(0)
    module = ARCHITECTURES[name]().double()
    flat = FlatModel(module)
    assert flat.mlp is not None
    theta = flat.init(1, torch.float64)
    x, y = images(11, 2)
    Z = torch.randn(4, theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    l2 = None if l2 is None else torch.tensor(l2, dtype=torch.float64)
    loss, grad, dgrad = cross_entropy_tangents(flat.mlp, flat.sizes, flat.shapes, theta, x, y, Z, l2)
    ref_loss, ref_grad, ref_dgrad = double_backward(module, theta, x, y, Z, l2)
    assert float(loss) == pytest.approx(float(ref_loss), rel=1e-13)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dgrad, ref_dgrad, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("module", [
    nn.Sequential(nn.Linear(6, 3), nn.BatchNorm1d(3)),
    nn.Sequential(nn.Linear(6, 3), nn.ReLU(inplace=True), nn.Linear(3, 2)),
    nn.Sequential(nn.Linear(6, 3), nn.Flatten(), nn.Linear(3, 2)),
    nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)),
    nn.Linear(6, 3),
    nn.Sequential(nn.Tanh()),
], ids=["batchnorm", "in-place-relu", "inner-flatten", "conv", "bare-linear", "no-linear"])
def test_only_plain_mlps_get_the_closed_form(module):
    assert mlp_layers(module) is None


def lr_and_decay_hyper(l2=None, learn_l2=False, T=24, k=4):
    """K learned learning rates, learned momentum and weight decay; an L2 term fixed or learned."""
    extra = {} if l2 is None else {"log_l2": torch.tensor([l2])}
    learn = ("lr", "momentum", "weight_decay") + (("log_l2",) if learn_l2 else ())
    return schedule(T, lr=torch.linspace(0.2, 0.1, k), momentum=0.6, weight_decay=1e-3,
                    windows={"lr": math.ceil(T / k)}, learn=learn, **extra)


def task_with(l2_term=False, grad_clip=None, example_groups=None):
    torch.manual_seed(0)
    module = ARCHITECTURES["relu-sigmoid-deep"]()
    return classification_task(module, images(48, 4), images(20, 5), batch_size=12, l2_term=l2_term,
                               example_groups=example_groups, grad_clip=grad_clip, dtype=torch.float64)


@pytest.mark.parametrize("horizon", [None, 1, 5], ids=["forward", "greedy-1", "greedy-5"])
@pytest.mark.parametrize("setting", ["plain", "clamp", "fixed-l2", "learned-l2"])
def test_forward_mode_with_the_closed_form_equals_the_double_backward(horizon, setting):
    task = task_with(l2_term=setting.endswith("l2"), grad_clip=0.05 if setting == "clamp" else None)
    assert task.tangents is not None
    hyper = lr_and_decay_hyper(l2=-4.0 if setting.endswith("l2") else None, learn_l2=setting == "learned-l2")
    closed = forward_hypergradient(task, hyper, 0, horizon)
    generic = forward_hypergradient(dataclasses.replace(task, tangents=None), hyper, 0, horizon)
    torch.testing.assert_close(closed.grad, generic.grad, rtol=1e-10, atol=1e-13)
    assert closed.loss == pytest.approx(generic.loss, rel=1e-12)
    assert closed.cost[:3] == generic.cost[:3]  # the same gradient, function and hvp counts


def test_tasks_with_example_weights_use_the_double_backward():
    assert task_with(example_groups=torch.arange(48) % 3).tangents is None


def test_unflattened_examples_with_more_than_one_axis_use_the_double_backward():
    module = nn.Sequential(nn.Linear(3, 3))
    assert classification_task(module, images(8, 1), images(4, 2), dtype=torch.float64).tangents is None
    flattened = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    assert classification_task(flattened, images(8, 1), images(4, 2), dtype=torch.float64).tangents is not None
