"""Time per training step of the hypergradient optimizers against plain torch.optim.

An MLP with two hidden layers of 1000 (the HD paper's MNIST model) on synthetic 784-d
inputs, batch 128, float32 on the CPU. For each pair (SGD / SGD-HD, SGD-Nesterov /
SGDN-HD, Adam / Adam-HD) it times whole training steps (forward, backward, optimizer
step) and the optimizer step alone, interleaving the two optimizers' repeats so machine
noise hits both alike, and prints the ratios (target for whole steps: <= 1.15x). The HD
optimizers are built as studies 06 and 07 build them (the printed rule, ``nonnegative=False``).

glibc is told to serve the steps' large temporaries from its heap and to keep freed memory
(``mallopt``: mmap threshold 32 MB, trim threshold 1 GB). At its defaults, whether a 7 MB
temporary costs fresh zeroed pages depends on what the process freed before: either side
measured up to 1.7x slower by turns in one run, and the ratios measured the allocator's
history rather than the optimizers.

    python benchmarks/optimizers.py [--steps 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import statistics
import time

import torch
from torch.nn import functional as F

from hpolab.optim import SGDHD, AdamHD

PAIRS = {
    "SGD": (lambda ps: torch.optim.SGD(ps, lr=0.01, weight_decay=1e-4),
            lambda ps: SGDHD(ps, lr=0.01, hypergrad_lr=1e-4, weight_decay=1e-4, nonnegative=False)),
    "SGDN": (lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4),
             lambda ps: SGDHD(ps, lr=0.01, hypergrad_lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-4,
                              nonnegative=False)),
    "Adam": (lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=1e-4),
             lambda ps: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7, weight_decay=1e-4, nonnegative=False)),
}


def time_steps(model, optimizer, x, y, steps):
    """(seconds per whole step, seconds per optimizer step)."""
    whole = step_only = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        middle = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        whole += end - start
        step_only += end - middle
    return whole / steps, step_only / steps


def steady_allocator() -> bool:
    """Serve temporaries up to 32 MB from glibc's heap and never trim it; False where not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, 32 * 1024 * 1024)) and bool(libc.mallopt(-1, 1 << 30))  # M_MMAP_, M_TRIM_THRESHOLD


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    allocator = "glibc heap kept (mallopt)" if steady_allocator() else "the system allocator's defaults"
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 1000),
                               torch.nn.ReLU(), torch.nn.Linear(1000, 10))
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    print(f"MLP 784-1000-1000-10 ({sum(p.numel() for p in base.parameters()):,} weights), batch 128, "
          f"{torch.get_num_threads()} threads; median of {args.repeats} x {args.steps} steps; {allocator}\n")
    print(f"{'optimizer':<10}{'torch ms/step':>15}{'HD ms/step':>13}{'ratio':>8}{'   step only: torch ms':>24}{'HD ms':>8}{'ratio':>8}")
    for name, (plain, hd) in PAIRS.items():
        runs = {"torch": [], "hd": []}
        models = {key: copy.deepcopy(base) for key in runs}
        optimizers = {"torch": plain(models["torch"].parameters()), "hd": hd(models["hd"].parameters())}
        for key in runs:  # warm-up
            time_steps(models[key], optimizers[key], x, y, 3)
        for _ in range(args.repeats):
            for key in runs:
                runs[key].append(time_steps(models[key], optimizers[key], x, y, args.steps))
        whole = {k: statistics.median(r[0] for r in v) * 1e3 for k, v in runs.items()}
        step = {k: statistics.median(r[1] for r in v) * 1e3 for k, v in runs.items()}
        ratio = whole["hd"] / whole["torch"]
        print(f"{name:<10}{whole['torch']:>15.2f}{whole['hd']:>13.2f}{ratio:>7.2f}x{step['torch']:>24.2f}"
              f"{step['hd']:>8.2f}{step['hd'] / step['torch']:>7.2f}x   {'meets' if ratio <= 1.15 else 'misses'} <= 1.15x")


if __name__ == "__main__":
    main()
