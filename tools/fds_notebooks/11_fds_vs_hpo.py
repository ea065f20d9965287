"""Cells of notebooks/11_fds_vs_hpo.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 11 · FDS against black-box HPO and hypergradient descent

*Paper:* **Non-greedy Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.4 and Figure 1 (`../shared/papers/fds-long-horizons.md`).

Nine hyperparameters of SGD, within the paper's wide ranges: **7 learning rates** (one per
seventh of the run) in [−1, 1], **one momentum** in [−1.5, 1.5] and **one weight decay** in
[−4·10⁻³, 4·10⁻³]. Many points in this box diverge. Methods:

* **FDS**: starts at 0, exact non-greedy hypergradients, and sign-based steps (γ = 0.03, 0.1,
  5·10⁻⁴) that stay in the box;
* **random search**, **Bayesian optimization** (Optuna's GP sampler), **Hyperband** (random
  points, Optuna's Hyperband pruner over training steps) and a **BOHB-like** method (TPE with
  the same pruner). All of them are in `hpolab.methods.blackbox`;
* **HD**: SGD-HD adapting α online from 0, given β = 0.9 and ξ = 5·10⁻⁴. Its own
  hypergradient rate is the best of {10⁻⁴, 10⁻³, 10⁻²} on the validation loss, and all three
  trainings are charged to it.

Each method gets the **same wall time** (`cpu`: 75 s on LeNet/MNIST, 140 steps of batch 64).
At `smoke` scale each gets the same number of training steps, so the run is deterministic.
**Regret** is the best grid point's test accuracy minus the test accuracy of the configuration
with the lowest validation loss found so far. The grid is constant α ∈ {0.01, 0.03, 0.1} ×
β ∈ {0, 0.9} × ξ ∈ {0, 5·10⁻⁴}, and its point of lowest validation loss is the reference.

**The claim:** FDS reaches a given regret with far fewer training runs (and far sooner) than
the black-box methods (zero regret about 20x sooner than BOHB in the paper), and beats HD.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (75 s per method, minutes) | paper (CIFAR-size budget of an hour per method)
methods: list = ["fds", "random-search", "bayesian", "hyperband", "bohb", "hd"]  # any of these
seconds: float = 0.0  # wall time per method; 0 takes the scale default (cpu: 75)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished method (and FDS outer step) under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv / grid.csv ("" saves nothing; `hpolab run` sets it)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab.studies import fds_vs_hpo
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## The grid reference, then every method for the same budget
One call into the library, with progress bars. Finished methods are cached under `runs/cache/`.
"""

RUN = """\
result = fds_vs_hpo.run_hpo_study(scale, methods=methods, seconds=seconds or None, estimator=estimator,
                                  device=device, cache=cache)
print(f"hypergradients by {result.parameters['estimator']} mode; budget {result.parameters['seconds']} s per method")
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
`runs`: trainings (trials, outer steps), of which `diverged` blew up. `training steps`: the
budget actually spent. `best val loss` / `test acc`: of the configuration of lowest validation
loss found. `regret`: against the grid's best point. `runs to regret <= 0.01`: trainings until
the regret first fell to 1 % (NaN: never). At `smoke` scale the counts are deterministic. At
`cpu` scale they depend on the machine's speed.
"""

SUMMARY = """\
show(result.summary, digits=3)
"""

FIGURES_TEXT = """\
## Regret against wall time and against trainings
One line per method: the regret of its best configuration so far (the paper's Figure 1).
"""

FIGURES = """\
fds_vs_hpo.regret_figure(result, x="wall_time").show()
fds_vs_hpo.regret_figure(result, x="runs").show()
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
"""

CLAIMS = """\
print("\\n".join(fds_vs_hpo.findings(result)))
"""

FOUND = """\
### What we found at `cpu` scale (LeNet, 8960 MNIST images, T = 140, 75 s per method)

`hpolab run 11 --scale cpu` took 7 minutes here (the 12 grid trainings, then six methods
for 75 s each). An FDS outer step (a reverse-mode hypergradient) took 2.2 s, about three
trainings' worth. A black-box trial took 0.12-0.34 s (median) when it diverged early and 0.73-0.84 s when it ran
to the end.

* **FDS reaches a given regret with far fewer trainings than the black-box methods.** *This
  holds, by a wide margin.* The reference is the grid's best point (α 0.03, β 0.9, ξ 5·10⁻⁴:
  test accuracy 0.9175). FDS came within 1 % of it after 4 trainings (9.4 s), at α ≈ 0.09,
  β 0.2, ξ −10⁻³. It ended at regret 0.0045 after 35 outer steps. No black-box method came
  within 1 % in 75 s. GP-BO got closest (regret 0.258 after 157 trials, 116 of them
  diverged). Random search (327 trials) and Hyperband (386) ended at 0.403, and BOHB-like at
  0.822. In the paper's wide box most random points have a negative rate or |β| > 1: 316 of
  random search's 327 trials diverged, and 443 of BOHB-like's 488. Its TPE kept proposing
  from that region, and its only complete trial had validation loss 5640.
* **FDS beats HD.** *Yes.* HD from α = 0 with β_hd = 10⁻³ or 10⁻² diverged within the 140 steps.
  With 10⁻⁴, α grew too slowly to train (validation loss 2.29, regret 0.758).
* **Reading.** The black-box methods were not given the prior knowledge the grid uses (positive
  rates, β below 1). That is the paper's point: with weak priors over 9 hyperparameters, they
  spend their budget on divergent points, while FDS walks out from 0 along the hypergradient
  and stays inside the box.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a method, a wall-time budget and the device, then **Run**. The live figure gains the
test accuracy of each training (a trial, or an outer step of FDS) against wall time, and each
run adds a line. Panel runs are not cached.
"""

PANEL = """\
fds_vs_hpo.panel(globals())
"""

LOOK = """\
## What to look at
* **Where each line starts.** A black-box method's first trials are random points of a wide
  box, and many diverge. FDS starts at 0, where nothing moves, and walks out.
* **Regret against trainings.** Count how many trainings each method needs to reach a given
  regret, and compare with the wall-time figure. An FDS step costs about three trainings here
  (reverse mode), and a pruned Hyperband trial costs less than one.
"""
