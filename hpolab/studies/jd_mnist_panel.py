"""Study 02's widget panel: one run per click (:func:`run_one`) of JD or a fixed reference
network, with the gradient step, eta0 and the batch size to set, drawing the training accuracy
live.

Kept apart from the study loop (:mod:`hpolab.studies.jd_mnist`, which re-exports :func:`panel` for
the notebook and the panel tests); it builds its run from :mod:`hpolab.studies.jd_mnist_setup`,
as the study does.
"""

from __future__ import annotations

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.runner import run
from hpolab.studies.jd_mnist_setup import BATCH_SIZE, LR, configure, make_setup, study_threads
from hpolab.validation import check_count


def run_one(method: str = "jd", p: float = 0.5, lr: float = LR, eta0: float = LR, batch_size: int = BATCH_SIZE,
            iterations: int = 3000, seed: int = 0, scale: str = "cpu", device: str = "cpu",
            callback=None, should_stop=None) -> History:
    """One run of the study (what the widget panel's Run button calls)."""
    torch_device = resolve_device(device)
    setup = make_setup(scale, torch_device, lr, eta0, batch_size)
    built, problem = configure(setup, method, p)
    with study_threads(torch_device):
        return run(built, problem, check_count("iterations", iterations), seed=seed, callback=callback,
                   should_stop=should_stop)


def panel(values: dict | None = None, **overrides):
    """The study's widget panel, built from the notebook's parameters (``globals()``) and
    ``overrides``: method (JD or a fixed reference), p, iterations, scale, seed, device, step,
    eta0, batch size; draws the training accuracy live."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    lr = float(values.get("lr") or LR)
    extra = {
        "lr": w.FloatLogSlider(value=lr, base=10, min=-3, max=0, step=0.125, description="step 1/beta_x",
                               readout_format=".3g"),
        "eta0": w.BoundedFloatText(value=float(values.get("eta0") or lr), min=0.0, max=1.0, step=0.05,
                                   description="eta0"),
        "batch_size": w.Dropdown(options=[32, 64, 128, 256, 512, 1000], value=values.get("batch_size") or BATCH_SIZE,
                                 description="batch"),
    }
    methods = {"JD": "jd", "ReLU (fixed)": "relu", "linear (fixed)": "linear"}
    return panel_for(run_one, methods, {"jd": {"p"}, "relu": set(), "linear": set()}, values, extra,
                     y="train_accuracy", log_y=False)
