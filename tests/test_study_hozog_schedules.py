"""Study 04 (learning-rate schedules): the paper's setting, the budgets, and the claims' checks."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch import nn

from hpolab import claims
from hpolab.data import data_root
from hpolab.history import History
from hpolab.studies import hozog_schedules as study
from hpolab.studies import hozog_schedules_claims
from hpolab.studies import hozog_schedules_setting

needs_cifar = pytest.mark.skipif(not any((data_root() / name).exists()
                                         for name in ("cifar10_partial", "cifar-10-batches-py")),
                                 reason="CIFAR-10 not in data/: copy ../shared/data into data/, see data/README.md")


def test_paper_scale_reads_table_2_and_section_3_2():
    assert hozog_schedules_setting.network_settings("cnn", "paper") == study.Network(100, 1, 1.0, 1.0)
    assert hozog_schedules_setting.network_settings("vgg16", "paper") == study.Network(20, 3, 1.0, 1.0)
    assert hozog_schedules_setting.network_settings("resnet152", "paper") == study.Network(10, 3, 1.0, 1.0)
    paper = study.SCHEDULE_SCALES["paper"]
    assert (paper.batch, paper.meta_iterations, paper.cnn_width, paper.epochs) == (256, 50, 64, None)
    assert paper.n_train + paper.n_val == 50_000
    assert study.SCHEDULE_SCALES["cpu"].batch == 256


def test_cpu_scale_keeps_the_papers_perturbation_of_each_learning_rate():
    cpu, paper = hozog_schedules_setting.network_settings("cnn", "cpu"), hozog_schedules_setting.network_settings("cnn", "paper")
    assert cpu.epochs == 5 and (cpu.q, cpu.gamma) == (paper.q, paper.gamma)
    assert cpu.mu / math.sqrt(cpu.epochs) == pytest.approx(paper.mu / math.sqrt(paper.epochs))


def test_networks_are_the_papers():
    cnn = hozog_schedules_setting.build_network("cnn", "paper")
    assert sum(isinstance(layer, nn.LocalResponseNorm) for layer in cnn) == 2
    assert sum(isinstance(layer, nn.Conv2d) for layer in cnn) == 2 and cnn[0].out_channels == 64
    assert hozog_schedules_setting.build_network("cnn", "cpu")[0].out_channels == 8
    with pytest.raises(ValueError, match="network must be one of"):
        hozog_schedules_setting.build_network("alexnet", "cpu")


@needs_cifar
def test_setting_is_sgd_batch_256_one_rate_per_epoch_re_initialized_from_each_seed():
    task, hyper, test = study.schedule_setting("cpu")
    steps_per_epoch = 1024 // 256
    assert hyper.horizon == 5 * steps_per_epoch and hyper.windows["lr"] == steps_per_epoch
    assert hyper.values["lr"].tolist() == pytest.approx([study.INITIAL_LR] * 5) and hyper.learn == ("lr",)
    assert float(hyper.values["momentum"].abs().max()) == 0 and float(hyper.values["weight_decay"].abs().max()) == 0
    assert len(task.batches(0, hyper.horizon)[0]) == 256
    assert not torch.equal(task.init(0), task.init(1))  # each meta-iteration's seed draws new weights
    assert len(test[1]) == 1017


def test_paper_scale_on_the_partial_cifar_copy_says_what_is_missing():
    if (data_root() / "cifar-10-batches-py").exists():
        pytest.skip("the full CIFAR-10 is here")
    with pytest.raises(FileNotFoundError, match="45000 training \\+ 5000 validation images needs the full CIFAR-10"):
        study.cifar_split(45_000, 5_000, 10_000)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "scale must be one of"),
    ({"networks": ["alexnet"]}, "network must be one of"),
    ({"methods": ["hozog", "hyperband"]}, "method must be one of"),
    ({"meta_iterations": 0}, "meta_iterations must be an integer >= 1"),
    ({"methods": ["random-search"]}, "seconds must be given"),
    ({"seconds": -1.0}, "seconds must be a finite number > 0"),
])
def test_bad_study_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        study.run_study(progress=False, **{"scale": "smoke", **kwargs})


@needs_cifar
def test_smoke_study_gives_the_baselines_hozogs_training_steps_and_eq_3_gradients():
    res = study.run_study("smoke", progress=False)
    assert res.summary["method"].tolist() == ["HOZOG", "RS", "GP-BO", "BOHB-like"]
    hozog = res.histories[0]
    assert len(hozog.frame) - 1 == study.SCHEDULE_SCALES["smoke"].meta_iterations
    budget = int(hozog.frame["iteration"].iloc[-1])
    for history in res.histories[1:]:
        assert history.config["budget_steps"] == budget
        assert budget <= int(history.frame["iteration"].iloc[-1]) < budget + 100
        assert history.frame["hypergradient_norm2"].notna().sum() == study.SCHEDULE_SCALES["smoke"].gradient_points
    assert hozog.frame["hypergradient_norm2"].iloc[1:].notna().all()
    table = claims.evaluate("04_hozog_dnn_lr", res, "smoke")
    assert len(table) == len(study.CLAIMS) and (table["verdict"] == claims.UNTESTABLE).all()


# ---------------------------------------------------------------------------------------------
# The claims, on constructed results


def fake(method, objective, wall, network="cnn", test_error=0.5, norms=None):
    frame = pd.DataFrame({"objective": objective, "best_objective": pd.Series(objective).cummin(),
                          "wall_time": wall, "test_error": test_error})
    frame["hypergradient_norm2"] = norms if norms is not None else math.nan
    history = History(frame, method, study.LABELS[method], network, 0, config={"method": method})
    return history


def result(histories, scale="cpu"):
    from hpolab.studies.hozog import with_suboptimality

    with_suboptimality(histories)
    return SimpleNamespace(histories=histories, parameters={"scale": scale})


def papers_picture(network="cnn", slow=1.0):
    """HOZOG ahead early and at the end, with lower test error and steadier gradients; the
    baselines' second best (GP-BO) comes within 0.05 of the best at ``slow`` s."""
    return [fake("hozog", [2.3, 1.22, 1.2], [0, 0.8, 2], network, [0.6, 0.45, 0.40], [math.nan, 1.0, 1.1]),
            fake("random-search", [2.3, 1.9, 1.6, 1.4], [0, 0.5, 1.5, 2], network, [0.6, 0.5, 0.48, 0.47],
                 [math.nan, 0.1, 10.0, 1.0]),
            fake("bayesian", [2.3, 1.8, 1.24, 1.24], [0, 0.5, slow, 2], network, [0.6, 0.5, 0.46, 0.45],
                 [math.nan, 0.01, 1.0, 5.0]),
            fake("bohb", [2.3, 1.7, 1.6], [0, 1.0, 2], network, [0.6, 0.5, 0.44], [math.nan, 100.0, 0.5])]


def verdicts(res):
    return {claim.id: claim.evaluate(res, "paper").status for claim in study.CLAIMS}


def test_claims_hold_on_a_result_shaped_like_the_papers():
    res = result(papers_picture("cnn") + papers_picture("vgg16", slow=1.5) + papers_picture("resnet152", slow=1.5))
    assert set(verdicts(res).values()) == {claims.HOLDS}


def test_claims_fail_when_the_baselines_win():
    runs = papers_picture("cnn")
    runs[0] = fake("hozog", [2.3, 2.0, 1.9], [0, 1.5, 2], "cnn", [0.6, 0.55, 0.5], [math.nan, 0.01, 100.0])
    found = verdicts(result(runs))
    assert found.pop("schedules-deep-networks-slow-the-baselines") == claims.UNTESTABLE
    assert set(found.values()) == {claims.FAILS}


def test_deep_network_claim_fails_when_the_baselines_are_as_quick_there():
    res = result(papers_picture("cnn", slow=1.5) + papers_picture("vgg16") + papers_picture("resnet152"))
    assert hozog_schedules_claims.check_deep_networks_slow_the_baselines(res).status == claims.FAILS


def test_time_claims_show_no_wall_times_at_smoke_scale():
    res = result(papers_picture("cnn"), scale="smoke")
    assert hozog_schedules_claims.check_less_time_to_best(res).measured == "wall times vary from run to run; not shown at smoke scale"
    assert hozog_schedules_claims.check_beats_bohb(res).status == claims.HOLDS  # budgets in steps there: comparable
