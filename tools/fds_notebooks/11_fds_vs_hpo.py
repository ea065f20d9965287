"""Cells of notebooks/11_fds_vs_hpo.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 11 · FDS against black-box HPO and hypergradient descent

*Paper:* **Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.4 and Figure 1 (`../shared/papers/fds-long-horizons.md`).
Settings, and where each comes from: `docs/studies/11_fds_vs_hpo.md`.

Nine hyperparameters of SGD, within the paper's wide ranges: **7 learning rates** (one per
seventh of the run) in [−1, 1], **one momentum** in [−1.5, 1.5] and **one weight decay** in
[−4·10⁻³, 4·10⁻³]. Many points in this box diverge. Methods:

* **FDS**: starts at 0, exact non-greedy hypergradients, sign-based steps γ = 0.1, 0.1 and
  3·10⁻⁴ (halved on a sign flip) that stay in the box, and the authors' stopping rule (every
  step below 5 % of its value). γ and the rule come from the authors' script for Figure 1
  (the paper's text gives neither); a *start check* keeps γ only if two steps of it from 0
  still train, else scales it by 1/3 or 1/10 (shown below). That script also trains early
  outer steps on smaller budgets; here every outer step trains the full run, which can only
  slow FDS down. As in that script (`clamp_grads_range` 3), every coordinate of the training
  gradient is clamped to [−3, 3] before the SGD update, in the trainings of FDS, of the
  black-box methods and of the grid (not HD's). A diverged training sends FDS halfway back
  to the last hyperparameters that trained, with halved steps (the paper does not say what
  its loop does then);
* **random search**, **Bayesian optimization** (Optuna's GP sampler), **Hyperband** (random
  points, Optuna's Hyperband pruner over training steps) and a **BOHB-like** method (TPE with
  the same pruner), in `hpolab.methods.blackbox` (the paper: HpBandSter's RS, BO, HB, BOHB);
* **HD**: SGD-HD adapting α online from 0, given β = 0.9 and ξ = 5·10⁻⁴. Its own
  hypergradient rate is the best of {10⁻⁴, 10⁻³, 10⁻²} on the validation loss, and all three
  trainings are charged to it.

Every method gets the **same budget** per seed, and each curve is the mean over seeds.
**Regret** is the best grid point's test accuracy minus the test accuracy of the configuration
with the lowest validation loss found so far. The grid (the paper: "an expensive grid search
around the most common hyperparameters") is a peak rate in {0.01, 0.03, 0.1, 0.3}, constant
or cosine-annealed over the seven windows, × β ∈ {0, 0.9} × ξ ∈ {0, 5·10⁻⁴}; its point of
lowest validation loss is the reference.

`paper` scale: the paper's WRN-16-1 on CIFAR-10 for 50 epochs, 8 seeds, 100 hours per method
and seed (the paper's budget, on a GTX 2080). `cpu` scale, a **stand-in**: LeNet on MNIST
(140 steps of batch 64), one seed, 100 s per method. `smoke`: every method gets the same
number of training steps, so that the run is deterministic. The claims the run checks are
listed, with their verdicts, at the end of the notebook.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (LeNet/MNIST stand-in, 100 s per method) | paper (WRN-16-1/CIFAR-10, 100 h, 8 seeds)
methods: list = ["fds", "random-search", "bayesian", "hyperband", "bohb", "hd"]  # any of these
seconds: float = 0.0  # wall time per method and seed; 0 takes the scale default (cpu: 100)
seeds: int = 0  # seeds per method; 0 takes the scale default (cpu: 1, paper: 8)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished method (and FDS outer step) under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv / grid.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import fds_vs_hpo
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## The grid reference, then every method for the same budget
One call into the library, with progress bars. Finished methods are cached under `runs/cache/`.
"""

RUN = """\
result = fds_vs_hpo.run_hpo_study(scale, methods=methods, seconds=seconds or None, seeds=seeds or None,
                                  estimator=estimator, device=device, cache=cache)
print(f"hypergradients by {result.parameters['estimator']} mode; budget {result.budget:g} {result.axis_unit} "
      f"per method and seed, {result.parameters['seeds']} seed(s)")
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
Means over seeds. `runs`: trainings (trials, outer steps), of which `diverged` blew up.
`training steps`: the budget actually spent. `best val loss`: of the configuration of lowest
validation loss found. `regret`: of that configuration against the grid's best point (and the
worst seed's). The next column: when the mean regret first fell to 0.01, the "zero regret" of
the claims (NaN: never). At `smoke` scale the budget is in training steps and the counts are
deterministic; at `cpu` scale they depend on the machine's speed. Then the five best grid
points by validation loss, and FDS's start check.
"""

SUMMARY = """\
show(result.summary, digits=3)
show(result.grid.sort_values("val loss").head(5), digits=3)
show(result.gamma_check, digits=3)
"""

FIGURES_TEXT = """\
## Regret against the budget and against trainings
One line per method: the mean regret of its best configuration so far (the paper's Figure 1);
then, for the first seed, against the number of trainings.
"""

FIGURES = """\
fds_vs_hpo.regret_figure(result).show()
fds_vs_hpo.regret_figure(result, x="runs").show()
"""

LOOK = """\
## What to look at
* **Where each line starts.** A black-box method's first trials are random points of a wide
  box, and many diverge. FDS starts at 0, where nothing moves, and walks out.
* **Regret against trainings.** Count how many trainings each method needs to reach a given
  regret, and compare with the wall-time figure. An FDS step costs a few trainings (reverse
  mode on a CPU), and a pruned Hyperband trial costs less than one.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a method, a wall-time budget, a seed and the device, then **Run**. The live figure gains
the test accuracy of each training (a trial, or an outer step of FDS) against wall time, and
each run adds a line. Panel runs are not cached.
"""

PANEL = """\
fds_vs_hpo.panel(globals())
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
Each claim of section 5.4, its source, what this run measured and the verdict (computed by
`fds_vs_hpo.CLAIMS`; `not testable here` at a scale too small to decide, or when the budget is
too short to decide). "Zero regret" is a regret of at most 0.01, "~20x sooner" at least 10x
(`hpolab/studies/fds_claims.py`, `docs/studies/11_fds_vs_hpo.md`).
"""

CLAIMS = """\
ledger = claims.report("11_fds_vs_hpo", result, scale, results_dir)
"""
