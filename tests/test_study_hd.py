"""The HD-vs-decay studies: optimizers and schedules, the training loop, summaries, bad input."""

import math

import pandas as pd
import pytest
import torch

from hpolab.history import History
from hpolab.optim import SGDHD, AdamHD
from hpolab.studies import hd_vs_decay
from hpolab.training import fit


def toy_data(n=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=generator)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return x, y


@pytest.mark.parametrize("name, schedule, kind, beta, momentum", [
    ("sgd", "constant", SGDHD, 0.0, 0.0),
    ("sgdn", "hd", SGDHD, 1e-3, 0.9),
    ("adam", "hd", AdamHD, 1e-7, None),
    ("adam", "decay", AdamHD, 0.0, None),
])
def test_make_optimizer_builds_each_optimizer_and_schedule(name, schedule, kind, beta, momentum):
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer, scheduler = hd_vs_decay.make_optimizer(name, schedule, params, 0.1, 1e-3 if name != "adam" else 1e-7, 4)
    assert isinstance(optimizer, kind)
    assert optimizer.param_groups[0]["hypergrad_lr"] == beta
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4
    if momentum is not None:
        assert optimizer.param_groups[0]["momentum"] == momentum
    assert (scheduler is not None) == (schedule == "decay")


def test_lr_decay_halves_the_rate_every_decay_period_with_torch_scheduler():
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer, scheduler = hd_vs_decay.make_optimizer("sgd", "decay", params, 0.8, 0.0, 4)
    rates = []
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[2] == 0.8 and rates[3] == 0.4 and rates[7] == 0.2 and rates[11] == 0.1


def test_fit_records_train_and_test_loss_and_learning_rate():
    torch.manual_seed(0)
    model = hd_vs_decay.mnist_mlp(hidden=16)
    optimizer = SGDHD(model.parameters(), lr=0.05, hypergrad_lr=1e-3)
    history = fit(model, optimizer, toy_data(), toy_data(128, 1), steps=20, batch_size=32, seed=0,
                  evaluate_every=5, config={"optimizer": "sgd"})
    frame = history.frame
    assert list(frame["step"]) == [0, 5, 10, 15, 20]
    assert {"objective", "test_loss", "test_accuracy", "lr"} <= set(frame.columns)
    assert frame["objective"].iloc[-1] < frame["objective"].iloc[1]
    assert frame["lr"].iloc[-1] == optimizer.lr_history[0][-1]


def test_fit_stops_a_diverging_run_and_keeps_its_records():
    torch.manual_seed(0)
    model = hd_vs_decay.mnist_mlp(hidden=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    history = fit(model, optimizer, toy_data(), toy_data(128, 1), steps=200, batch_size=32, seed=0, evaluate_every=50)
    assert history.status == "diverged" and "diverged at step" in history.message
    assert history.frame["step"].iloc[-1] < 200


def test_mean_interval_is_the_t_interval():
    mean, half = hd_vs_decay.mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    assert hd_vs_decay.mean_interval([5.0]) == (5.0, 0.0)


def fake(optimizer, schedule, lr, best, beta=0.0, seed=0):
    frame = pd.DataFrame({"objective": [3.0, best], "best_objective": [3.0, best]})
    return History(frame, optimizer, "x", "mnist-mlp", seed,
                   {"optimizer": optimizer, "schedule": schedule, "lr0": lr, "hypergrad_lr": beta})


def test_sensitivity_normalizes_each_curve_by_its_best_rate():
    runs = [fake("sgd", "constant", 0.01, 1.0), fake("sgd", "constant", 0.1, 0.5), fake("sgd", "constant", 1.0, 2.0),
            fake("sgd", "hd", 0.01, 0.4, beta=1e-3), fake("sgd", "hd", 0.1, 0.6, beta=1e-3)]
    table = hd_vs_decay.sensitivity(runs).set_index(["curve", "lr0"])
    assert table.loc[("constant", 0.1), "lr / best lr"] == 1.0
    assert table.loc[("constant", 1.0), "lr / best lr"] == pytest.approx(10.0)
    assert table.loc[("HD beta=0.001", 0.1), "lr / best lr"] == pytest.approx(10.0)


@pytest.mark.parametrize("call, message", [
    (lambda: hd_vs_decay.make_optimizer("rmsprop", "hd", [torch.nn.Parameter(torch.zeros(1))], 0.1, 0.1, 1),
     "optimizer must be one of"),
    (lambda: hd_vs_decay.make_optimizer("sgd", "cosine", [torch.nn.Parameter(torch.zeros(1))], 0.1, 0.1, 1),
     "schedule must be one of"),
    (lambda: hd_vs_decay.run_study("cpu", tasks=["cifar-vgg16"], progress=False),
     r"task must be one of \['cifar-cnn', 'mnist-mlp'\] at scale 'cpu'"),
    (lambda: hd_vs_decay.run_study("huge", progress=False), "scale must be one of"),
    (lambda: hd_vs_decay.run_sensitivity("cpu", task="imagenet", progress=False), "task must be one of"),
])
def test_bad_study_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_paper_models_accept_32_by_32_images():
    x = torch.randn(2, 3, 32, 32)
    for build in (hd_vs_decay.cifar_vgg16, hd_vs_decay.cifar_resnet18, hd_vs_decay.small_cnn):
        assert build()(x).shape == (2, 10)
