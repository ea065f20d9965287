"""hpolab on one accelerator, in one call: notebooks, estimators against the CPU, forward vs reverse cost.

Made for the device tool's single call of under 8 minutes on one GPU (see benchmarks/README.md)::

    python benchmarks/gpu_check.py --device cuda:0 --out $OUT      # on the device machine
    python benchmarks/gpu_check.py --device cpu --smoke --out /tmp/g  # here: the test-suite form

Everything measured goes to ``OUT/gpu_check.json`` and ``OUT/gpu_check.md`` (tables ready for the
README), rewritten after every section so that a call cut short still leaves what it measured.
Notebook run folders go elsewhere (``--runs``; a temporary folder by default), since the device
tool brings back only a few files from ``$OUT``.

Sections, each catching its own exceptions (status, first error line, seconds), cheapest first so
that running out of the soft budget (``--seconds``) skips what is left and says so:

* ``estimators``: forward (by the MLP's closed-form tangents and by torch's batched
  double-backward), reverse, zeroth-order (batched) and implicit hypergradients of one small
  float64 task built on the CPU and on the device: largest relative difference and the time of each.
  The zeroth-order directions come from a seeded CPU generator on both, so they are the same draws.
* ``benchmarks``: forward against reverse mode at the FDS studies' horizons (LeNet and WRN-16-1 on
  synthetic images of MNIST's and CIFAR-10's shapes, T = 250 and 1000): wall time, peak device memory
  (``torch.cuda.max_memory_allocated`` through ``Meter``; null on a CPU) and their agreement.
* ``notebooks``: every study notebook at ``smoke`` through ``hpolab run`` on the device, each in its
  own process with a timeout.
* ``paper_scale``: one outer step (one hypergradient) at the paper scale of studies 09 and 10, where
  the data is there and the projected time fits; every other notebook is listed as not attempted.

``--smoke`` shrinks all of it (notebook 09 only, T of 10 and 20 on a tiny MLP, study 09's smoke scale
standing in for the paper scale) so that the test suite runs it on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # on the device machine hpolab is not installed: import this checkout's

SMOKE_NOTEBOOKS = ("09",)  # among the fastest smoke runs (~12 s of notebook, ~45 s with its kernel here)
NEEDED = ("torch", "torchvision", "numpy", "pandas", "scipy", "sklearn", "tqdm", "optuna", "plotly", "ipywidgets",
          "anywidget", "papermill", "nbformat", "nbclient", "ipykernel", "jupyter_client")
NOTEBOOK_PACKAGES = ("papermill", "nbformat", "nbclient", "ipykernel", "jupyter_client", "plotly", "ipywidgets",
                     "anywidget")
SECTIONS = ("notebooks", "estimators", "benchmarks", "paper_scale")  # the report's order
RUN_ORDER = ("estimators", "benchmarks", "notebooks", "paper_scale")  # cheapest first
SHARE = {"estimators": 0.2, "benchmarks": 0.45, "notebooks": 0.9, "paper_scale": 1.0}  # by then, of --seconds
TOLERANCE = {"forward": 1e-8, "forward, double-backward": 1e-8, "reverse": 1e-8, "zeroth-order": 1e-6,
             "implicit": 1e-6}


# ----------------------------------------------------------------------------- budget and sections

class Budget:
    """The soft time budget: seconds left overall, or before a section's share of it is spent."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self, share: float = 1.0) -> float:
        return share * self.seconds - self.elapsed()


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def run_section(name: str, measure, budget: Budget, report: dict, out: Path) -> None:
    """Run one section's ``measure() -> rows``, record pass / fail / skipped, its first error and
    its time, and rewrite the outputs. A row with ``status`` ``fail`` fails the section."""
    started = time.perf_counter()
    if budget.left(SHARE[name]) <= 0:
        entry = {"status": "skipped", "error": f"out of time: {budget.elapsed():.0f} s of {budget.seconds:.0f} used",
                 "rows": []}
    else:
        print(f"[{budget.elapsed():5.0f} s] {name} ...", flush=True)
        try:
            rows = measure()
            failed = [row for row in rows if row.get("status") == "fail"]
            entry = {"status": "fail" if failed else "pass", "error": failed[0].get("error") if failed else None,
                     "rows": rows}
        except Exception as error:  # the section's own failure: recorded, and the script goes on
            entry = {"status": "fail", "error": one_line(error), "rows": []}
    entry["seconds"] = round(time.perf_counter() - started, 2)
    report["sections"][name] = entry
    print(f"[{budget.elapsed():5.0f} s] {name}: {entry['status']}" + (f" ({entry['error']})" if entry["error"] else ""),
          flush=True)
    write_outputs(report, budget, out)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device):
    """``(result, seconds)`` of one call, the device synchronized before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    scale = float(b.abs().max())
    difference = float((a - b).abs().max())
    return difference / scale if scale > 0 else difference


# ----------------------------------------------------------------------------- environment

def environment(device: torch.device) -> dict:
    """What ran: python, torch, the device, the commit, and which needed packages are missing."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cpu_count": os.cpu_count(), "device": str(device), "device_name": "CPU",
            "commit": git_commit(), "missing_packages": missing(NEEDED),
            "data": os.environ.get("HPOLAB_DATA") or str(REPO / "data")}
    if device.type == "cuda" and torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(device)
        info.update(device_name=properties.name, capability=f"{properties.major}.{properties.minor}",
                    memory_gb=round(properties.total_memory / 2**30, 1))
    return info


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def missing(modules) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


# ----------------------------------------------------------------------------- 2. estimators

def mlp_task(device, dtype):
    """A 5-8-2 tanh network, 64 training and 32 validation points, batches of 16 (tests/test_hypergrad.py's)."""
    from torch import nn

    from hpolab.hypergrad import classification_task

    torch.manual_seed(0)
    return classification_task(nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)), points(64, 5, 1),
                               points(32, 5, 2), batch_size=16, dtype=dtype, device=device)


def double_backward_mlp_task(device, dtype):
    """:func:`mlp_task` without its closed-form tangents: forward mode by torch's batched
    double-backward, the route every model but a plain MLP takes (LeNet, the WRN)."""
    import dataclasses

    return dataclasses.replace(mlp_task(device, dtype), tangents=None)


def logistic_task(device, dtype):
    """Full-batch logistic regression with the penalty exp(log_l2) |theta|^2: implicit's setting."""
    from torch import nn

    from hpolab.hypergrad import classification_task

    torch.manual_seed(0)
    return classification_task(nn.Linear(4, 2), points(60, 4, 3), points(40, 4, 4), batch_size=None, l2_term=True,
                               dtype=dtype, device=device)


def points(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n Gaussian points in R^d, labelled by a noisy linear rule (made on the CPU, the same everywhere)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.3 * torch.randn(n, generator=generator, dtype=torch.float64) > 0).long()
    return x, y


def estimator_cases(smoke: bool) -> list[tuple]:
    """(name, estimator, task builder, hyperparameters): lr over 3 windows, momentum and weight
    decay learned on the MLP; log_l2 on logistic regression for implicit."""
    from hpolab.hypergrad import forward_mode, implicit, reverse_mode, schedule, zeroth_order

    horizon = 12 if smoke else 30
    window = horizon // 3
    optimizer = schedule(horizon, lr=torch.linspace(0.1, 0.3, 3), momentum=0.5, weight_decay=1e-3,
                         windows={"lr": window}, learn=("lr", "momentum", "weight_decay"))
    penalty = schedule(50, lr=1.0, momentum=0.5, learn=("log_l2",), log_l2=-3.0)
    return [("forward", forward_mode(), mlp_task, optimizer),
            ("forward, double-backward", forward_mode(), double_backward_mlp_task, optimizer),
            ("reverse", reverse_mode(), mlp_task, optimizer),
            ("zeroth-order", zeroth_order(q=8, mu=0.01), mlp_task, optimizer),
            ("implicit", implicit(), logistic_task, penalty)]


def estimate(estimator, task, hyper):
    """One hypergradient, seed 0; the zeroth-order one's directions from a fresh CPU generator seeded 0."""
    from hpolab.hypergrad.result import takes_generator

    if takes_generator(estimator):
        return estimator(task, hyper, 0, generator=torch.Generator().manual_seed(0))
    return estimator(task, hyper, 0)


def warm_and_time(estimator, task, hyper, device: torch.device):
    """``(hypergradient, seconds)`` of a second call: the first loads kernels and grows the allocator."""
    estimate(estimator, task, hyper)
    return timed(lambda: estimate(estimator, task, hyper), device)


def compare_estimator(name, estimator, build, hyper, device: torch.device) -> dict:
    """The estimate on the CPU and on ``device`` (float64 where the device has it), their largest
    relative difference against the tolerance, and each one's time (the device's after a warm-up)."""
    dtype = torch.float32 if device.type == "mps" else torch.float64
    row = {"estimator": name, "dtype": str(dtype).removeprefix("torch."), "learned": list(hyper.learn),
           "T": hyper.horizon, "tolerance": TOLERANCE[name]}
    try:
        cpu, row["cpu_s"] = warm_and_time(estimator, build("cpu", dtype), hyper, torch.device("cpu"))
        there, row["device_s"] = warm_and_time(estimator, build(device, dtype), hyper, device)
        if cpu.diverged or there.diverged:
            raise RuntimeError(f"training diverged: cpu {cpu.message!r}, device {there.message!r}")
        row["max_rel_error"] = relative_error(there.grad, cpu.grad)
        row["loss_rel_error"] = abs(there.loss - cpu.loss) / max(abs(cpu.loss), 1e-300)
        row["status"] = "pass" if row["max_rel_error"] <= row["tolerance"] else "fail"
        if row["status"] == "fail":
            row["error"] = f"{name}: device and CPU differ by {row['max_rel_error']:.2e} > {row['tolerance']:g}"
    except Exception as error:
        row.update(status="fail", error=f"{name}: {one_line(error)}")
    return row


def zeroth_order_against_exact(device: torch.device, smoke: bool) -> dict:
    """Informational: the q = 8 zeroth-order estimate against reverse mode's exact hypergradient on
    the device (a noisy estimate: no tolerance)."""
    from hpolab.hypergrad import reverse_mode, zeroth_order

    _, _, build, hyper = estimator_cases(smoke)[2]
    dtype = torch.float32 if device.type == "mps" else torch.float64
    task = build(device, dtype)
    exact = reverse_mode()(task, hyper, 0).grad
    noisy = estimate(zeroth_order(q=8, mu=0.01), task, hyper).grad
    return {"estimator": "zeroth-order vs exact (reverse), q = 8", "dtype": str(dtype).removeprefix("torch."),
            "learned": list(hyper.learn), "T": hyper.horizon, "max_rel_error": relative_error(noisy, exact),
            "status": "info", "note": "directions: a seeded CPU generator on every device, so device and CPU "
                                      "draw the same u_i; this row is the estimate's own error"}


def estimators_section(device: torch.device, smoke: bool) -> list[dict]:
    rows = [compare_estimator(name, estimator, build, hyper, device)
            for name, estimator, build, hyper in estimator_cases(smoke)]
    return rows + [zeroth_order_against_exact(device, smoke)]


# ----------------------------------------------------------------------------- 3. forward vs reverse cost

def benchmark_settings(smoke: bool) -> list[tuple]:
    """(model, image shape or None, batch, horizons): the FDS studies' LeNet and WRN-16-1, or a tiny MLP."""
    if smoke:
        return [("mlp", None, 16, (10, 20))]
    return [("lenet", (1, 28, 28), 64, (250, 1000)), ("wrn-16-1", (3, 32, 32), 64, (250, 1000))]


def benchmark_task(model: str, shape, batch: int, device: torch.device):
    """The model on 1024 / 256 synthetic examples (random images, 10 classes) already on the device:
    the cost of a hypergradient does not depend on the pixels."""
    from torch import nn

    from hpolab.hypergrad import classification_task
    from hpolab.studies.fds import image_task

    generator = torch.Generator().manual_seed(0)
    if shape is None:
        def data(n):
            return torch.randn(n, 10, generator=generator), torch.randint(0, 3, (n,), generator=generator)

        torch.manual_seed(0)
        mlp = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
        return classification_task(mlp, data(128), data(64), batch_size=batch, device=device)

    def images(n):
        return torch.randn(n, *shape, generator=generator).to(device), torch.randint(0, 10, (n,),
                                                                                    generator=generator).to(device)

    return image_task({"train": images(1024), "val": images(256)}, model, batch, device)


def benchmark_hyper(horizon: int):
    """10 learning rates over windows of T / 10 steps, momentum and weight decay: N = 12 learned values."""
    from hpolab.hypergrad import schedule

    window = math.ceil(horizon / 10)
    return schedule(horizon, lr=0.02, momentum=0.9, weight_decay=1e-4, windows={"lr": window},
                    learn=("lr", "momentum", "weight_decay"), dtype=torch.float32)


def measure_mode(mode: str, task, hyper, device: torch.device) -> dict:
    """One hypergradient by ``mode``: seconds and peak device memory (MB above the call's start,
    None on a CPU, where Meter's resident-set figure is too coarse to tabulate)."""
    from hpolab.hypergrad import forward_mode, reverse_mode

    estimator = forward_mode() if mode == "forward" else reverse_mode()
    try:
        result = estimator(task, hyper, 0)
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return {"status": "out of memory", "error": one_line(error)}
    peak = result.cost.peak_memory / 2**20 if device.type == "cuda" else None
    return {"status": "diverged" if result.diverged else "ok", "seconds": result.cost.wall_time, "peak_mb": peak,
            "grad": result.grad}


def benchmark_row(model: str, task, horizon: int, device: torch.device) -> dict:
    """Forward and reverse mode at T = ``horizon``, and how far apart their hypergradients are."""
    hyper = benchmark_hyper(horizon)
    row = {"model": model, "T": horizon, "N": hyper.pack().numel()}
    forward, reverse = (measure_mode(mode, task, hyper, device) for mode in ("forward", "reverse"))
    for mode, measured in (("forward", forward), ("reverse", reverse)):
        row[f"{mode}_s"], row[f"{mode}_peak_mb"] = measured.get("seconds"), measured.get("peak_mb")
        row[f"{mode}_status"] = measured["status"]
    if forward.get("grad") is not None and reverse.get("grad") is not None:
        row["rel_diff"] = relative_error(forward["grad"], reverse["grad"])
    row["status"] = "pass" if forward["status"] == "ok" else "fail"
    if row["status"] == "fail":
        row["error"] = f"{model} T={horizon}: forward mode {forward['status']}: {forward.get('error', '')}"
    return row


def probe(model: str, task, device: torch.device) -> float:
    """Seconds per inner step, forward and reverse mode together, at T = 5 after a T = 2 warm-up
    (which loads kernels and grows the allocator)."""
    benchmark_row(model, task, 2, device)
    row = benchmark_row(model, task, 5, device)
    return ((row.get("forward_s") or 0) + (row.get("reverse_s") or 0)) / 5


def benchmarks_section(device: torch.device, smoke: bool, budget: Budget) -> list[dict]:
    """Every setting at each horizon, skipping (and saying so) a horizon whose time, projected
    linearly from the last one measured (first: the probe at T = 5), would not fit in the
    section's share of the budget."""
    rows = []
    for model, shape, batch, horizons in benchmark_settings(smoke):
        if budget.left(SHARE["benchmarks"]) <= 0:
            rows.append({"model": model, "status": "skipped", "reason": "out of time"})
            continue
        try:
            task = benchmark_task(model, shape, batch, device)
            per_step = probe(model, task, device)
        except Exception as error:
            rows.append({"model": model, "status": "fail", "error": f"{model}: {one_line(error)}"})
            continue
        for horizon in horizons:
            projected, left = per_step * horizon, budget.left(SHARE["benchmarks"])
            if projected > left:
                rows.append({"model": model, "T": horizon, "status": "skipped",
                             "reason": f"projected {projected:.0f} s, {max(left, 0):.0f} s left"})
                continue
            try:
                row = benchmark_row(model, task, horizon, device)
            except Exception as error:
                row = {"model": model, "T": horizon, "status": "fail", "error": f"{model}: {one_line(error)}"}
            rows.append({**row, "batch": batch})
            spent = (row.get("forward_s") or 0) + (row.get("reverse_s") or 0)
            per_step = spent / horizon if spent else per_step
    return rows


# ----------------------------------------------------------------------------- 1. notebooks

def notebook_names(chosen: list[str] | None, smoke: bool) -> list[str]:
    """The notebooks' stems: those named (by number or name), the smoke pair, or every study notebook."""
    every = sorted(path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    wanted = chosen or (SMOKE_NOTEBOOKS if smoke else None)
    if wanted is None:
        return every
    found = [stem for stem in every if any(stem == w or stem.startswith(f"{w}_") for w in wanted)]
    unknown = [w for w in wanted if not any(stem == w or stem.startswith(f"{w}_") for stem in found)]
    if unknown:
        raise ValueError(f"no notebook {unknown}; there are {every}")
    return found


def hpolab_command(stem: str, device: torch.device, folder: Path) -> list[str]:
    return [sys.executable, "-m", "hpolab.cli", "run", stem, "--scale", "smoke", "-p", "device", str(device),
            "--output", str(folder), "--no-report"]


def child_environment(threads: int | None) -> dict:
    """This process's environment with this checkout first on PYTHONPATH (the kernel inherits it)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    environment["PYTHONUNBUFFERED"] = "1"
    if threads:
        environment["OMP_NUM_THREADS"] = str(threads)
    return environment


def run_notebook(stem: str, device, runs: Path, timeout: float, budget: Budget, threads: int | None) -> dict:
    """``hpolab run STEM --scale smoke -p device DEVICE`` in its own process group, killed at the timeout."""
    left = budget.left(SHARE["notebooks"])
    if left <= 0:
        return {"notebook": stem, "status": "skipped", "reason": "out of time"}
    folder = runs / stem
    folder.mkdir(parents=True, exist_ok=True)
    log = folder.parent / f"{stem}.log"
    limit = min(timeout, left)
    started = time.perf_counter()
    with open(log, "w") as output:
        process = subprocess.Popen(hpolab_command(stem, device, folder), cwd=REPO, stdout=output,
                                   stderr=subprocess.STDOUT, env=child_environment(threads), start_new_session=True)
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # papermill's kernel too
            process.wait()
            code = None
    row = {"notebook": stem, "seconds": round(time.perf_counter() - started, 1), "log": str(log)}
    if code == 0:
        return {**row, "status": "pass"}
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    if code is None:
        return {**row, "status": "fail", "error": f"{stem}: timed out after {limit:.0f} s", "tail": tail}
    return {**row, "status": "fail", "error": f"{stem}: {error_line(tail)}", "tail": tail}


def error_line(tail: list[str]) -> str:
    """The last line that names an error (papermill's summary), else the last line."""
    named = [line for line in tail if "Error" in line or "error:" in line]
    return (named[-1] if named else tail[-1] if tail else "no output").strip()[:300]


def notebooks_section(device, names: list[str], runs: Path, timeout: float, jobs: int, budget: Budget) -> list[dict]:
    """Every notebook at smoke, ``jobs`` at a time (CPU threads shared among them)."""
    from tqdm.auto import tqdm

    absent = missing(NOTEBOOK_PACKAGES)
    if absent:
        raise RuntimeError(f"cannot run notebooks: missing packages {absent} (carry them as wheels)")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    rows = {}
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(run_notebook, stem, device, runs, timeout, budget, threads): stem for stem in names}
        for future in tqdm(as_completed(futures), total=len(futures), desc="notebooks"):
            rows[futures[future]] = future.result()
    return [rows[stem] for stem in names]


# ----------------------------------------------------------------------------- 4. paper scale

def paper_plans(smoke: bool) -> dict:
    """Study -> (setting builder, benchmark model to project its time from, batch ratio to it);
    with ``smoke``, study 09 at its smoke scale only (study 10's WRN step takes ~30 s on a CPU)."""
    from hpolab.studies import fds_cifar, fds_schedules

    scale = "smoke" if smoke else "paper"

    def study_09(device):
        task, _, horizon, _ = fds_schedules.setting(scale, "mnist", device)
        window = fds_schedules.SIZES[scale][5]
        return task, fds_schedules.method_hyperparameters("fds", horizon, min(window, horizon))

    def study_10(device):
        task, _, horizon, _, window = fds_cifar.setting(scale, device)
        return task, fds_cifar.fds_hyperparameters(horizon, window)

    plans = {"09_fds_lr_schedules": (study_09, "lenet", fds_schedules.SIZES[scale][3] / 64),
             "10_fds_cifar": (study_10, "wrn-16-1", fds_cifar.SIZES[scale][4] / 64)}
    return {"09_fds_lr_schedules": plans["09_fds_lr_schedules"]} if smoke else plans


def per_step_seconds(benchmark_rows: list[dict], model: str, mode: str) -> float | None:
    """``mode``'s seconds per inner step at the longest horizon measured for ``model``."""
    timed_rows = [row for row in benchmark_rows if row.get("model") == model and row.get(f"{mode}_s")]
    if not timed_rows:
        return None
    longest = max(timed_rows, key=lambda row: row["T"])
    return longest[f"{mode}_s"] / longest["T"]


def paper_step(stem: str, plan, device, smoke: bool, benchmark_rows: list[dict], budget: Budget) -> dict:
    """One outer step's hypergradient (the studies' estimator for the device) at the paper scale,
    skipped when the data is absent or the time projected from the benchmarks does not fit."""
    from hpolab.studies.fds import exact_estimator

    build, model, batch_ratio = plan
    row = {"notebook": stem, "scale": "smoke (stands in for paper)" if smoke else "paper"}
    try:
        task, hyper = build(device)
    except Exception as error:
        absent = "exceeds" in str(error) or type(error).__name__ == "DataNotFoundError"
        return {**row, "status": "skipped" if absent else "fail",
                ("reason" if absent else "error"): f"{stem}: {one_line(error)}"}
    estimator, name = exact_estimator("auto", torch.device(device))
    per_step = per_step_seconds(benchmark_rows, model, name)
    projected = None if per_step is None else per_step * batch_ratio * hyper.horizon
    row.update(T=hyper.horizon, N=hyper.pack().numel(), estimator=name, projected_s=projected)
    if not smoke and (projected is None or projected > budget.left()):
        why = "no benchmark timing to project from" if projected is None else f"projected {projected:.0f} s"
        return {**row, "status": "skipped", "reason": f"{why}, {max(budget.left(), 0):.0f} s left"}
    result, seconds = timed(lambda: estimator(task, hyper, 0), torch.device(device))
    peak = result.cost.peak_memory / 2**20 if torch.device(device).type == "cuda" else None
    status = "fail" if result.diverged else "pass"
    return {**row, "seconds": seconds, "peak_mb": peak, "status": status,
            **({"error": f"{stem}: {result.message}"} if result.diverged else {})}


def paper_section(device, smoke: bool, report: dict, budget: Budget) -> list[dict]:
    benchmark_rows = report["sections"].get("benchmarks", {}).get("rows", [])
    plans, rows = paper_plans(smoke), []
    for stem, plan in plans.items():
        try:
            rows.append(paper_step(stem, plan, device, smoke, benchmark_rows, budget))
        except Exception as error:
            rows.append({"notebook": stem, "status": "fail", "error": f"{stem}: {one_line(error)}"})
    if smoke:
        rows.append({"notebook": "10_fds_cifar", "status": "skipped", "reason": "--smoke: study 09's step only"})
    for stem in notebook_names(None, smoke=False):
        if stem not in ("09_fds_lr_schedules", "10_fds_cifar"):
            rows.append({"notebook": stem, "status": "not attempted",
                         "reason": "only studies 09 and 10 have a one-outer-step setting here; the paper scale "
                                   "of the others is a whole study run"})
    return rows


# ----------------------------------------------------------------------------- outputs

def write_outputs(report: dict, budget: Budget, out: Path) -> None:
    report["elapsed_s"] = round(budget.elapsed(), 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def number(value, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def markdown(report: dict) -> str:
    """Four small tables, one per section, each under a line with its status and time."""
    env = report["environment"]
    title = (f"GPU check on {env['device_name']} ({env['device']}; torch {env['torch']}, CUDA {env['cuda']}), "
             f"{report['started'][:16]}, commit {env['commit']}{', --smoke' if report['smoke'] else ''}: "
             f"{report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget.")
    lines = [title, ""]
    if env["missing_packages"]:
        lines += [f"Missing packages: {', '.join(env['missing_packages'])}.", ""]
    for name in SECTIONS:
        section = report["sections"].get(name, {"status": "not run", "rows": [], "seconds": 0, "error": None})
        lines.append(f"**{name}**: {section['status']}, {section['seconds']:.0f} s"
                     + (f" ({section['error']})" if section.get("error") else ""))
        lines += TABLES[name](section["rows"]) + [""]
    return "\n".join(lines)


def notebook_table(rows):
    body = [f"| {r['notebook']} | {r['status']} | {number(r.get('seconds'), '.0f', ' s')} | "
            f"{r.get('error') or r.get('reason') or ''} |" for r in rows]
    return ["", "| notebook (smoke) | status | wall | error |", "| --- | --- | --- | --- |", *body] if body else []


def estimator_table(rows):
    body = [f"| {r['estimator']} | {r.get('dtype', '')} | {number(r.get('max_rel_error'), '.1e')} | "
            f"{number(r.get('tolerance'), 'g')} | {r['status']} | {number(r.get('cpu_s'), '.3f', ' s')} | "
            f"{number(r.get('device_s'), '.3f', ' s')} |" for r in rows]
    header = ["", "| estimator | dtype | max rel. error device vs CPU | tolerance | status | CPU | device |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    return header + body if body else []


def benchmark_table(rows):
    body = []
    for r in rows:
        if "forward_s" not in r:
            body.append(f"| {r['model']} | {r.get('T', '-')} | - | {r['status']}: {r.get('reason') or r.get('error')} "
                        f"| | | | |")
            continue
        body.append(f"| {r['model']} | {r['T']} | {r['N']} | {number(r['forward_s'], '.2f', ' s')} | "
                    f"{number(r['forward_peak_mb'], '.0f', ' MB')} | {number(r['reverse_s'], '.2f', ' s')}"
                    f"{'' if r['reverse_status'] == 'ok' else ' (' + r['reverse_status'] + ')'} | "
                    f"{number(r['reverse_peak_mb'], '.0f', ' MB')} | {number(r.get('rel_diff'), '.1e')} |")
    header = ["", "| model | T | N | forward | forward peak | reverse | reverse peak | rel. diff |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    return header + body if body else []


def paper_table(rows):
    body = [f"| {r['notebook']} | {r.get('scale', '-')} | {r['status']} | {r.get('estimator', '-')} | "
            f"{number(r.get('seconds'), '.1f', ' s')} | {number(r.get('peak_mb'), '.0f', ' MB')} | "
            f"{r.get('error') or r.get('reason') or ''} |" for r in rows if r["status"] != "not attempted"]
    rest = [r["notebook"][:2] for r in rows if r["status"] == "not attempted"]
    header = ["", "| notebook | scale | status | estimator | one outer step | peak | note |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    note = [f"Not attempted: {', '.join(rest)} (no one-outer-step setting here)."] if rest else []
    return (header + body if body else []) + ([""] + note if note else [])


TABLES = {"notebooks": notebook_table, "estimators": estimator_table, "benchmarks": benchmark_table,
          "paper_scale": paper_table}


# ----------------------------------------------------------------------------- main

def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="cuda:N, cpu or mps (default cuda:0)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out",
                        help="folder for gpu_check.json and gpu_check.md (default $OUT, else gpu-check-out/)")
    parser.add_argument("--smoke", action="store_true", help="tiny and quick: the test suite's form")
    parser.add_argument("--notebooks", nargs="+", metavar="NN", help="notebooks to run (numbers or names)")
    parser.add_argument("--seconds", type=float, default=420.0, help="soft overall budget (default 420)")
    parser.add_argument("--data", help="the datasets' folder (sets HPOLAB_DATA; default data/ here)")
    parser.add_argument("--runs", help="folder for the notebooks' run folders (default: a temporary folder)")
    parser.add_argument("--jobs", type=int, help="notebooks at a time (default 4 on a GPU, 1 on a CPU)")
    parser.add_argument("--notebook-timeout", type=float, help="seconds per notebook (default 240; --smoke 150)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    device = torch.device(args.device)
    if args.data:
        os.environ["HPOLAB_DATA"] = str(Path(args.data).resolve())  # read here and by the notebooks' kernels
    out, budget = Path(args.out), Budget(args.seconds)
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="gpu-check-runs-"))
    jobs = args.jobs or (1 if device.type == "cpu" else 4)
    timeout = args.notebook_timeout or (150.0 if args.smoke else 240.0)
    names = notebook_names(args.notebooks, args.smoke)
    report = {"script": "benchmarks/gpu_check.py", "started": dt.datetime.now().isoformat(timespec="seconds"),
              "smoke": args.smoke, "budget_s": args.seconds, "runs": str(runs), "jobs": jobs,
              "environment": environment(device), "sections": {}}
    measures = {
        "estimators": lambda: estimators_section(device, args.smoke),
        "benchmarks": lambda: benchmarks_section(device, args.smoke, budget),
        "notebooks": lambda: notebooks_section(device, names, runs, timeout, jobs, budget),
        "paper_scale": lambda: paper_section(device, args.smoke, report, budget),
    }
    for name in RUN_ORDER:
        run_section(name, measures[name], budget, report, out)
    report["sections"] = {name: report["sections"][name] for name in SECTIONS}
    write_outputs(report, budget, out)
    print(f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.md'} ({budget.elapsed():.0f} s)")
    return 0 if all(report["sections"][name]["status"] != "fail" for name in SECTIONS) else 1


if __name__ == "__main__":
    sys.exit(main())
