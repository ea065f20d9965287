"""The HD-vs-decay studies (06, 07): the paper's settings, tuning on its grids, the shared
cache, the summaries, the claims (each shown to hold and to fail), bad input."""

import itertools
import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from hpolab import claims, models
from hpolab.data import DataNotFoundError, data_root
from hpolab.history import History
from hpolab.optim import SGDHD, AdamHD
from hpolab.studies import hd_vs_decay
from hpolab.training import fit
from hpolab.studies import hd_vs_decay_claims_rules
from hpolab.studies import hd_vs_decay_setting
from hpolab import tables


def toy_data(n=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=generator)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return x, y


# ---------------------------------------------------------------------------------------------
# The paper's settings


@pytest.mark.parametrize("name, schedule, kind, beta, momentum", [
    ("sgd", "constant", SGDHD, 0.0, 0.0),
    ("sgdn", "hd", SGDHD, 1e-3, 0.9),
    ("adam", "hd", AdamHD, 1e-7, None),
    ("adam", "decay", AdamHD, 0.0, None),
])
def test_make_optimizer_builds_each_optimizer_and_schedule(name, schedule, kind, beta, momentum):
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer, scheduler = hd_vs_decay_setting.make_optimizer(name, schedule, params, 0.1, 1e-3 if name != "adam" else 1e-7, 4)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, kind)
    assert group["hypergrad_lr"] == beta and group["weight_decay"] == 1e-4
    if momentum is not None:
        assert group["momentum"] == momentum and group["nesterov"] == (name == "sgdn")
    else:
        assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8
    assert (scheduler is not None) == (schedule == "decay")


def test_study_hd_follows_the_printed_rule_whose_rate_may_go_negative():
    """On 10 w^2, alpha_0 = 0.15 overshoots and beta = 1 drives the rate below 0: the paper's
    (and the reference code's) rule keeps the negative rate, where our clamped default would
    hold it at 0."""
    weight = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer, _ = hd_vs_decay_setting.make_optimizer("sgd", "hd", [weight], 0.15, 1.0, 1)
    for _ in range(2):
        optimizer.zero_grad()
        (10 * weight**2).sum().backward()
        optimizer.step()
    g1, w1 = 20.0, 1.0 - 0.15 * (20.0 + 1e-4)
    g2 = 20.0 * w1 + 1e-4 * w1
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.15 + (g1 + 1e-4) * g2)
    assert optimizer.param_groups[0]["lr"] < 0


def test_lr_decay_halves_the_rate_every_decay_period_with_torch_scheduler():
    params = [torch.nn.Parameter(torch.zeros(3))]
    optimizer, scheduler = hd_vs_decay_setting.make_optimizer("sgd", "decay", params, 0.8, 0.0, 4)
    rates = []
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[2] == 0.8 and rates[3] == 0.4 and rates[7] == 0.2 and rates[11] == 0.1


@pytest.mark.parametrize("task, epochs", [("cifar-resnet18", 250), ("mnist-mlp", 200)])
def test_lr_decay_halves_every_25_epochs_at_the_papers_length_on_cifar_too(monkeypatch, task, epochs):
    """Section 2.2: halve every 25 epochs, over 250 CIFAR-10 epochs as over 200 MNIST ones
    (the old code halved every 1/8 of any run: every 31.25 CIFAR epochs)."""
    monkeypatch.setitem(hd_vs_decay_setting.MODELS, task, lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 10)))
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 2, 3])
    history = hd_vs_decay_setting.train_setting(hd_vs_decay.Setting(task, "sgd", "decay", 0.1), ((x, y), (x, y)), epochs, 0,
                                        batch_size=2, device="cpu", records_per_epoch=1)
    rate = history.frame.set_index("step")["lr"]  # one record per epoch of 2 steps, after the scheduler's step
    assert rate[2 * 24] == pytest.approx(0.1) and rate[2 * 25] == pytest.approx(0.05)
    assert rate[2 * 49] == pytest.approx(0.05) and rate[2 * 50] == pytest.approx(0.025)
    assert hd_vs_decay_setting.decay_epochs(task, epochs) == 25


def test_records_split_the_run_evenly_so_no_record_averages_a_stub(monkeypatch):
    """39 steps per epoch, 2 records per epoch: records every 19-20 steps (the old fixed interval
    of 19 left a last record averaging 2 minibatches, which the minimal loss could pick)."""
    monkeypatch.setitem(hd_vs_decay_setting.MODELS, "cifar-cnn", lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 10)))
    x, y = torch.randn(156, 2), torch.arange(156) % 10
    history = hd_vs_decay_setting.train_setting(hd_vs_decay.Setting("cifar-cnn", "sgd", "constant", 0.1), ((x, y), (x, y)), 2, 0,
                                        batch_size=4, device="cpu", records_per_epoch=2)
    steps = history.frame["step"].tolist()
    assert steps[0] == 0 and steps[-1] == 78 and len(steps) == 5
    assert {b - a for a, b in itertools.pairwise(steps[1:])} <= {19, 20}


def test_vgg16_is_the_torch_blog_network_the_paper_names():
    model = models.torch_blog_vgg16()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d))]
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    linears = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert [n.eps for n in norms] == [1e-3] * 13 + [1e-5]  # SpatialBatchNormalization(n, 1e-3); BatchNormalization(512)
    assert dropouts == [0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.5]
    assert linears == [(512, 512), (512, 10)]


def test_paper_models_accept_32_by_32_images():
    x = torch.randn(2, 3, 32, 32)
    for build in (models.torch_blog_vgg16, models.cifar_resnet18, models.small_cnn):
        assert build()(x).shape == (2, 10)


def test_mnist_model_is_two_hidden_layers_of_1000():
    linears = [(m.in_features, m.out_features) for m in models.mnist_mlp().modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(784, 1000), (1000, 1000), (1000, 10)]


def test_paper_scale_reads_appendix_a_and_section_3():
    grid = hd_vs_decay.grids_for("paper")
    assert grid.alphas["sgd"] == grid.alphas["sgdn"] == [1e-5, 1e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1]
    assert grid.alphas["adam"] == [1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1]
    assert grid.hd_alphas["sgd"] == grid.alphas["sgd"]
    assert grid.hd_alphas["adam"] == [1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01]
    assert grid.betas["sgd"] == grid.betas["sgdn"] == [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    assert grid.betas["adam"] == [1e-8, 1e-7, 1e-6, 1e-5, 1e-4]
    assert {t: s[2] for t, s in hd_vs_decay_setting.SIZES["paper"].items()} == {
        "mnist-mlp": 200, "cifar-vgg16": 250, "cifar-resnet18": 250}
    assert hd_vs_decay.TUNING_SEEDS["paper"] == hd_vs_decay.SEEDS["paper"] == hd_vs_decay.SENSITIVITY_SEEDS["paper"] == 5
    assert hd_vs_decay.SENSITIVITY_TASKS["paper"] == ["cifar-vgg16", "cifar-resnet18"]


def test_cpu_grids_are_subsets_holding_baydins_setting():
    paper, cpu = hd_vs_decay.grids_for("paper"), hd_vs_decay.grids_for("cpu")
    for name in hd_vs_decay.OPTIMIZERS:
        for field in ("alphas", "hd_alphas", "betas"):
            assert set(getattr(cpu, field)[name]) <= set(getattr(paper, field)[name])
        for task in ("mnist-mlp", "cifar-cnn"):
            alpha, beta = hd_vs_decay.suggested(task, name)
            assert alpha in cpu.hd_alphas[name] and beta in cpu.betas[name]


# ---------------------------------------------------------------------------------------------
# Training loop and summaries


def test_fit_records_train_and_test_loss_and_learning_rate():
    torch.manual_seed(0)
    model = models.mnist_mlp(hidden=16)
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
    model = models.mnist_mlp(hidden=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    history = fit(model, optimizer, toy_data(), toy_data(128, 1), steps=200, batch_size=32, seed=0, evaluate_every=50)
    assert history.status == "diverged" and "diverged at step" in history.message
    assert history.frame["step"].iloc[-1] < 200


def test_mean_interval_is_the_t_interval():
    mean, half = tables.mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    assert tables.mean_interval([5.0]) == (5.0, 0.0)


def fake_history(setting, seed, loss=None, status="finished"):
    """A run whose minimal training loss is ``loss`` (default: a function of the setting with a
    known best) plus a small seed effect."""
    if loss is None:
        loss = abs(math.log10(setting.lr) + 2) + (abs(math.log10(setting.hypergrad_lr) + 4) if setting.hypergrad_lr else 0)
        loss = 0.1 + loss / 10
    loss += 0.001 * seed
    frame = pd.DataFrame({"step": [0, 1, 2], "objective": [math.nan, 2.0, loss], "test_loss": [2.3, 2.0, loss + 0.1],
                          "test_accuracy": [0.1, 0.5, 0.9], "lr": [setting.lr] * 3})
    frame["best_objective"] = frame["objective"].cummin()
    return History(frame, setting.optimizer, setting.label, setting.task, seed,
                   {"optimizer": setting.optimizer, "schedule": setting.schedule, "lr0": setting.lr,
                    "hypergrad_lr": setting.hypergrad_lr, "task": setting.task}, ["lr"], status)


@pytest.fixture
def fake_training(monkeypatch, tmp_path):
    """Trainer._train replaced by :func:`fake_history`, recording each call; the cache in tmp_path."""
    monkeypatch.setenv("HPOLAB_RUNS", str(tmp_path))
    calls = []

    def train(self, setting, seed):
        calls.append((setting, seed))
        return fake_history(setting, seed)

    monkeypatch.setattr(hd_vs_decay.Trainer, "_train", train)
    return calls


def test_study_06_tunes_on_the_grid_then_runs_the_best_and_baydins_setting_over_seeds(fake_training):
    result = hd_vs_decay.run_study("cpu", tasks=["mnist-mlp"], tuning_seeds=1, seeds=3, progress=False)
    grid = hd_vs_decay.grids_for("cpu")
    assert len(result.tuning) == sum(len(grid.alphas[o]) + len(grid.hd_alphas[o]) * len(grid.betas[o])
                                     for o in hd_vs_decay.OPTIMIZERS)
    tuned = result.summary[result.summary["role"] == "tuned"].set_index("method")
    # fake_history's loss is lowest at alpha_0 = 0.01 and beta = 1e-4, both on the cpu grids
    assert tuned.loc["SGD-decay", "alpha_0"] == 0.01 and tuned.loc["SGD-HD", "alpha_0"] == 0.01
    assert tuned.loc["SGDN-HD", "beta"] == 1e-4 and tuned.loc["Adam-HD", "alpha_0"] == 0.01
    given = result.summary[result.summary["role"] == "suggested"].set_index("method")
    assert (given.loc["SGD-HD", "alpha_0"], given.loc["SGD-HD", "beta"]) == (1e-3, 1e-3)
    assert (given.loc["Adam-HD", "alpha_0"], given.loc["Adam-HD", "beta"]) == (1e-3, 1e-7)
    assert set(result.summary["runs"]) == {3}
    assert result.tuning["chosen"].sum() == 6
    assert len(fake_training) == len(set(fake_training))  # every (setting, seed) trained once
    # the chosen configurations' seed 0 is the tuning run itself
    assert len(fake_training) == len(result.tuning) + 2 * 6 + 3 * 2  # Baydin's Adam-HD point has beta 1e-7: on grid
    table = hd_vs_decay.grid_table(result.tuning, "mnist-mlp")
    assert table.loc[table["method"] == "SGD-HD beta=0.0001", "chosen alpha_0"].item() == "0.01"
    runs = hd_vs_decay.figure_runs(result, "mnist-mlp", schedules=["hd"], roles=["suggested", "tuned"])
    assert len(runs) == 6 * 3 and len({h.label for h in runs}) == 6
    assert "SGD-HD suggested (alpha_0 0.001, beta 0.001)" in {h.label for h in runs}
    assert list(hd_vs_decay.comparison_table(result)["role"]) == ["tuned"] * 6 + ["suggested"] * 3


def test_study_07_reads_the_runs_06_did_from_the_shared_cache(fake_training):
    hd_vs_decay.run_study("cpu", tasks=["cifar-cnn"], progress=False)
    done = set(fake_training)
    result = hd_vs_decay.run_sensitivity("cpu", tasks=["cifar-cnn"], seeds=3, progress=False)
    again = fake_training[len(done):]
    assert not set(again) & done
    assert len(result.summary) == len(hd_vs_decay.grid_settings("cifar-cnn", hd_vs_decay.OPTIMIZERS,
                                                               hd_vs_decay.LR_SCHEDULES, hd_vs_decay.grids_for("cpu")))
    assert set(result.summary["runs"]) == {3} and "train ±95%" in result.summary


def test_sensitivity_normalizes_each_curve_by_its_best_rate_and_marks_divergence():
    S = hd_vs_decay.Setting
    settings = [S("cifar-cnn", "sgd", "constant", lr) for lr in (0.01, 0.1, 1.0)] + \
               [S("cifar-cnn", "sgd", "hd", lr, 1e-3) for lr in (0.01, 0.1)]
    losses = {0.01: 1.0, 0.1: 0.5, 1.0: 2.0}
    runs = {s: [fake_history(s, seed, losses[s.lr] if s.schedule == "constant" else {0.01: 0.4, 0.1: 0.6}[s.lr])
                for seed in range(2)] for s in settings}
    runs[settings[2]][1] = fake_history(settings[2], 1, status="diverged")
    table = hd_vs_decay.sensitivity(settings, runs).set_index(["curve", "lr0"])
    assert table.loc[("constant", 0.1), "train lr / best lr"] == 1.0
    assert table.loc[("constant", 0.01), "train lr / best lr"] == pytest.approx(0.1)
    assert table.loc[("HD beta=0.001", 0.1), "train lr / best lr"] == pytest.approx(10.0)
    assert table.loc[("constant", 0.1), "train"] == pytest.approx(0.5005)
    assert table.loc[("constant", 0.1), "train ±95%"] == pytest.approx(12.7062 * 0.001 / math.sqrt(2) / math.sqrt(2), rel=1e-3)
    assert math.isnan(table.loc[("constant", 1.0), "train"]) and table.loc[("constant", 1.0), "diverged"] == 1


@pytest.mark.parametrize("call, message", [
    (lambda: hd_vs_decay_setting.make_optimizer("rmsprop", "hd", [torch.nn.Parameter(torch.zeros(1))], 0.1, 0.1, 1),
     "optimizer must be one of"),
    (lambda: hd_vs_decay_setting.make_optimizer("sgd", "cosine", [torch.nn.Parameter(torch.zeros(1))], 0.1, 0.1, 1),
     "schedule must be one of"),
    (lambda: hd_vs_decay.run_study("cpu", tasks=["cifar-vgg16"], progress=False),
     r"task must be one of \['cifar-cnn', 'mnist-mlp'\] at scale 'cpu'"),
    (lambda: hd_vs_decay.run_study("huge", progress=False), "scale must be one of"),
    (lambda: hd_vs_decay.run_study("cpu", schedules=["cosine"], progress=False), "schedule must be one of"),
    (lambda: hd_vs_decay.run_study("cpu", seeds=0, progress=False), "seeds must be an integer >= 1"),
    (lambda: hd_vs_decay.run_sensitivity("cpu", tasks=["imagenet"], progress=False), "task must be one of"),
])
def test_bad_study_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_settings_table_prints_the_scales_settings():
    table = hd_vs_decay.settings_table("paper", "06").set_index("setting")["value"]
    assert table["cifar-vgg16: lr-decay"] == "halve every 25 epochs"
    assert table["SGD-HD: beta"] == "1e-06 1e-05 0.0001 0.001 0.01"


# ---------------------------------------------------------------------------------------------
# Claims of study 06, on constructed results: a world where each holds, then one where it fails

TASKS_06 = ["mnist-mlp", "cifar-vgg16", "cifar-resnet18"]
TUNED = {"SGD-HD": (0.10, 0.50), "SGDN-HD": (0.09, 0.48), "Adam-HD": (0.20, 0.60), "SGD-decay": (0.05, 0.40),
         "SGDN-decay": (0.04, 0.38), "Adam-decay": (0.15, 0.55)}
SUGGESTED = {"SGD-HD": (0.50, 0.90), "SGDN-HD": (0.45, 0.85), "Adam-HD": (0.40, 0.80)}
# grid of each HD method: (alpha_0, beta) -> minimal training loss; Baydin's setting is (1e-3, 1e-3)
HD_GRID = {(0.1, 1e-4): 0.1, (0.1, 1e-3): 0.5, (1e-3, 1e-4): 0.6, (1e-3, 1e-3): 0.9}


def world_06(change=None):
    rows = []
    for task in TASKS_06:
        for role, table in (("tuned", TUNED), ("suggested", SUGGESTED)):
            for method, (train, test) in table.items():
                name, schedule = method.split("-")
                alpha, beta = ((0.1, 1e-4) if role == "tuned" else (1e-3, 1e-3)) if schedule == "HD" else (0.1, math.nan)
                rows.append({"task": task, "method": method, "role": role, "optimizer": name.lower(),
                             "schedule": schedule.lower(), "alpha_0": alpha, "beta": beta, "train": train,
                             "train ±95%": 0.01, "test": test, "test ±95%": 0.01, "best train": train,
                             "best train ±95%": 0.01})
    summary = pd.DataFrame(rows)
    # on MNIST the tuned Adam-HD is Baydin et al.'s setting, as in the paper (so the same runs)
    adam = (summary["task"] == "mnist-mlp") & (summary["method"] == "Adam-HD")
    summary.loc[adam, ["alpha_0", "beta", "train", "test"]] = [1e-3, 1e-3, *TUNED["Adam-HD"]]
    tuning = pd.DataFrame([{"task": task, "method": m, "alpha_0": a, "beta": b, "best train": v}
                           for task in TASKS_06 for m in ("SGD-HD", "SGDN-HD", "Adam-HD") for (a, b), v in HD_GRID.items()])
    if change:
        change(summary, tuning)
    return SimpleNamespace(summary=summary, tuning=tuning)


def set_06(task, method, role, column, value):
    def change(summary, tuning):
        rows = (summary["method"] == method) & (summary["role"] == role)
        if task:
            rows &= summary["task"] == task
        summary.loc[rows, column] = value
    return change


def suggested_as_tuned(summary, tuning):
    for method, (train, test) in TUNED.items():
        summary.loc[(summary["method"] == method) & (summary["role"] == "suggested"), ["train", "test"]] = [train, test]


def beta_needs_no_tuning(summary, tuning):
    tuning.loc[(tuning["alpha_0"] == 0.1) & (tuning["beta"] == 1e-3), "best train"] = 0.1
    tuning.loc[(tuning["alpha_0"] == 0.1) & (tuning["beta"] == 1e-4), "best train"] = 0.5


FAILS_06 = {
    "hd-tuning-beats-suggested": suggested_as_tuned,
    "hd-needs-alpha0-and-beta": beta_needs_no_tuning,
    "adam-hd-tuned-is-baydins": set_06("mnist-mlp", "Adam-HD", "tuned", "alpha_0", 0.1),
    "sgd-hd-beats-adam-hd": set_06(None, "Adam-HD", "tuned", "train", 0.01),
    "adam-hd-generalizes-worst": set_06("cifar-vgg16", "Adam-HD", "tuned", "test", 0.3),
    "hd-not-better-than-decay": set_06("mnist-mlp", "SGD-HD", "tuned", "train", 0.01),
    "decay-generalizes-better-than-hd": lambda summary, tuning: summary.__setitem__(
        "test", summary["test"].where(summary["schedule"] != "decay", 1.0)),
    "sgd-decay-generalizes-better-than-adam-decay": set_06("cifar-vgg16", "Adam-decay", "tuned", "test", 0.3),
    "decay-trains-best-on-cifar": set_06("cifar-resnet18", "Adam-HD", "tuned", "train", 0.01),
}


def verdicts(notebook, result, scale="paper"):
    return claims.evaluate(notebook, result, scale).set_index("claim")


def test_every_claim_of_06_and_07_has_a_failing_case_here():
    declared = {c.id for c in hd_vs_decay.CLAIMS}
    assert declared == set(FAILS_06) | set(FAILS_07)
    assert {c.notebook for c in hd_vs_decay.CLAIMS} == {"06_hd_vs_decay", "07_lr_sensitivity"}


@pytest.mark.parametrize("claim", sorted(FAILS_06))
def test_claims_of_06_hold_on_a_result_where_the_paper_is_right(claim):
    row = verdicts("06_hd_vs_decay", world_06()).loc[claim]
    assert row["verdict"] == claims.HOLDS, row["we measured"]


@pytest.mark.parametrize("claim", sorted(FAILS_06))
def test_claims_of_06_fail_on_a_result_where_the_paper_is_wrong(claim):
    row = verdicts("06_hd_vs_decay", world_06(FAILS_06[claim])).loc[claim]
    assert row["verdict"] == claims.FAILS, row["we measured"]


def test_a_diverged_configuration_counts_as_worst():
    result = world_06(set_06(None, "Adam-HD", "tuned", "test", math.nan))
    assert verdicts("06_hd_vs_decay", result).loc["adam-hd-generalizes-worst", "verdict"] == claims.HOLDS


def test_claims_of_06_are_untestable_without_what_they_need():
    result = world_06()
    result.summary = result.summary[result.summary["task"] == "mnist-mlp"]
    table = verdicts("06_hd_vs_decay", result)
    assert table.loc["decay-trains-best-on-cifar", "verdict"] == claims.UNTESTABLE
    assert table.loc["sgd-decay-generalizes-better-than-adam-decay", "verdict"] == claims.UNTESTABLE
    assert verdicts("06_hd_vs_decay", world_06(), "smoke")["verdict"].eq(claims.UNTESTABLE).all()


# ---------------------------------------------------------------------------------------------
# Claims of study 07

LRS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
NAN = math.nan
CURVES = {
    ("cifar-vgg16", "SGD", "constant"): [1.0, 0.6, 0.3, 1.5, NAN],
    ("cifar-vgg16", "SGDN", "constant"): [1.0, 0.6, 0.25, 1.5, NAN],
    ("cifar-vgg16", "Adam", "constant"): [1.0, 0.9, 0.2, 0.9, 1.0],
    ("cifar-vgg16", "SGD", "lr-decay"): [0.9, 0.5, 0.25, 0.2, NAN],
    ("cifar-vgg16", "SGDN", "lr-decay"): [0.9, 0.5, 0.22, 0.18, NAN],
    ("cifar-vgg16", "Adam", "lr-decay"): [0.9, 0.45, 0.3, 0.15, 0.3],
    ("cifar-vgg16", "SGD", "HD beta=0.0001"): [0.9, 0.8, 0.32, 0.34, 0.8],
    ("cifar-vgg16", "SGD", "HD beta=0.001"): [0.9, 0.9, 0.57, 0.59, 1.2],
    ("cifar-vgg16", "SGDN", "HD beta=0.0001"): [0.35, 0.33, 0.32, 0.34, 0.36],
    ("cifar-vgg16", "SGDN", "HD beta=0.001"): [0.6, 0.58, 0.57, 0.59, 0.6],
    ("cifar-vgg16", "Adam", "HD beta=0.0001"): [0.9, 0.8, 0.32, 0.34, 0.8],
    ("cifar-vgg16", "Adam", "HD beta=0.001"): [0.9, 0.9, 0.57, 0.59, 1.2],
    ("cifar-resnet18", "SGD", "constant"): [0.5, 0.35, 0.3, 0.4, NAN],
    ("cifar-resnet18", "SGDN", "constant"): [0.5, 0.35, 0.3, 0.4, NAN],
    ("cifar-resnet18", "Adam", "constant"): [0.9, 0.5, 0.2, 0.5, 0.9],
    ("cifar-resnet18", "SGD", "lr-decay"): [0.5, 0.4, 0.3, 0.25, NAN],
    ("cifar-resnet18", "SGDN", "lr-decay"): [0.5, 0.4, 0.3, 0.25, NAN],
    ("cifar-resnet18", "Adam", "lr-decay"): [0.5, 0.25, 0.2, 0.18, 0.25],
}


def world_07(changes=None, tasks=("cifar-vgg16", "cifar-resnet18")):
    curves = {**CURVES, **(changes or {})}
    rows = [{"task": task, "optimizer": o, "curve": c, "lr0": lr, "train": v, "train ±95%": 0.01}
            for (task, o, c), values in curves.items() if task in tasks for lr, v in zip(LRS, values)]
    return SimpleNamespace(summary=pd.DataFrame(rows))


V = "cifar-vgg16"
FAILS_07 = {
    "sgd-worse-above-best-lr": {(V, "SGD", "constant"): [1.0, 0.6, 0.3, 0.35, NAN]},
    "adam-more-symmetric": {(V, "Adam", "constant"): [1.0, 0.5, 0.2, NAN, NAN]},
    "resnet-wider-valley": {("cifar-resnet18", "SGD", "constant"): CURVES[(V, "SGD", "constant")]},
    "adam-as-hard-to-tune-as-sgd": {(V, "Adam", "constant"): [0.3, 0.25, 0.2, 0.25, 0.3]},
    "decay-raises-best-lr": {(V, "SGD", "lr-decay"): [0.9, 0.5, 0.25, 0.9, NAN]},
    "decay-improves-sgd": {(V, "SGD", "lr-decay"): [0.9, 0.5, 0.4, 0.35, NAN]},
    "decay-steeper-right-of-best": {(V, "SGD", "lr-decay"): [0.9, 0.5, 0.25, 0.2, 0.3]},
    "decay-eases-adam": {(V, "Adam", "lr-decay"): [0.9, 0.45, 0.3, 0.15, 2.0]},
    "decay-harmless-at-small-lr": {(V, "SGD", "lr-decay"): [2.0, 0.5, 0.25, 0.2, NAN]},
    "resnet-decay-flattens-adam": {("cifar-resnet18", "Adam", "lr-decay"): [0.9, 0.5, 0.3, 0.18, 0.5]},
    "hd-robust-to-alpha0": {(V, "SGDN", "HD beta=0.001"): [2.0, 2.0, 0.57, 2.0, 2.0]},
    "hd-needs-beta-tuned": {(V, "SGD", "HD beta=0.001"): CURVES[(V, "SGD", "HD beta=0.0001")]},
    "sgdn-hd-least-sensitive": {(V, "SGD", c): CURVES[(V, "SGDN", c)] for c in ("HD beta=0.0001", "HD beta=0.001")},
}


@pytest.mark.parametrize("claim", sorted(FAILS_07))
def test_claims_of_07_hold_on_a_result_where_the_paper_is_right(claim):
    row = verdicts("07_lr_sensitivity", world_07()).loc[claim]
    assert row["verdict"] == claims.HOLDS, row["we measured"]


@pytest.mark.parametrize("claim", sorted(FAILS_07))
def test_claims_of_07_fail_on_a_result_where_the_paper_is_wrong(claim):
    row = verdicts("07_lr_sensitivity", world_07(FAILS_07[claim])).loc[claim]
    assert row["verdict"] == claims.FAILS, row["we measured"]


def test_claims_of_07_at_cpu_scale_read_the_vgg_stand_in_and_leave_resnet_untestable():
    stand_in = {("cifar-cnn", o, c): v for (t, o, c), v in CURVES.items() if t == V}
    result = world_07(stand_in, tasks=("cifar-cnn",))
    table = verdicts("07_lr_sensitivity", result, "cpu")
    assert table.loc["resnet-wider-valley", "verdict"] == claims.UNTESTABLE
    assert table.loc["resnet-decay-flattens-adam", "verdict"] == claims.UNTESTABLE
    assert table.loc["decay-improves-sgd", "verdict"] == claims.HOLDS
    assert table.loc["decay-improves-sgd", "we measured"].startswith("cifar-cnn:")


def test_curve_shape_reads_valley_width_and_rises():
    shape = hd_vs_decay_claims_rules.shape(LRS, [1.0, 0.6, 0.3, 1.5, NAN])
    limit = 0.3 + 0.1 * (math.log(10) - 0.3)  # the valley's ends, by straight lines in log alpha_0
    assert shape.best_lr == 1e-2 and shape.best == 0.3
    assert shape.width == pytest.approx((limit - 0.3) / 0.3 + (limit - 0.3) / 1.2)
    assert shape.rise_left == pytest.approx(0.3) and shape.rise_right == pytest.approx(1.2)
    assert shape.asymmetry == pytest.approx(0.8)
    flat = hd_vs_decay_claims_rules.shape(LRS, [0.35, 0.33, 0.32, 0.34, NAN])
    assert flat.width == pytest.approx(3.0) and math.isinf(flat.rise_right) is False
    edge = hd_vs_decay_claims_rules.shape(LRS, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert math.isnan(edge.rise_left) and math.isnan(edge.asymmetry)
    assert not hd_vs_decay_claims_rules.wider(0.2320, 0.2319) and not hd_vs_decay_claims_rules.wider(0.0, 0.0) and hd_vs_decay_claims_rules.wider(0.5, 0.2)


PARTIAL_ONLY = pytest.mark.skipif(
    not (data_root() / "cifar10_partial").is_dir() or (data_root() / "cifar-10-batches-py").is_dir(),
    reason="needs the partial CIFAR-10 copy (and not the full set) in data/")


@PARTIAL_ONLY
@pytest.mark.parametrize("run", [hd_vs_decay.run_study, hd_vs_decay.run_sensitivity])
def test_paper_scale_refuses_the_partial_cifar10_copy_before_training(run):
    with pytest.raises(DataNotFoundError, match=r"needs the full CIFAR-10 .* cifar-10-python\.tar\.gz"):
        run("paper", progress=False, cache=False)


@PARTIAL_ONLY
def test_cpu_scale_says_it_trains_on_the_partial_copy(monkeypatch):
    monkeypatch.setattr(hd_vs_decay, "_group", lambda trainer, settings, seeds, desc: {s: [] for s in settings})
    monkeypatch.setattr(hd_vs_decay, "tuning_table", lambda grid, runs: None)
    monkeypatch.setattr(hd_vs_decay, "chosen_settings", lambda tuning: [])
    monkeypatch.setattr(hd_vs_decay, "compare", lambda final, runs: pd.DataFrame())
    result = hd_vs_decay.run_study("cpu", tasks=["cifar-cnn"], schedules=["decay"], progress=False, cache=False)
    assert result.parameters["cifar10"] == "partial"
