"""Cells of notebooks/09_fds_lr_schedules.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 09 · FDS: learning a learning-rate schedule from zero over one epoch

*Paper:* **Non-greedy Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.2 and Figure 3 (`../shared/papers/fds-long-horizons.md`).

LeNet trains for one epoch (T steps) with SGD and momentum β = 0.9. The learning rate α_t
starts at **0** everywhere, and the three methods learn it over the outer steps:

* **greedy (H = 1)**: the hypergradient of each step's rate is that of the validation loss
  right after the step (θ_{t−1} held fixed), hypergradient descent's horizon, without HD's
  tricks (the paper's "transparent" greedy setting);
* **non-greedy, W = 1**: exact hypergradients of the final validation loss, one rate per step;
* **FDS**: the same exact hypergradients, one rate shared by each window of W steps.

Every outer step trains from scratch with a new seed (initialization and data order) and
moves each rate by γ against the sign of its hypergradient, halving γ for that rate when the
sign flips. Rates stay in [0, 1]. Greedy shares FDS's windows, so the horizon is its only
difference from FDS. The reference is **cosine annealing** from the best of three peak rates
(picked on the validation loss). Each final schedule is evaluated by its test accuracy from
fresh seeds.

**The claims:** greedy learns rates that are too small; without sharing, the noisy
hypergradients make the schedule erratic (on SVHN, too large); FDS learns a schedule that
matches or beats cosine annealing.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (T 200, 20 outer steps, minutes) | paper (one MNIST epoch, 50 outer steps)
dataset: str = "mnist"  # mnist | svhn (used when its files are in data/SVHN, else MNIST with a note)
methods: list = ["greedy", "non-greedy", "fds"]  # greedy (H 1), non-greedy (W 1), fds (W steps share one rate)
W: int = 0  # steps per shared rate for fds and greedy; 0 takes the scale default (cpu: 20, T/10)
gamma: float = 0.01  # the outer step on each rate, > 0, halved when its hypergradient flips sign
outer_steps: int = 0  # 0 takes the scale default (cpu: 20)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished outer step under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv ("" saves nothing; `hpolab run` sets it)
"""

IMPORTS = """\
import plotly.io as pio

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
training with the final schedule. The cosine row counts its three peak trials.
"""

SUMMARY = """\
show(result.summary, digits=3)
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

CLAIMS_TEXT = """\
## The claims, checked on this run
"""

CLAIMS = """\
print("\\n".join(fds_schedules.findings(result)))
"""

FOUND = """\
### What we found at `cpu` scale (MNIST, 12 800 images, one epoch of T = 200 steps, W = 20, γ = 0.01, 20 outer steps)

`hpolab run 09 --scale cpu` took 5 minutes here. A greedy outer step took 6.5 s (a validation
gradient after every step), a non-greedy one 2.7 s (reverse mode). Test accuracies are means
over 3 fresh seeds (± sd). SVHN is not in `data/`, so the SVHN half of the claim is not
checked; everything below is MNIST.

* **Greedy learns rates that are too small.** *This holds.* Greedy's final schedule has mean rate
  0.0081 against FDS's 0.0142. Its first window climbs to 0.050, and the other nine decay to
  0.001-0.009: greedy learns to step hard at the start and then almost stop. Its test
  accuracy is 0.867 ± 0.008, against 0.920 ± 0.006 for FDS.
* **Without sharing, the schedule is erratic.** *On MNIST it is jagged, not too large.* The
  W = 1 schedule (one rate per step) jumps by 0.0067 per step on average, against 0.0005 for
  FDS. Its maximum is 0.060 and its mean 0.0119. It reaches 0.900 ± 0.003. Where the paper
  saw the failure (SVHN), no data is here to check it.
* **FDS learns a schedule that matches or beats cosine annealing.** *It comes close but does not
  beat it here.* FDS reaches 0.920 ± 0.006, and cosine annealing from 0.03 (the best of 0.01,
  0.03 and 0.1 on the validation loss) reaches 0.926 ± 0.004. The validation losses agree
  (0.240 against 0.216). FDS's schedule rises to 0.029-0.031 in the middle windows, and two
  windows around step 100-140 stay near 0.003. Each outer step's hypergradient comes from
  one seed, so such dips can persist once γ has been halved a few times.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a method, W, γ, the number of outer steps, a seed and the device, then **Run**. The
live figure gains the test accuracy of each outer step's run, and each run adds a line.
Panel runs are not cached.
"""

PANEL = """\
fds_schedules.panel(globals())
"""

LOOK = """\
## What to look at
* **Greedy's schedule.** See where it sits against FDS's and cosine's. A greedy step sees
  only the next validation loss, and a larger rate helps that loss less than it helps the
  final one.
* **W = 1 against FDS.** Compare how jagged the W = 1 schedule is with FDS's steps. Each rate
  of the W = 1 schedule is moved by one noisy hypergradient of its own.
* **The test accuracies.** Check them against the `test acc sd` column before reading a
  difference as real.
"""
