"""Performance of hpolab's hypergradient estimators against plain baselines (CPU, float32).

Run by hand from the repository root (about 4 minutes on 2 cores; ``--quick``: about 40 s)::

    .venv/bin/python benchmarks/hypergrad.py [--quick]

Four claims of ``hpolab.hypergrad`` are measured, each against a target:

0. **Against what a user would run instead: a plain torch loop.** ``nn.Module`` +
   ``torch.optim.SGD`` (momentum, weight decay, the step's learning rate set per window),
   the same weights at the start and the same batches, checked to reach the same weights;
   then ``train`` (no hypergradient; one run, and q + 1 = 9 runs batched with ``vmap``
   against nine plain loops), ``reverse`` and ``forward`` hypergradients, each as a ratio
   to the plain loop's time, on the 7k / 57k MLPs and on LeNet (the FDS studies' model, 28 x 28
   inputs). Targets (issue 16): ``train`` <= 1.15x, reverse <= 3x.
1. **Forward mode vs a per-column recursion.** ``forward_hypergradient`` pushes the K
   tangent columns of d theta / d alpha through each SGD step with one gradient and one
   batched double-backward (``is_grads_batched``), or, for these plain MLPs, the gradient and
   the K Hessian-tangent products in closed form (:mod:`hpolab.hypergrad.mlp_tangents`);
   the double-backward route is timed beside it.
   The reference (:func:`reference_hypergradient`) is the official FDS code's approach,
   written plainly here: the paper's Eq. 4 for learning rates with one double-backward
   Hessian-vector product per column per step. Both train the same MLP with the same
   data order and activate the same columns (a column from the first step that uses its
   learning rate on; before that it is zero). Their hypergradients are checked to agree
   (float64 on a tiny setting, float32 at the timed setting) before anything is timed.
   Target: forward / reference <= 1.0 at K = 5 and <= 0.5 at K = 20. Beside each ratio: the
   matrix-product flops of both (torch's ``FlopCounterMode``, backward passes included; they
   are the same) and the rate each runs them at, and this machine's rate for single products
   of the 57k MLP's shapes, so that a ratio can be read against the arithmetic.
2. **Forward mode's memory does not grow with T.** Peak resident memory of one call at
   T = 2000 over T = 200 (target <= 1.1), with reverse mode's (which stores the unrolled
   run, so it grows with T) beside it. Each configuration runs in fresh subprocesses
   (the median of three is reported) which first compute one hypergradient at T = 20, so
   torch's lazy initialization is not counted. The number is ``Hypergradient.cost.peak_memory``,
   i.e. what ``hpolab.hypergrad.cost.Meter`` measures: the peak resident set size
   (``/proc/self/statm``, sampled every millisecond) above the resident size when the call
   started. The subprocesses run with ``MALLOC_MMAP_THRESHOLD_=131072``: glibc's default
   *dynamic* threshold keeps freed blocks of the warm-up in the heap, so that the
   resident size reflects the allocator's history more than the call's tensors (the same
   forward-mode call then measured anywhere from 3 to 18 MB); with a fixed threshold
   every block of 128 KiB or more is mapped for its lifetime only. (It slows those
   subprocesses down, so their wall times are not comparable with part 1's.)
3. **Batched zeroth-order runs.** ``validation_losses(..., batched=True)`` trains the
   q + 1 = 9 points of a zeroth-order estimate in one ``vmap``; the baseline is a Python
   loop of nine plain unbatched ``train`` calls, each followed by ``task.val_loss``.
   The losses are checked to agree. Target: batched / loop <= 0.3.

Wall times are the best of a few repeats after a warm-up call, with ``time.perf_counter``
and torch's default number of threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torch import nn

from hpolab.hypergrad import classification_task, schedule, train, validation_losses
from hpolab.hypergrad.forward import forward_hypergradient
from hpolab.hypergrad.reverse import reverse_hypergradient
from hpolab.models import lenet

INPUTS, CLASSES, BATCH = 64, 10, 64
MODELS = {"7k": (80, 20), "57k": (256, 150)}  # hidden layer widths of the two MLPs
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
SEED = 0

ESTIMATORS = {"forward": forward_hypergradient, "reverse": reverse_hypergradient}


# ----------------------------------------------------------------------------- the setting

def synthetic_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs labelled by a fixed random linear teacher plus noise."""
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(INPUTS, CLASSES, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(n, INPUTS, generator=generator)
    y = (x @ teacher + 2.0 * torch.randn(n, CLASSES, generator=generator)).argmax(dim=1)
    return x, y


def mlp(hidden: tuple[int, ...]) -> nn.Sequential:
    widths = (INPUTS, *hidden)
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], CLASSES))


def make_task(model: str, dtype=torch.float32):
    torch.manual_seed(SEED)
    return classification_task(mlp(MODELS[model]), synthetic_data(2048, 1), synthetic_data(512, 2),
                               batch_size=BATCH, dtype=dtype, name=f"mlp-{model}")


def weight_count(model: str) -> int:
    return sum(p.numel() for p in mlp(MODELS[model]).parameters())


def lr_schedule(horizon: int, k: int, dtype=torch.float64):
    """K learning rates, each shared over a window of ceil(T / K) steps; the only learned values."""
    window = math.ceil(horizon / k)
    n = math.ceil(horizon / window)
    return schedule(horizon, lr=torch.linspace(LR, 0.5 * LR, n, dtype=dtype), momentum=MOMENTUM,
                    weight_decay=WEIGHT_DECAY, windows={"lr": window}, learn=("lr",), dtype=dtype)


# ------------------------------------------------------------ 0. the plain torch loop

def lenet_task(dtype=torch.float32):
    """LeNet on synthetic 28 x 28 images (the FDS studies' model; the data only set the cost)."""
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(3)
    x, x_val = torch.randn(2048, 1, 28, 28, generator=generator), torch.randn(512, 1, 28, 28, generator=generator)
    y, y_val = torch.randint(0, CLASSES, (2048,), generator=generator), torch.randint(0, CLASSES, (512,), generator=generator)
    return classification_task(lenet(), (x, y), (x_val, y_val), batch_size=BATCH, dtype=dtype, name="lenet")


PLAIN_MODELS = {"7k": lambda: make_task("7k"), "57k": lambda: make_task("57k"), "lenet": lenet_task}


def module_for(name: str) -> nn.Module:
    return lenet() if name == "lenet" else mlp(MODELS[name])


def plain_loop(name: str, task, hyper, seed: int = SEED):
    """What a user writes: ``nn.Module`` + ``torch.optim.SGD``, the same start, batches and
    per-step learning rates as ``train(task, hyper, seed)``. Returns a function that trains
    once and returns the final weights as one vector."""
    module = module_for(name)
    theta0 = task.init(seed)
    batches = task.batches(seed, hyper.horizon)
    rates = hyper.values["lr"].tolist()
    window = hyper.windows.get("lr", hyper.horizon)
    x_train, y_train = task.data

    def run() -> torch.Tensor:
        torch.nn.utils.vector_to_parameters(theta0, module.parameters())
        optimizer = torch.optim.SGD(module.parameters(), lr=rates[0], momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        for t in range(hyper.horizon):
            optimizer.param_groups[0]["lr"] = rates[t // window]
            index = batches[t]
            loss = F.cross_entropy(module(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return torch.nn.utils.parameters_to_vector(module.parameters()).detach()

    return run


def against_plain_loop(name: str, horizon: int, k: int, q: int, repeats: int) -> dict:
    """The plain loop's time and every ratio to it. The plain loop and ``train`` are first
    checked to end at the same weights after 20 steps (over hundreds of steps a ReLU network
    amplifies the last bits in which two threads' convolutions differ); these calls and one of
    each timed function are the warm-up."""
    task, hyper = PLAIN_MODELS[name](), lr_schedule(horizon, k, torch.float32)
    short = lr_schedule(20, min(k, 20), torch.float32)
    check = relative(train(task, short, SEED).theta, plain_loop(name, task, short)())
    plain = plain_loop(name, task, hyper)
    plain(), train(task, hyper, SEED)
    points = zeroth_order_points(hyper, q).float()
    validation_losses(task, hyper, points, SEED, batched=True)
    reverse_hypergradient(task, hyper, SEED), forward_hypergradient(task, hyper, SEED)
    plain_s = best_time(plain, repeats)
    times = {"train": best_time(lambda: train(task, hyper, SEED), repeats),
             "train, 9 runs in one vmap / 9 plain loops": best_time(
                 lambda: train(task, hyper, SEED, points), repeats) / (q + 1),
             "reverse": best_time(lambda: reverse_hypergradient(task, hyper, SEED), repeats),
             "forward": best_time(lambda: forward_hypergradient(task, hyper, SEED), repeats)}
    return {"model": name, "weights": sum(p.numel() for p in module_for(name).parameters()), "T": horizon, "K": k,
            "check": check, "plain_s": plain_s, "ratios": {key: value / plain_s for key, value in times.items()}}


# ------------------------------------------------------------------ 1. the FDS reference

def reference_hypergradient(task, hyper, seed: int) -> tuple[float, torch.Tensor]:
    """d L_val(theta_T) / d alpha by the FDS paper's Eq. 4, one HVP per column per step.

    With v_t = beta v_{t-1} + g_t + xi theta_{t-1}, theta_t = theta_{t-1} - alpha_t v_t and
    g_t = grad L_train(theta_{t-1}), H_t its Hessian, the tangents Z_t = d theta_t / d alpha
    and C_t = d v_t / d alpha (D x K) follow

        C_t = beta C_{t-1} + (H_t + xi I) Z_{t-1}
        Z_t = Z_{t-1} - alpha_t C_t - v_t e_{i(t)}^T          (i(t): the window of step t)

    and d L_val / d alpha = Z_T^T grad L_val(theta_T). The columns are stored as the rows
    of K x D tensors (so each is contiguous). Column k is zero until its first step k W;
    like ``forward_hypergradient`` the reference computes the HVPs of the columns with
    k W <= t only (the column joining at step t still costs its first, zero, HVP).
    """
    theta = task.init(seed)
    dtype = theta.dtype
    alphas = hyper.values["lr"].to(dtype)
    beta = float(hyper.values["momentum"][0])
    xi = float(hyper.values["weight_decay"][0])
    window, K = hyper.windows["lr"], alphas.numel()
    velocity = torch.zeros_like(theta)
    Z = torch.zeros(K, theta.numel(), dtype=dtype)
    C = torch.zeros_like(Z)
    batches = task.batches(seed, hyper.horizon)
    for t in range(hyper.horizon):
        i = t // window
        active = i + 1  # columns 0 .. i(t) have started
        theta = theta.detach().requires_grad_()
        loss = task.train_loss(theta, task.batch(batches[t]), {})
        (g,) = torch.autograd.grad(loss, theta, create_graph=True)
        hvps = torch.stack([torch.autograd.grad(g @ Z[k], theta, retain_graph=True)[0] for k in range(active)])
        g, theta = g.detach(), theta.detach()
        C[:active] = beta * C[:active] + hvps + xi * Z[:active]
        velocity = beta * velocity + g + xi * theta
        Z[:active] -= alphas[i] * C[:active]
        Z[i] -= velocity
        theta = theta - alphas[i] * velocity
    grad_val, val_loss = torch.func.grad_and_value(task.val_loss)(theta)
    return float(val_loss), (Z @ grad_val).double()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def best_time(fn, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls (the caller has already made a warm-up call)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def check_reference_float64() -> float:
    """Reference vs forward mode in float64 on a tiny setting (7k MLP, T = 40, K = 5)."""
    task, hyper = make_task("7k", torch.float64), lr_schedule(40, 5)
    _, ours = reference_hypergradient(task, hyper, SEED)
    return relative(forward_hypergradient(task, hyper, SEED).grad, ours)


def matmul_flops(fn) -> int:
    """The floating-point operations of the matrix products (and convolutions) ``fn`` runs,
    backward passes included, as torch's ``FlopCounterMode`` counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def forward_vs_reference(model: str, horizon: int, k: int, repeats: int) -> dict:
    """Check (these calls are also the warm-up), count both's matrix-product flops, then time both,
    and forward mode once more by torch's double-backward instead of the MLP's closed form."""
    task, hyper = make_task(model), lr_schedule(horizon, k, torch.float32)
    generic = dataclasses.replace(task, tangents=None)
    ours = reference_hypergradient(task, hyper, SEED)[1]
    difference = max(relative(forward_hypergradient(t, hyper, SEED).grad, ours) for t in (task, generic))
    flops = [matmul_flops(lambda: f(task, hyper, SEED)) for f in (forward_hypergradient, reference_hypergradient)]
    forward = best_time(lambda: forward_hypergradient(task, hyper, SEED), repeats)
    reference = best_time(lambda: reference_hypergradient(task, hyper, SEED), repeats)
    double_backward = best_time(lambda: forward_hypergradient(generic, hyper, SEED), repeats)
    return {"model": model, "T": horizon, "K": k, "check": difference, "forward_s": forward,
            "reference_s": reference, "ratio": forward / reference, "forward_flops": flops[0],
            "reference_flops": flops[1], "double_backward_s": double_backward}


def gemm_rate(m: int, k: int, n: int, calls: int = 200) -> float:
    """The GFLOP/s of one (m x k) @ (k x n) float32 product on this machine, best of three batches."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / best_time(lambda: [a @ b for _ in range(calls)], 3) * calls / 1e9


# -------------------------------------------------------------------- 2. peak memory

def measure_peak(estimator: str, model: str, horizon: int, k: int) -> dict:
    """(In a fresh process) one warm-up call at T = 20, then the measured call's peak in MB."""
    task = make_task(model)
    ESTIMATORS[estimator](task, lr_schedule(20, k, torch.float32), SEED)
    result = ESTIMATORS[estimator](task, lr_schedule(horizon, k, torch.float32), SEED)
    return {"peak_mb": result.cost.peak_memory / 2**20}


def peak_in_subprocess(estimator: str, model: str, horizon: int, k: int, runs: int) -> float:
    """Median over ``runs`` fresh processes of :func:`measure_peak`'s peak, in MB."""
    command = [sys.executable, __file__, "--measure", json.dumps([estimator, model, horizon, k])]
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    peaks = []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
        peaks.append(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])
    return statistics.median(peaks)


# ------------------------------------------------------------- 3. batched zeroth order

def zeroth_order_points(hyper, q: int, mu: float = 0.01) -> torch.Tensor:
    h = hyper.pack()
    u = torch.randn(q, h.numel(), generator=torch.Generator().manual_seed(SEED + 7919), dtype=torch.float64)
    return torch.cat([h[None], h + mu * u])


def loop_losses(task, hyper, points) -> torch.Tensor:
    """The baseline: one plain (unbatched) training per point, one after another."""
    return torch.tensor([float(task.val_loss(train(task, hyper, SEED, point).theta)) for point in points],
                        dtype=torch.float64)


def batched_vs_loop(model: str, horizon: int, k: int, q: int, repeats: int) -> dict:
    task, hyper = make_task(model), lr_schedule(horizon, k)
    points = zeroth_order_points(hyper, q)  # checked (the warm-up), then timed
    batched = validation_losses(task, hyper, points, SEED, batched=True).losses
    difference = relative(batched, loop_losses(task, hyper, points))
    batched_s = best_time(lambda: validation_losses(task, hyper, points, SEED, batched=True), repeats)
    loop_s = best_time(lambda: loop_losses(task, hyper, points), repeats)
    return {"model": model, "T": horizon, "K": k, "q": q, "check": difference, "batched_s": batched_s,
            "loop_s": loop_s, "ratio": batched_s / loop_s}


# ------------------------------------------------------------------------------ report

def verdict(value: float, target: float) -> str:
    return f"target <= {target:g}x: {'met' if value <= target else 'NOT MET'}"


def main(quick: bool, plain_only: bool = False) -> None:
    T1, T2, T3 = (100, (50, 500), 50) if quick else (400, (200, 2000), 200)
    repeats, runs = (1, 1) if quick else (3, 3)
    started = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 on the CPU"
          + (" (--quick: smaller T, not the reported numbers)" if quick else ""))
    print("tanh MLPs " + ", ".join(f"{'-'.join(map(str, (INPUTS, *MODELS[m], CLASSES)))} ({m}: D = {weight_count(m)})"
                                   for m in MODELS) + f", batch {BATCH}, synthetic data")
    rows = []

    print(f"\n0. against a plain nn.Module + torch.optim.SGD loop (same start, batches, rates; T={T1}, "
          f"best of {repeats})")
    targets = {"train": 1.15, "train, 9 runs in one vmap / 9 plain loops": 1.15, "reverse": 3.0, "forward": None}
    for name in PLAIN_MODELS:
        for k in (5, 20):
            r = against_plain_loop(name, T1, k, 8, repeats)
            assert r["check"] < 1e-4, f"the plain loop and train end at different weights: {r['check']:.2e}"
            print(f"   {name:5s} (D = {r['weights']}) K={k:2d}: plain loop {r['plain_s']:.3f} s (check {r['check']:.1e})")
            for what, ratio in r["ratios"].items():
                target = targets[what]
                print(f"      {what:44s} {ratio:5.2f}x" + (f" ({verdict(ratio, target)})" if target else ""))
                rows.append((f"{what} / plain loop, {name}, T={T1}, K={k}", f"plain {r['plain_s']:.3f} s", ratio,
                             target))
            ratio = r["ratios"]["forward"] / r["ratios"]["reverse"]
            print(f"      {'forward / reverse':44s} {ratio:5.2f}x")
            rows.append((f"forward / reverse, {name}, T={T1}, K={k}", "", ratio, None))

    if plain_only:
        return summary(rows, started)

    print(f"\n1. forward mode vs the per-column FDS recursion (lr only; momentum {MOMENTUM}, weight decay "
          f"{WEIGHT_DECAY} fixed; best of {repeats})")
    error = check_reference_float64()
    print(f"   check in float64, 7k MLP, T=40, K=5: max |forward - reference| / max |reference| = {error:.1e}")
    assert error < 1e-8, "the reference and forward mode disagree"
    for model in MODELS:
        for k, target in ((5, 1.0), (20, 0.5)):
            r = forward_vs_reference(model, T1, k, repeats)
            assert r["check"] < 1e-4, f"float32 check failed: {r['check']:.2e}"
            print(f"   {model:3s} T={T1} K={k:2d}: check {r['check']:.1e} | forward {r['forward_s']:5.2f} s, "
                  f"reference {r['reference_s']:5.2f} s: ratio {r['ratio']:.2f}x ({verdict(r['ratio'], target)})")
            print(f"      matrix products: {r['forward_flops'] / 1e9:.2f} / {r['reference_flops'] / 1e9:.2f} GFLOP "
                  f"(forward / reference), run at {r['forward_flops'] / r['forward_s'] / 1e9:.0f} / "
                  f"{r['reference_flops'] / r['reference_s'] / 1e9:.0f} GFLOP/s")
            print(f"      forward mode by torch's batched double-backward instead of the closed form: "
                  f"{r['double_backward_s']:5.2f} s, {r['double_backward_s'] / r['reference_s']:.2f}x the reference")
            rows.append((f"forward / FDS reference, {model} MLP, T={T1}, K={k}",
                         f"{r['forward_s']:.2f} s / {r['reference_s']:.2f} s", r["ratio"], target))

    rates = {shape: gemm_rate(*shape) for shape in ((BATCH * 20, INPUTS, MODELS["57k"][0]), (BATCH, *MODELS["57k"]))}
    print("   this machine's matrix products of the 57k MLP's shapes (K = 20 rows folded in, one row): "
          + ", ".join(f"{'x'.join(map(str, shape))} {rate:.0f} GFLOP/s" for shape, rate in rates.items()))

    print(f"\n2. peak resident memory above the call's start, 57k MLP, K=5 (median of {runs} fresh processes)")
    for estimator, target in (("forward", 1.1), ("reverse", None)):
        small, large = (peak_in_subprocess(estimator, "57k", T, 5, runs) for T in T2)
        ratio = large / small
        note = verdict(ratio, target) if target else "grows with T"
        print(f"   {estimator:8s}: {small:7.1f} MB at T={T2[0]}, {large:7.1f} MB at T={T2[1]}: "
              f"ratio {ratio:.2f}x ({note})")
        rows.append((f"{estimator} peak memory, 57k MLP, K=5, T={T2[1]} / T={T2[0]}",
                     f"{large:.1f} MB / {small:.1f} MB", ratio, target))

    print(f"\n3. zeroth order: q + 1 = 9 trainings batched with vmap vs a loop of plain trainings (best of {repeats})")
    r = batched_vs_loop("7k", T3, 5, 8, repeats)
    assert r["check"] < 1e-5, f"batched and loop losses differ: {r['check']:.2e}"
    print(f"   7k T={T3} K=5 q=8: check {r['check']:.1e} | batched {r['batched_s']:.2f} s, loop {r['loop_s']:.2f} s: "
          f"ratio {r['ratio']:.2f}x ({verdict(r['ratio'], 0.3)})")
    rows.append((f"zeroth order batched / loop, 7k MLP, T={T3}, K=5, q=8",
                 f"{r['batched_s']:.2f} s / {r['loop_s']:.2f} s", r["ratio"], 0.3))

    summary(rows, started)


def summary(rows: list, started: float) -> None:
    """The markdown table of every ratio against its target (what docs/performance.md shows)."""
    print(f"\nSummary ({time.perf_counter() - started:.0f} s in all)\n")
    print("| measurement | values | ratio | target | met |")
    print("| --- | --- | --- | --- | --- |")
    for name, values, ratio, target in rows:
        met = "-" if target is None else ("yes" if ratio <= target else "**no**")
        print(f"| {name} | {values} | {ratio:.2f}x | {'-' if target is None else f'<= {target:g}x'} | {met} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~1 minute sanity run with smaller T")
    parser.add_argument("--plain-only", action="store_true", help="only part 0, against the plain torch loop")
    parser.add_argument("--threads", type=int, help="torch threads (default torch's; 1 gives steadier numbers on a "
                                                    "busy machine)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one peak-memory measurement
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure_peak(*json.loads(args.measure))))
    else:
        main(args.quick, args.plain_only)
