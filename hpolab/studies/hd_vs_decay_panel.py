"""Studies 06 and 07's widget panel: one training run at the scale's data size
(:func:`run_one`, what the Run button calls) and the panel itself (:func:`panel`). Apart from
the studies' run, which does not need ipywidgets.
"""

from __future__ import annotations

import functools

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.studies.hd_vs_decay_setting import (
    BATCH_SIZE, STUDY_TASKS, Setting, _sizes, _tasks, hd_task_data, train_setting,
)


def run_one(task: str = "mnist-mlp", scale: str = "cpu", optimizer: str = "sgdn", schedule: str = "hd",
            lr: float = 0.01, hypergrad_lr: float = 1e-3, epochs: int = 1, seed: int = 0, device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One training run at the scale's data size (what the widget panel's Run button calls)."""
    _tasks(scale, [task], {})
    n_train, n_test, _ = _sizes(scale, task)
    torch_device = resolve_device(device)
    data = hd_task_data(task, n_train, n_test, torch_device)
    setting = Setting(task, optimizer, schedule, lr, hypergrad_lr if schedule == "hd" else 0.0)
    return train_setting(setting, data, epochs, seed, BATCH_SIZE, torch_device, callback=callback,
                         should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The widget panel of studies 06 and 07, from the notebook's parameters (``globals()``) and
    ``overrides``: schedule, scale, seed, device, optimizer, alpha_0, beta, epochs."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    scale = values.get("scale") or "cpu"
    task = values.get("task") or (values.get("tasks") or STUDY_TASKS.get(scale, ["mnist-mlp"]))[0]
    extra = {
        "optimizer": w.Dropdown(options=[("SGD", "sgd"), ("SGDN", "sgdn"), ("Adam", "adam")], value="sgdn",
                                description="optimizer"),
        "lr": w.FloatLogSlider(value=0.01, base=10, min=-6, max=0, step=0.25, description="alpha_0",
                               readout_format=".1e"),
        "hypergrad_lr": w.FloatLogSlider(value=1e-3, base=10, min=-9, max=-1, step=0.5, description="beta",
                                         readout_format=".0e"),
        "epochs": w.BoundedIntText(value=1, min=1, max=500, description="epochs"),
    }
    n_train = _sizes(scale, task)[0]
    steps_per_epoch = (n_train or (60_000 if task == "mnist-mlp" else 5085)) // BATCH_SIZE
    uses = {"hd": {"hypergrad_lr"}, "constant": set(), "decay": set()}
    values.setdefault("schedule", "hd")
    return panel_for(functools.partial(run_one, task=task), {"constant": "constant", "HD": "hd", "lr-decay": "decay"},
                     uses, values, extra, selector="schedule", x="step", y="objective",
                     total=lambda s: s["epochs"] * steps_per_epoch)
