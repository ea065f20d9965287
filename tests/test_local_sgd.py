"""Local SGD: batched workers against a loop over workers, H = 1 against large-batch SGD,
minibatch streams, schedules, the history, the study's tables, bad input."""

import copy
import inspect
import math

import pandas as pd
import pytest
import torch
from torch import nn

from hpolab import claims
from hpolab.data import DataNotFoundError
from hpolab.history import History
from hpolab.methods.local_sgd import (BatchStreams, average, classification_loss, evaluation_steps, growing,
                              iid_shards, make_local_step, make_schedule, plateau, run_local_sgd, stack_weights)
from hpolab.studies import local_sgd as study
from hpolab.studies import local_sgd_claims as study_claims
from hpolab.studies import local_sgd_figures
from hpolab.methods.local_sgd_schedules import constant


def toy(n=240, d=6, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = (x[:, :classes].argmax(1) if classes > 1 else (x[:, 0] > 0)).long()
    return x, y


def mlp(d=6, classes=3, seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 5), nn.Tanh(), nn.Linear(5, classes)).double()


def loop_over_workers(model, x, y, workers, periods, lr, batch_size, seed, weight_decay=0.0, large_batch=False):
    """The reference: one model per worker stepped by torch.optim.SGD in a Python loop (or,
    with ``large_batch``, one model stepped on the workers' minibatches put together),
    averaged after each round; the same shards and minibatch streams as run_local_sgd."""
    shards = iid_shards(x, y, workers, seed)
    streams = BatchStreams(shards.size, workers, batch_size, seed)
    replicas = [copy.deepcopy(model) for _ in range(1 if large_batch else workers)]
    optimizers = [torch.optim.SGD(m.parameters(), lr=lr, weight_decay=weight_decay) for m in replicas]
    for h in periods:
        for _ in range(h):
            index = streams.next()
            if large_batch:
                rows = torch.arange(workers)[:, None]
                batches = [(shards.x[rows, index].flatten(0, 1), shards.y[rows, index].flatten())]
            else:
                batches = [(shards.x[p, index[p]], shards.y[p, index[p]]) for p in range(workers)]
            for replica, optimizer, (xb, yb) in zip(replicas, optimizers, batches):
                optimizer.zero_grad()
                classification_loss(replica(xb), yb).backward()
                optimizer.step()
        with torch.no_grad():
            for name, _ in model.named_parameters():
                mean = torch.stack([dict(r.named_parameters())[name] for r in replicas]).mean(0)
                for r in replicas:
                    dict(r.named_parameters())[name].copy_(mean)
    return {name: p.detach() for name, p in replicas[0].named_parameters()}


def test_vmapped_workers_equal_a_python_loop_over_workers():
    x, y = toy()
    model = mlp()
    history = run_local_sgd(copy.deepcopy(model), (x, y), workers=3, period=4, steps=10, lr=0.3, batch_size=7,
                            seed=5, weight_decay=1e-2)
    reference = loop_over_workers(model, x, y, 3, [4, 4, 2], 0.3, 7, 5, weight_decay=1e-2)
    for name, value in reference.items():
        torch.testing.assert_close(history.weights[name], value, rtol=1e-12, atol=1e-13)
    assert list(history.frame["round"]) == [0, 1, 2, 3] and list(history.frame["H"]) == [0, 4, 4, 2]


def test_one_batched_step_equals_each_worker_stepping_alone():
    x, y = toy()
    model = mlp()
    weights = stack_weights(model, 4)
    weights = {k: w + 0.01 * torch.randn_like(w) for k, w in weights.items()}  # workers apart
    index = torch.arange(24).reshape(4, 6)
    stepped, losses = make_local_step(model, weight_decay=0.1)(weights, x[index], y[index], 0.5)
    for p in range(4):
        single = {k: w[p].clone().requires_grad_() for k, w in weights.items()}
        value = classification_loss(torch.func.functional_call(model, single, (x[index[p]],)), y[index[p]])
        value = value + 0.05 * sum((w * w).sum() for w in single.values())
        grads = torch.autograd.grad(value, list(single.values()))
        torch.testing.assert_close(losses[p], value.detach(), rtol=1e-13, atol=0)
        for (name, w), g in zip(single.items(), grads):
            torch.testing.assert_close(stepped[name][p], w.detach() - 0.5 * g, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("classes", [1, 3])
def test_h1_with_p_workers_equals_large_batch_sgd_with_batch_p_times_b(classes):
    x, y = toy(classes=classes)
    model = mlp(classes=classes)
    history = run_local_sgd(copy.deepcopy(model), (x, y), workers=4, period=1, steps=12, lr=0.2, batch_size=5,
                            seed=2)
    reference = loop_over_workers(model, x, y, 4, [1] * 12, 0.2, 5, 2, large_batch=True)
    for name, value in reference.items():
        torch.testing.assert_close(history.weights[name], value, rtol=1e-12, atol=1e-13)
    assert history.config["rounds"] == 12


def test_averaging_gives_every_worker_the_mean():
    weights = {"w": torch.arange(6.0).reshape(3, 2)}
    assert torch.equal(average(weights)["w"], torch.tensor([[2.0, 3.0]] * 3))


def test_history_counts_steps_rounds_gradients_and_examples():
    x, y = toy()
    history = run_local_sgd(mlp(), (x, y), workers=4, period=16, steps=100, lr=0.1, batch_size=3, seed=0,
                            test=toy(60, seed=9), evaluations=10, optimum=0.0)
    frame = history.frame
    assert frame["step"].iloc[-1] == 100 and frame["round"].iloc[-1] == 7  # 6 rounds of 16, one of 4
    assert frame["H"].iloc[-1] == 4
    assert (frame["gradient_evaluations"] == 4 * frame["step"]).all()
    assert (frame["examples"] == 4 * 3 * frame["step"]).all()
    assert (frame["step"] % 16 == 0).iloc[1:-1].all()  # measured right after an average
    assert {"objective", "local_loss", "test_loss", "test_accuracy", "suboptimality", "train_accuracy"} <= set(frame)
    assert (frame["suboptimality"] == frame["objective"]).all()
    assert frame["objective"].iloc[-1] < frame["objective"].iloc[0]
    assert history.status == "finished" and isinstance(history, History)


def test_minibatch_streams_are_seeded_per_worker_and_cover_each_shard_every_epoch():
    first, again = BatchStreams(10, 3, 5, seed=4), BatchStreams(10, 3, 5, seed=4)
    draws = [first.next() for _ in range(4)]
    assert all(torch.equal(a, again.next()) for a in draws)
    epoch = torch.cat(draws[:2], dim=1)
    assert all(sorted(row.tolist()) == list(range(10)) for row in epoch)
    assert not torch.equal(epoch[0], epoch[1])  # each worker its own order
    assert not torch.equal(torch.cat(draws[2:], dim=1), epoch)  # a new shuffle each epoch


def test_iid_shards_partition_a_permutation_of_the_examples():
    x, y = toy(23)
    shards = iid_shards(x, y, 4, seed=0)
    assert shards.x.shape == (4, 5, 6) and shards.y.shape == (4, 5)
    rows = {tuple(r.tolist()) for r in shards.x.reshape(-1, 6)}
    assert len(rows) == 20 and rows <= {tuple(r.tolist()) for r in x}


def test_same_seed_gives_identical_runs():
    x, y = toy()
    runs = [run_local_sgd(mlp(), (x, y), workers=2, period="growing", steps=30, lr=0.1, batch_size=4, seed=1)
            for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].frame.drop(columns="wall_time"), runs[1].frame.drop(columns="wall_time"))


def test_constant_and_growing_schedules():
    assert constant(8)([]) == 8 and constant(8)([(8, 1.0)] * 5) == 8
    schedule = growing(start=1, every=2, maximum=3)
    assert [schedule([(1, 0.0)] * r) for r in range(7)] == [1, 1, 2, 2, 3, 3, 3]
    assert growing()([(1, 0.0)] * 9) == 10


def test_plateau_doubles_the_period_when_the_loss_stalls():
    rule = plateau(start=1, factor=2, window=4, threshold=0.01, maximum=8)
    falling = [(1, 1.0 - 0.1 * i) for i in range(8)]
    assert rule([]) == 1 and rule(falling) == 1
    assert rule(falling[:7]) == 1  # fewer than 2 windows of steps: no decision yet
    flat = [(1, 0.5)] * 8
    assert rule(flat) == 2
    assert rule(flat + [(2, 0.5)] * 3) == 2  # 6 steps at H = 2 since the change: wait
    assert rule(flat + [(2, 0.5)] * 4) == 4
    assert rule([(8, 0.5)] * 10) == 8  # capped


def test_make_schedule_reads_ints_names_and_settings():
    assert make_schedule(4) == constant(4)
    assert make_schedule("growing:every=3,maximum=32") == growing(1, 3, 32)
    assert make_schedule("plateau:window=50,threshold=0.05") == plateau(window=50, threshold=0.05)
    assert make_schedule(plateau()) == plateau()


def test_evaluation_steps_mix_linear_and_log_points_and_end_at_the_last_step():
    marks = evaluation_steps(1000, 10)
    assert marks[0] == 0 and marks[-1] == 1000
    assert {1, 100, 500} <= set(marks.tolist())


@pytest.mark.parametrize("call, message", [
    (lambda: make_schedule(0), "period must be an integer >= 1"),
    (lambda: make_schedule("cyclic"), "schedule must be an int H >= 1 or one of"),
    (lambda: make_schedule(True), "schedule must be an int H >= 1"),
    (lambda: plateau(threshold=0.0), "threshold must be a finite number > 0"),
    (lambda: growing(start=4, maximum=2), "maximum must be an integer >= 4"),
    (lambda: iid_shards(*toy(5), workers=8, seed=0), r"workers must be at most the number of examples \(5\)"),
    (lambda: BatchStreams(4, 2, 5, 0), r"batch_size must be at most the shard size \(4\)"),
    (lambda: run_local_sgd(mlp(), toy(), workers=2, period=1, steps=3, lr=-1.0, batch_size=2), "lr must be"),
    (lambda: study.run_study("huge", progress=False), "scale must be one of"),
    (lambda: study.run_study("cpu", tasks=["imagenet"], progress=False), "task must be one of"),
    (lambda: study.run_study("smoke", schedules=["cosine"], progress=False), "schedule must be one of"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_diverging_run_stops_and_keeps_its_rows():
    x, y = toy()
    x = x * 1e3
    history = run_local_sgd(mlp(), (x, y), workers=2, period=2, steps=200, lr=1e4, batch_size=8, seed=0,
                            evaluations=200, divergence_factor=10.0)
    assert history.status == "diverged" and "diverged at step" in history.message
    assert history.frame["step"].iloc[-1] < 200


def fake(task, label, steps, values, seed=0):
    rounds = [s if label == "H=1" else s // 8 for s in steps]
    frame = pd.DataFrame({"step": steps, "round": rounds, "gradient_evaluations": [4 * s for s in steps],
                          "objective": values, "suboptimality": values, "test_accuracy": 0.8})
    return History(frame, "local-sgd", label, task, seed)


def test_summary_targets_and_reach():
    steps = list(range(0, 101, 10))
    runs = [fake("a9a-logreg", "H=1", steps, [1.0, 0.5, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]),
            fake("a9a-logreg", "H=8", steps, [1.0, 0.6, 0.3, 0.2, 0.12, 0.13, 0.13, 0.13, 0.13, 0.13, 0.13]),
            fake("a9a-logreg", "H=64", steps, [1.0] + [0.5] * 10),
            fake("a9a-logreg", "growing", steps, [1.0, 0.6, 0.3, 0.11, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])]
    levels = study_claims.targets(runs)["a9a-logreg"]
    assert levels == {"easy": pytest.approx(0.625), "H=1": pytest.approx(0.125)}
    summary = study.summarize(runs).set_index("schedule")
    columns = ["rounds to easy", "steps to easy", "rounds to H=1 level", "steps to H=1 level"]
    assert summary.loc["H=1", columns].tolist() == [10, 10, 30, 30]
    assert summary.loc["H=8", ["rounds to easy", "rounds to H=1 level", "steps to H=1 level"]].tolist() == [1, 5, 40]
    assert math.isnan(summary.loc["H=64", "steps to H=1 level"]) and summary.loc["H=64", "reached"] == "0/1"
    assert summary.loc["H=8", "final"] == pytest.approx(0.13)


# --- the claims, on constructed results where each holds and where it fails ----------------------

T, P = 256, 16  # sqrt(T / (P b)) = 4 with b = 1


def run(label, curve, task="a9a-logreg", seed=0, steps=T, every=None):
    """A run whose f - f* at local step t is ``curve(t)``, measured after every round of a
    constant period (every ``every`` steps for a schedule) and rounds counted accordingly."""
    h = study_claims.period_of(label) if study_claims.is_constant(label) else None
    grid = list(range(0, steps + 1, h or every or 1))
    if h is None:  # a growing schedule: H_r = r + 1
        grid, t, r = [0], 0, 0
        while t < steps:
            r += 1
            t = min(steps, t + r)
            grid.append(t)
    rounds = list(range(len(grid)))
    values = [curve(t) for t in grid]
    frame = pd.DataFrame({"step": grid, "round": rounds, "gradient_evaluations": [P * t for t in grid],
                          "objective": values, "suboptimality": values, "test_accuracy": 0.8})
    return History(frame, "local-sgd", label, task, seed, {"workers": P, "batch_size": 1})


def result_of(*runs):
    return study.LocalSGDResult(list(runs), study.summarize(list(runs)), {})


def decay(scale=1.0, floor=0.0):
    return lambda t: scale / (1 + t) + floor


def verdict(claim_id, result):
    claim = next(c for c in study.CLAIMS if c.id == claim_id)
    return claim.evaluate(result, "cpu")


def test_larger_h_fewer_rounds_holds_when_the_loss_at_equal_rounds_falls_with_h():
    good = result_of(run("H=1", decay()), run("H=4", decay(1.2)), run("H=16", decay(1.5)))
    found = verdict("larger-h-fewer-rounds", good)
    assert found.status == "holds" and "after 16 rounds" in found.measured
    bad = result_of(run("H=1", decay()), run("H=4", decay(1.2)), run("H=16", lambda t: 0.5))
    assert verdict("larger-h-fewer-rounds", bad).status == "fails"
    mlp_only = result_of(run("H=1", decay(), task="mnist-mlp"), run("H=4", decay(), task="mnist-mlp"))
    assert verdict("larger-h-fewer-rounds", mlp_only).status == "not testable here"


def test_same_rate_holds_within_a_factor_two_for_h_up_to_sqrt_t_over_p_b():
    good = result_of(run("H=1", decay()), run("H=4", decay(1.5)), run("H=16", decay(10)))  # H=16 is outside
    found = verdict("same-rate-as-minibatch-sgd", good)
    assert found.status == "holds" and "sqrt(T/(P b)) = 4" in found.measured and "H=16" not in found.measured
    bad = result_of(run("H=1", decay()), run("H=4", decay(2.5)))
    assert verdict("same-rate-as-minibatch-sgd", bad).status == "fails"
    only_large = result_of(run("H=1", decay()), run("H=16", decay()))
    assert verdict("same-rate-as-minibatch-sgd", only_large).status == "not testable here"


def test_minibatch_best_per_step_allows_ten_percent_and_fails_beyond():
    good = result_of(run("H=1", decay(floor=0.1)), run("H=4", decay(floor=0.095)), run("H=16", decay(floor=0.2)))
    assert verdict("minibatch-sgd-best-per-step", good).status == "holds"
    bad = result_of(run("H=1", decay(floor=0.1)), run("H=4", decay(floor=0.08)))
    found = verdict("minibatch-sgd-best-per-step", bad)
    assert found.status == "fails" and "(lowest: H=4)" in found.measured


def test_growing_period_claims_compare_rounds_to_mini_batch_level():
    floor = decay(floor=0.1)  # H=1 ends near 0.1: level 0.125 + its tail
    growing = run(study_claims.GROWING, decay(floor=0.1))
    slow = run("H=4", decay(20, floor=0.1))  # reaches the level late or never
    result = result_of(run("H=1", floor), slow, growing)
    assert verdict("growing-period-saves-rounds", result).status == "holds"
    assert verdict("growing-period-beats-constant", result).status == "holds"
    fast = run("H=16", decay(floor=0.1))  # a constant H reaching the level in fewer rounds than growing
    found = verdict("growing-period-beats-constant", result_of(run("H=1", floor), fast, growing))
    assert found.status == "fails" and "H=16" in found.measured
    never = run(study_claims.GROWING, lambda t: 1.0)
    assert verdict("growing-period-saves-rounds", result_of(run("H=1", floor), never)).status == "fails"
    assert verdict("growing-period-saves-rounds", result_of(run("H=1", floor))).status == "not testable here"


def test_delay_affordable_late_compares_the_excess_early_and_at_the_end():
    base = decay(floor=0.01)
    shrinking = run("H=16", lambda t: base(t) * (3.0 if t < T / 2 else 1.1))
    assert verdict("delay-affordable-near-solution", result_of(run("H=1", base), shrinking)).status == "holds"
    growing_gap = run("H=16", lambda t: base(t) * (1.1 if t < T / 2 else 3.0))
    found = verdict("delay-affordable-near-solution", result_of(run("H=1", base), growing_gap))
    assert found.status == "fails" and "at step 25" in found.measured


def test_a_diverged_run_makes_a_claim_fail_not_vanish():
    diverged = run("H=4", decay(1.2))
    diverged.status = "diverged"
    result = result_of(run("H=1", decay()), diverged)
    assert verdict("same-rate-as-minibatch-sgd", result).status == "fails"
    assert verdict("larger-h-fewer-rounds", result).status == "fails"


# --- the study's setting -----------------------------------------------------------------------


def test_study_defaults_follow_the_notes_and_patel_dieuleveut():
    """Workers use batch size 1 (the notes); gamma_t = gamma_0 t^-alpha with alpha inside
    (1/2, 1) (Patel & Dieuleveut); the growing period is not capped."""
    defaults = inspect.signature(study.run_study).parameters
    assert defaults["batch_size"].default == 1
    assert 0.5 < defaults["lr_decay"].default < 1
    assert defaults["learning_rates"].default is None  # picked by the sweep on H = 1
    assert study.schedule_for("growing", [1, 4, 16, 64])([(h, 0.0) for h in range(1, 200)]) == 200


def test_runs_are_also_measured_at_the_requested_rounds():
    x, y = toy()
    history = run_local_sgd(mlp(), (x, y), workers=2, period=3, steps=60, lr=0.1, batch_size=4, seed=0,
                            evaluations=2, measure_rounds=[7, 13])
    assert {7, 13} <= set(history.frame["round"]) and len(history.frame) < 20
    assert study.round_budgets(60, [1, 4, 16]) == [4, 15, 60]


def test_curve_table_reads_runs_as_step_functions_on_a_log_grid():
    runs = [fake("mnist-mlp", "H=8", [0, 8, 16], [2.0, 1.0, 0.5]),
            fake("mnist-mlp", "H=8", [0, 8, 16], [2.0, 4.0, 0.5], seed=1)]
    table = local_sgd_figures.curve_table(runs, x="step", y="objective", points=17)
    assert table.loc[table["x"] == 8, "mean"].item() == pytest.approx(2.0)  # geometric mean of 1 and 4
    assert table.loc[table["x"] == 8, "high"].item() == 4.0
    logged = local_sgd_figures.curve_table(runs, x="round", y="objective", points=5, log_x=True)
    assert logged["x"].min() == 1.0 and logged["x"].max() == 2.0


def test_smoke_study_runs_every_configuration():
    try:
        result = study.run_study("smoke", tasks=["a9a-logreg"], periods=[1, 8], steps=24, progress=False)
    except DataNotFoundError as error:
        pytest.skip(f"needs the LIBSVM a9a files in data/libsvm: {error}")
    assert [h.label for h in result.histories] == ["H=1", "H=8", "growing H=r+1", "plateau H=1x2<=8"]
    assert (result.summary["rounds"].tolist()[:2]) == [24, 3]
    assert all((h.frame["suboptimality"] > -1e-9).all() for h in result.histories)
    sweep = result.lr_sweep
    assert list(sweep["lr"]) == list(study.LR_GRIDS["a9a-logreg"]) and sweep["chosen"].sum() == 1
    assert sweep.loc[sweep["chosen"], "final"].item() == sweep["final"].min()
    assert result.parameters["learning_rates"]["a9a-logreg"] == sweep.loc[sweep["chosen"], "lr"].item()
    assert all(3 in set(h.frame["round"]) for h in result.histories)  # H=8's budget, measured by every run
    table = claims.evaluate("13_local_sgd", result, "smoke")
    assert len(table) == len(study.CLAIMS) and (table["verdict"] == "not testable here").all()
