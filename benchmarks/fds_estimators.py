"""Forward mode against reverse mode on the FDS studies' own models (CPU, float32).

Run by hand from the repository root (about 5 minutes on 2 cores; needs MNIST and the
CIFAR-10 subset in data/)::

    .venv/bin/python benchmarks/fds_estimators.py

The FDS studies (notebooks 08 to 11) compute exact non-greedy hypergradients with
``estimator="auto"``: FDS's forward mode on accelerators, reverse mode on a CPU. Both give the
same hypergradient (tests/test_hypergrad.py, tests/test_fds.py); this script measures what
the choice costs on a CPU, for the settings the studies use:

* LeNet on MNIST, batch 64, T = 140: 7 learning rates plus a momentum and a weight decay
  (N = 9, study 11's `cpu` scale; study 09's FDS learns N = 10 rates over T = 200);
* WRN-10-1 on the CIFAR-10 subset, batch 64, T = 10, alpha over 5 windows plus beta and xi
  (N = 7, study 10).

Forward mode's cost grows with N (one Hessian-vector product per learned value and step),
reverse mode's does not; ``hpolab.studies.fds.exact_estimator`` quotes this script's numbers.

For each it prints the wall time of one hypergradient by each mode (best of two, after a
warm-up call), their ratio, the peak memory above the call's start (``Cost.peak_memory``)
and the largest relative difference between the two hypergradients; then, on LeNet, the
ratio as the number of learned values N grows (:func:`crossover`): where forward mode stops
being the cheaper one on this machine.
"""

from __future__ import annotations

import time

import torch

from hpolab.hypergrad import forward_mode, reverse_mode, schedule
from hpolab.studies.fds import image_data, image_task


def timed(estimator, task, hyper, repeats: int = 2):
    estimator(task, hyper, 0)  # warm-up: lazy initialization is not counted
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = estimator(task, hyper, 0)
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(name: str, task, hyper) -> None:
    forward_time, forward = timed(forward_mode(), task, hyper)
    reverse_time, reverse = timed(reverse_mode(), task, hyper)
    difference = float(((forward.grad - reverse.grad).abs() / reverse.grad.abs().clamp_min(1e-12)).max())
    print(f"{name}: forward {forward_time:.2f} s ({forward.cost.peak_memory / 2**20:.0f} MB), "
          f"reverse {reverse_time:.2f} s ({reverse.cost.peak_memory / 2**20:.0f} MB); "
          f"forward / reverse = {forward_time / reverse_time:.2f}x; largest relative difference {difference:.1e}")


def crossover(task, horizon: int = 40, counts=(1, 2, 3, 5, 9)) -> None:
    """Forward / reverse time as the number N of learned values grows (N learning rates over
    equal windows, LeNet, T = ``horizon``): forward mode pays one Hessian-vector product per
    learned value and step, reverse mode one backward pass through the run whatever N is, so
    the ratio grows with N; where it crosses 1 is where forward mode stops being the cheaper one."""
    print(f"crossover, LeNet, T = {horizon}: forward / reverse against N (learning rates only)")
    for n in counts:
        hyper = schedule(horizon, lr=0.02, momentum=0.9, weight_decay=1e-4, windows={"lr": -(-horizon // n)},
                         learn=("lr",), dtype=torch.float32)
        forward_time, _ = timed(forward_mode(), task, hyper, repeats=1)
        reverse_time, _ = timed(reverse_mode(), task, hyper, repeats=1)
        print(f"  N = {n}: forward {forward_time:.2f} s, reverse {reverse_time:.2f} s: {forward_time / reverse_time:.2f}x")


def main() -> None:
    torch.manual_seed(0)
    split, _ = image_data("mnist", 6400, 500, 0, "cpu")
    task = image_task(split, "lenet", 64)
    compare("LeNet, T = 140, N = 9", task,
            schedule(140, lr=0.02, momentum=0.9, weight_decay=1e-4, windows={"lr": 20},
                     learn=("lr", "momentum", "weight_decay"), dtype=torch.float32))
    crossover(task)
    split, _ = image_data("cifar10", 4000, 1000, 0, "cpu")
    task = image_task(split, "wrn-10-1", 64)
    compare("WRN-10-1, T = 10, N = 7", task,
            schedule(10, lr=0.05, momentum=0.5, weight_decay=1e-4, windows={"lr": 2},
                     learn=("lr", "momentum", "weight_decay"), dtype=torch.float32))


if __name__ == "__main__":
    main()
