"""The widget panel: pick a method and its settings, press Run, watch the run join the figure.

A panel is built from a study's ``run_one`` function and the controls it takes. Run
trains in a background thread while a plotly ``FigureWidget`` gains the run's line live
(the objective, or any hyperparameter or accuracy the rows carry: the plot menu switches
every line);
Stop ends the run cleanly (the history keeps what it computed); each new run adds a
line, Clear removes them. Controls that a method does not use are hidden for it, and
each control enforces its allowed range itself (a slider cannot leave (0, 1)).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import ipywidgets as w
import plotly.graph_objects as go

from hpolab.devices import device_names, resolve_device
from hpolab.history import History

REFRESH_EVERY = 20  # rows between live figure updates...
REFRESH_SECONDS = 0.5  # ...or this long since the last one, whichever comes first
UNPLOTTED = {"step", "iteration", "function_evaluations", "hvp_evaluations", "seed", "runs"}


def p_slider(value: float = 0.5) -> w.FloatSlider:
    """Gradient-step probability; the slider's own bounds keep it inside (0, 1)."""
    return w.FloatSlider(value=value, min=0.05, max=0.95, step=0.05, description="p", continuous_update=False)


def mu_slider(value: float = 1e-3) -> w.FloatLogSlider:
    """Gaussian smoothing radius, > 0 by construction (a log slider)."""
    return w.FloatLogSlider(value=value, base=10, min=-6, max=0, step=0.25, description="mu", readout_format=".1e")


def device_dropdown(value: str = "cpu") -> w.Dropdown:
    """``auto`` (the first GPU, else the CPU: it names which) and the devices actually present,
    GPUs by name."""
    names = device_names()
    chosen = str(resolve_device("auto"))
    options = [(f"auto ({chosen})", "auto")]
    options += [(f"{key} ({name})" if key != "cpu" else "cpu", key) for key, name in names.items()]
    return w.Dropdown(options=options, value=value if value in names or value == "auto" else "cpu",
                      description="device")


class RunPanel:
    """A control panel around ``run_one(**settings, callback=..., should_stop=...) -> History``.

    Args:
      run_one: runs one configuration; receives every control's value by name.
      controls: the controls, by the keyword ``run_one`` takes them as; must include the
        ``selector`` (a Dropdown, ``method`` by default).
      uses: for each value of the selector, the names of the controls it uses; other
        controls are hidden while it is selected (controls named for no value are always shown).
      x, y: the history columns the live figure plots.
      total: the value of x at the end of a run with the given settings, for the progress
        bar (default: the ``iterations`` setting).
    """

    def __init__(self, run_one: Callable[..., History], controls: dict[str, w.Widget],
                 uses: dict[str, set[str]], x: str = "iteration", y: str = "objective", log_y: bool = True,
                 total: Callable[[dict], float] | None = None, selector: str = "method"):
        self.run_one, self.controls, self.uses, self.x, self.y = run_one, controls, uses, x, y
        self.selector = selector
        self.total = total or (lambda settings: settings.get("iterations") or 1)
        self.histories: list[History] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.clear_button = w.Button(description="Clear", icon="trash")
        self.progress = w.FloatProgress(value=0, min=0, max=1, description="progress")
        self.status = w.Label("")
        # stable CSS classes, for browser tests and user styling: hpolab-panel, hpolab-control-<name>,
        # hpolab-run / -stop / -clear, hpolab-progress, hpolab-status
        for name, control in controls.items():
            control.add_class(f"hpolab-control-{name}")
        for name, widget in [("run", self.run_button), ("stop", self.stop_button), ("clear", self.clear_button),
                             ("progress", self.progress), ("status", self.status)]:
            widget.add_class(f"hpolab-{name}")
        self.log_y = log_y
        self.figure = go.FigureWidget(layout={"template": "plotly_white", "height": 420,
                                              "xaxis_title": x, "yaxis_title": y,
                                              "yaxis_type": "log" if log_y else "linear"})
        # what the figure plots: the objective, a hyperparameter, an accuracy... (any numeric
        # column of the runs' rows; the choices grow as rows arrive)
        self.plot = w.Dropdown(options=[y], value=y, description="plot")
        self.plot.add_class("hpolab-plot")
        self.plot.observe(lambda _: self._redraw_all(), names="value")
        self._runs: list[tuple[object, list[dict]]] = []  # (trace, rows) of every run drawn
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self._stop.set())
        self.clear_button.on_click(lambda _: self.clear())
        controls[selector].observe(lambda _: self._show_used(), names="value")
        self._show_used()
        buttons = w.HBox([self.run_button, self.stop_button, self.clear_button, self.progress, self.plot])
        self.widget = w.VBox([w.HBox(list(controls.values()), layout={"flex_flow": "row wrap"}),
                              buttons, self.status, self.figure])
        self.widget.add_class("hpolab-panel")

    def _show_used(self) -> None:
        method = self.controls[self.selector].value
        optional = set().union(*self.uses.values())
        for name, control in self.controls.items():
            visible = name not in optional or name in self.uses.get(method, set())
            control.layout.display = None if visible else "none"

    def settings(self) -> dict:
        """The values of the visible controls (hidden ones do not apply to the method)."""
        return {name: c.value for name, c in self.controls.items() if c.layout.display != "none"}

    def label(self, settings: dict) -> str:
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())

    def start(self) -> None:
        """Run the current settings in the background (one run at a time)."""
        if self._thread is not None and self._thread.is_alive():
            return
        settings = self.settings()
        self._stop.clear()
        self.figure.add_scatter(x=[], y=[], mode="lines", name=self.label(settings))
        trace = self.figure.data[-1]
        self._thread = threading.Thread(target=self._work, args=(settings, trace), daemon=True)
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"running {self.label(settings)}"
        self._thread.start()

    def _work(self, settings: dict, trace) -> None:
        rows: list[dict] = []
        self._runs.append((trace, rows))
        budget = self.total(settings)
        last_draw = [time.monotonic()]

        def callback(row: dict) -> None:
            rows.append(row)
            if len(rows) % REFRESH_EVERY == 0 or time.monotonic() - last_draw[0] > REFRESH_SECONDS:
                self._draw(trace, rows, row.get(self.x, 0) / budget)
                last_draw[0] = time.monotonic()

        try:
            history = self.run_one(**settings, callback=callback, should_stop=self._stop.is_set)
            self.histories.append(history)
            final = history.frame[self.y].iloc[-1] if self.y in history.frame else history.final_objective
            self.status.value = f"{history.label}: {history.status}, final {self.y} {final:.4g}" + (
                f" ({history.message})" if history.message else "")
        except Exception as error:  # the panel reports; the kernel stays usable
            self.status.value = f"error: {type(error).__name__}: {error}"
        finally:
            self._draw(trace, rows, 1.0)
            self.run_button.disabled, self.stop_button.disabled = False, True

    def _draw(self, trace, rows: list[dict], fraction: float) -> None:
        column = self.plot.value
        self._offer_columns(rows)
        with self.figure.batch_update():
            trace.x = [row.get(self.x) for row in rows]
            trace.y = [row.get(column) for row in rows]
        self.progress.value = min(max(fraction, 0.0), 1.0)

    def _offer_columns(self, rows: list[dict]) -> None:
        """Let the plot menu offer every numeric column the rows carry (counters aside)."""
        if not rows:
            return
        found = [k for k, v in rows[-1].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and k not in UNPLOTTED and k != self.x]
        new = [k for k in found if k not in self.plot.options]
        if new:
            self.plot.options = [*self.plot.options, *new]

    def _redraw_all(self) -> None:
        """Draw every run's line again with the column the plot menu now shows."""
        column = self.plot.value
        with self.figure.batch_update():
            for trace, rows in self._runs:
                trace.y = [row.get(column) for row in rows]
            self.figure.layout.yaxis.title.text = column
            self.figure.layout.yaxis.type = "log" if self.log_y and column == self.y else "linear"

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current run ends (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def clear(self) -> None:
        """Remove every line and forget the runs."""
        self.figure.data = ()
        self._runs.clear()
        self.histories.clear()
        self.progress.value = 0
        self.status.value = ""

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


SCALES = ("smoke", "cpu", "paper")


def standard_control(name: str, value) -> w.Widget | None:
    """The shared control for one of the common study settings, its range enforced by the widget.

    p in (0, 1) (slider), mu > 0 (log slider), q and the window W >= 1, seed >= 0, iterations
    >= 1, scale one of smoke / cpu / paper, device one of the devices present (GPUs by name).
    None for a name with no standard control.
    """
    if name == "p":
        return p_slider(float(value))
    if name == "mu":
        return mu_slider(float(value))
    if name == "device":
        return device_dropdown(str(value))
    if name == "scale":
        return w.Dropdown(options=list(SCALES), value=value if value in SCALES else "cpu", description="scale")
    if name in ("q", "W", "window"):
        return w.BoundedIntText(value=max(int(value), 1), min=1, max=10_000, description=name)
    if name == "seed":
        return w.BoundedIntText(value=max(int(value), 0), min=0, max=2**31 - 1, description="seed")
    if name == "iterations":
        return w.BoundedIntText(value=max(int(value), 1), min=1, max=1_000_000, step=100, description="iterations")
    return None


def panel_for(run_one: Callable[..., History], methods: dict[str, str] | list[str], uses: dict[str, set[str]],
              values: dict | None = None, extra: dict[str, w.Widget] | None = None, selector: str = "method",
              **panel_options) -> RunPanel:
    """A RunPanel built from a notebook's own parameters.

    Args:
      run_one: the study's one-run function; a control is made for each standard setting
        (method, p, mu, q, W / window, iterations, scale, seed, device) that it takes as a keyword.
      methods: the method choices, label -> value (or a list of values).
      uses: for each method, the names of the settings it uses (others are hidden for it).
      values: the notebook's parameter values (``globals()`` in a notebook, or
        ``{name: parameter.default}``); ``p_values`` / ``seeds`` lists give the first entry.
        A setting missing from it takes ``run_one``'s default.
      extra: further controls by keyword (added after the standard ones).
      selector: the keyword the method choice is passed as (``"schedule"`` for a study whose
        "methods" are schedules); ``values`` may name its value under that keyword.
      panel_options: passed to RunPanel (x, y, log_y, total).
    """
    import inspect

    values = dict(values or {})
    for name, plural in (("p", "p_values"), ("seed", "seeds"), ("method", "methods")):
        if name not in values and isinstance(values.get(plural), (list, tuple)) and values[plural]:
            values[name] = values[plural][0]
    defaults = {name: parameter.default for name, parameter in inspect.signature(run_one).parameters.items()
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}
    options = list(methods.items()) if isinstance(methods, dict) else list(methods)
    choices = [v for _, v in options] if isinstance(methods, dict) else options
    method = values.get(selector, values.get("method", defaults.get(selector)))
    controls: dict[str, w.Widget] = {
        selector: w.Dropdown(options=options, value=method if method in choices else choices[0], description=selector)}
    for name in ("p", "mu", "q", "W", "window", "iterations", "scale", "seed", "device"):
        if name in defaults:
            value = values.get(name)
            if value is None or (name in ("q", "W", "window", "iterations") and value == 0):
                value = defaults[name]  # 0 in a notebook's parameters means "the scale's default"
            control = standard_control(name, value) if value is not inspect.Parameter.empty else None
            if control is not None:
                controls[name] = control
    controls.update(extra or {})
    return RunPanel(run_one, controls, uses, selector=selector, **panel_options)
