"""Study 14's widget panel: one measurement of one estimator at the scale's K-sweep horizon
(:func:`run_one`, what the Run button calls) and the panel itself (:func:`panel`). Apart from
the study's run, which does not need ipywidgets.
"""

from __future__ import annotations

import pandas as pd

from hpolab.devices import resolve_device
from hpolab.history import History
from hpolab.hypergrad import make_estimator
from hpolab.studies.common import check_scale
from hpolab.studies.estimator_atlas_claims import FAMILIES
from hpolab.studies.estimator_atlas_measure import applies, measure
from hpolab.studies.estimator_atlas_setting import ATLAS_ESTIMATORS, SIZES, check_windows, family_data, setting, variants
from hpolab.validation import check_positive


def run_one(estimator: str = "forward", q: int = 5, mu: float = 1e-3, H: int = 1, W: int = 5,
            family: str = "mlp", seed: int = 0, scale: str = "smoke", device: str = "cpu", callback=None,
            should_stop=None) -> History:
    """One measurement at the scale's K-sweep horizon T with windows of W steps: a row per
    hyperparameter (``objective``: the estimate's absolute error there); the label says the
    relative error and the time."""
    sizes = SIZES[check_scale(scale)]
    T = sizes["k_horizon"]
    check_windows(T, W=W)
    (label, name, settings), = variants([estimator], [H], [q])
    reason = applies(label, name, settings, family, T)
    if reason:
        raise ValueError(f"{label} does not apply to {family}: {reason}")
    task, hyper = setting(family, family_data(family, scale, resolve_device(device)), scale, T, W)
    reference = make_estimator("reverse")(task, hyper, seed)
    found = measure(task, hyper, label, name, settings, reference.grad, seed, check_positive("mu", mu), 1, reference)
    rows = [{"step": k, "iteration": k, "objective": found["error"], "error": found["error"]}
            for k in range(int(hyper.pack().numel()))]
    for row in rows:
        if callback is not None:
            callback(row)
    text = f"{label} on {family} (T={T}, W={W}): relative error {found['error']:.2g}, {found['seconds']:.3g} s"
    return History(pd.DataFrame(rows), name, text, family, seed, config={"W": W, **settings})


def panel(values: dict | None = None, **overrides):
    """Study 14's widget panel: estimator, q and mu (zeroth-order), H (greedy), W, family, seed,
    scale, device; each run measures one estimator and says its error and time."""
    import ipywidgets as w

    from hpolab.widgets import panel_for

    values = {**(values or {}), **overrides}
    families = values.get("families") or list(FAMILIES)
    extra = {"H": w.BoundedIntText(value=1, min=1, max=10_000, description="H"),
             "family": w.Dropdown(options=list(FAMILIES), value=families[0], description="family")}
    values.setdefault("estimator", "forward")
    values["q"] = (values.get("q_values") or [5])[0]
    if not values.get("W"):
        values["W"] = 5
    uses = {"zeroth-order": {"q", "mu"}, "greedy": {"H"}}
    return panel_for(run_one, list(ATLAS_ESTIMATORS), uses, values, extra, selector="estimator", x="step", y="error",
                     log_y=True, total=lambda s: 1)
