"""Cells of notebooks/09_fds_lr_schedules.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 09 · FDS: learning a learning-rate schedule from zero over one epoch

*Paper:* **Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.2 and Figure 3 (`../shared/papers/fds-long-horizons.md`).
Settings, and where each comes from: `docs/studies/09_fds_lr_schedules.md`.

LeNet trains for one epoch (T steps) with SGD and momentum β = 0.9. The learning rate α_t
starts at **0** at every step, and three methods learn it, each for the same number of outer
steps:

* **greedy (H = 1)**, the paper's: one rate per step (no sharing), moved by the hypergradient
  of the validation loss right after its step (θ_{t−1} held fixed), without HD's trick of
  starting α_t at α_{t−1} (the paper's "transparent" greedy setting);
* **non-greedy, W = 1**: exact hypergradients of the final validation loss, one rate per step;
* **FDS**: the same exact hypergradients, one rate shared by each window of W steps (the
  paper: W ~ 50 of T ~ 500; here T/10).

Every outer step trains from scratch with a new seed (Xavier initialization and data order)
and moves each rate by γ against the sign of its hypergradient, halving γ for that rate when
the sign flips; rates stay in [−1, 1] (section 5.4's range for α). **How γ is set:** section
5.2 gives none; the first candidate is 0.1, the outer rate of the paper's Algorithm 1 and the
default step of the authors' code. A *start check* (one training per candidate, no method's
result) keeps it only if two steps of it from 0 still train (validation loss below 0.9 of the
untrained network's), else takes γ/3, then γ/10: a step into a dead or diverged network is
never undone, because the hypergradient there has no sign to flip. The table below shows every
candidate tried. As in the authors' code (`main.py`: `clamp_grads_range` 3), every
coordinate of the training gradient is clamped to [−3, 3] before the SGD update, in every
training here (the paper's text does not say; the hypergradients differentiate the clamped
step). A training that still diverges sends the rates halfway back to the last ones that
trained, with halved steps (the paper does not say what its loop does then).
The reference is **cosine annealing**,
its peak the best of 0.01, 0.03 and 0.1 on the validation loss (all three are shown below).
Each final schedule is evaluated by its test accuracy from fresh seeds.

The paper runs MNIST and SVHN; SVHN is not in `data/`, so its claims are not testable here.
`cpu` scale: 12 800 training images, batch 64 (T = 200), W = 20, 20 outer steps, 500
validation images; `paper` scale: 57 000 images and 5 % held out, batch 128 (T = 445),
W = 50, 50 outer steps. The claims the run checks are listed, with their verdicts, at the end.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (T 200, 20 outer steps, minutes) | paper (one MNIST epoch, 50 outer steps)
dataset: str = "mnist"  # mnist | svhn (used when its files are in data/SVHN, else MNIST with a note)
methods: list = ["greedy", "non-greedy", "fds"]  # greedy (H 1, W 1), non-greedy (W 1), fds (W steps share one rate)
W: int = 0  # steps per shared rate for fds; 0 takes the scale default (cpu: 20, T/10; paper: 50)
gamma: float = 0.1  # the first outer step tried (Algorithm 1: 0.1), > 0; the start check may take gamma/3 or /10
outer_steps: int = 0  # 0 takes the scale default (cpu: 20, paper: 50)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished outer step under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import fds_schedules
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## Learn the schedules
One call into the library, with progress bars. Every finished outer step is cached under
`runs/cache/`: after an interruption, run the cell again and it resumes.
"""

RUN = """\
result = fds_schedules.run_schedule_study(scale, dataset=dataset, methods=methods, W=W or None, gamma=gamma,
                                          outer_steps=outer_steps or None, estimator=estimator, device=device,
                                          cache=cache)
if result.note:
    print(result.note)
print(f"hypergradients by {result.parameters['estimator']} mode")
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
`runs`: trainings used (one per outer step, plus the last). `mean lr` / `max lr`: of the final
schedule. `final val loss`: the last run's. `test acc`: mean (and sd) over fresh seeds of
training with the final schedule. The cosine row counts its three peak trials; the second
table shows every peak tried for it, the third every γ the start check tried.
"""

SUMMARY = """\
show(result.summary, digits=3)
show(fds_schedules.cosine_table(result), digits=3)
show(result.gamma_check, digits=3)
print(f"outer step used: gamma = {result.parameters['gamma_used']:.3g}")
"""

FIGURES_TEXT = """\
## The schedules
First: every method's final schedule against the inner step, with cosine annealing dashed.
Then the validation loss of each outer step's run. Last, each method's schedule at every outer
step, darker when later (the paper's Figure 3).
"""

FIGURES = """\
fds_schedules.schedule_figure(result).show()
fds_schedules.outer_figure(result).show()
for history in result.histories:
    fds_schedules.evolution_figure(history).show()
"""

LOOK = """\
## What to look at
* **Greedy's schedule.** See where it sits against FDS's and cosine's. A greedy step sees
  only the next validation loss, and a larger rate helps that loss less than it helps the
  final one.
* **W = 1 against FDS.** Compare how jagged the W = 1 schedule is with FDS's steps. Each rate
  of the W = 1 schedule is moved by one noisy hypergradient of its own; so is greedy's.
* **The test accuracies.** Check them against the `test acc sd` column before reading a
  difference as real.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a method, W (FDS only), γ, the number of outer steps, a seed and the device, then
**Run**. The live figure gains the test accuracy of each outer step's run, and each run adds
a line. Panel runs are not cached.
"""

PANEL = """\
fds_schedules.panel(globals())
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
Each claim of section 5.2, its source, what this run measured and the verdict (computed by
`fds_schedules.CLAIMS`; `not testable here` at a scale too small to decide, or for SVHN when
it is absent). How each sentence is read as a test ("works": not below by more than two
standard errors) is stated in `hpolab/studies/fds_claims.py` and
`docs/studies/09_fds_lr_schedules.md`.
"""

CLAIMS = """\
ledger = claims.report("09_fds_lr_schedules", result, scale, results_dir)
"""
