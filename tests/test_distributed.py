"""HOZOG's q + 1 trainings and black-box trials as jobs on a real local Dask cluster (two worker
processes on loopback): the same numbers as on one machine, in fewer rounds."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from hpolab.hypergrad import box, schedule, zeroth_order
from hpolab.methods.blackbox import make_blackbox
from hpolab.problems.tuning import tuning_problem
from hpolab.runner import run
from tasks import small_classification_task

distributed = pytest.importorskip("distributed")
from hpolab.distributed import cluster  # noqa: E402


@pytest.fixture(scope="module")
def executor():
    with cluster(workers=2) as pool:
        yield pool


def setting():
    task = small_classification_task()
    hyper = schedule(20, lr=0.1, momentum=0.5, windows={"lr": 10}, learn=("lr", "momentum"), dtype=torch.float32)
    return task, hyper, box(hyper, {"lr": (0.0, 0.5), "momentum": (0.0, 0.95)})


def test_jobs_run_in_two_worker_processes(executor):
    pids = {future.result() for future in [executor.submit(os.getpid) for _ in range(8)]}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_hozog_on_the_cluster_equals_hozog_on_one_device(executor):
    task, hyper, limits = setting()
    here = zeroth_order(q=3, mu=0.05, limits=limits)(task, hyper, seed=4)
    there = zeroth_order(q=3, mu=0.05, limits=limits, executor=executor)(task, hyper, seed=4)
    torch.testing.assert_close(there.grad, here.grad, rtol=0, atol=0)
    assert there.loss == here.loss
    assert there.cost.gradient_evaluations == here.cost.gradient_evaluations == 4 * 20


def test_parallel_random_search_on_the_cluster_equals_its_trials_one_by_one(executor):
    task, hyper, limits = setting()
    problem = tuning_problem(task, hyper)

    def search(pool):
        method = make_blackbox("random-search", task, hyper, limits, executor=pool, parallel=3)
        return run(method, problem, 3 * 3 * 20 + 1, seed=1)

    on_cluster = search(executor)
    with ThreadPoolExecutor(1) as one_by_one:  # (threads of one process share torch's pool: not bit-stable)
        in_turn = search(one_by_one)
    frame = on_cluster.frame
    assert list(frame["kind"].iloc[1:]) == ["trial batch"] * 3 and list(frame["trials_in_step"].iloc[1:]) == [3] * 3
    assert frame["gradient_evaluations"].iloc[-1] == 9 * 20
    assert frame["objective"].tolist() == in_turn.frame["objective"].tolist()
    assert frame["best_objective"].iloc[-1] <= frame["objective"].iloc[1]


def test_parallel_trials_refuse_a_pruner():
    task, hyper, limits = setting()
    with pytest.raises(ValueError, match="pruner"):
        make_blackbox("hyperband", task, hyper, limits, executor=ThreadPoolExecutor(1), parallel=2)


def test_an_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        with cluster("tcp://127.0.0.1:9", timeout=2):
            pass


def test_hozog_replicas_start_on_the_device_asked_for(monkeypatch):
    """With several GPUs, device="cuda:1" puts cuda:1's replica first: the estimate and the
    final weights come back there, not on cuda:0 (nothing else would know to move them)."""
    from hpolab.studies.hozog import device_replicas

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert device_replicas(lambda d: d, torch.device("cuda", 1)) == [torch.device("cuda", i) for i in (1, 0, 2)]
    assert device_replicas(lambda d: d, torch.device("cuda")) == [torch.device("cuda", i) for i in (2, 0, 1)]
    assert device_replicas(lambda d: d, torch.device("cpu")) is None
