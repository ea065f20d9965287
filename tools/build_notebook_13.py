"""Write notebooks/13_local_sgd.ipynb (clean: no outputs) from the cells below.

The notebook's text lives here so that it can be reviewed as a diff; after changing it,
rebuild and refresh the smoke reference nbval compares:

    python tools/build_notebook_13.py && python tools/refresh_references.py 13_local_sgd
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "notebooks" / "13_local_sgd.ipynb"

INTRO = """\
# 13 · Local SGD: communication rounds against local steps

*Papers:* **Local SGD Converges Fast and Communicates Little** (Stich) and **Communication
trade-offs for synchronized distributed SGD with large step size** (Patel & Dieuleveut),
as summarized in `../shared/papers/iclr-optimization-notes.txt`.

P workers each hold an iid shard of the training set. A *round*: every worker starts from
the averaged weights x̄ and takes H local SGD steps on its own minibatches of size b,

x_p ← x_p − γ_t ∇f(x_p; ξ_p,t),  then x̄ ← (1/P) Σ_p x_p  (one communication).

With H = 1 this is mini-batch SGD with batch P b: averaging the weights after one step from
a common point averages the gradients (`tests/test_local_sgd.py` checks both this and that
the batched workers equal a Python loop over workers). Larger H communicates H times less
often per local step. **Steps** below are *local steps per worker*: parallel steps, the
wall-clock unit when workers run side by side; all workers together compute P × steps
minibatch gradients. Every curve is the training objective of the *averaged* model,
measured right after an average, against steps and against rounds.

**Step sizes.** Patel & Dieuleveut analyse *large decaying* steps γ_t = γ_0 t^−α,
α ∈ (1/2, 1); this notebook uses α = 1/2 by default (`lr_decay = 0.0` gives constant
steps; the findings below report both).

**Growing H.** The notes: "for logistic regression, you can reduce communication frequency
as you get closer to the solution … the allowable delay grows in inverse proportion to
distance to the final result". Two schedules, each capped at the largest constant H:

* `growing`: H_r = 1 + r in round r: the number of local steps between communications grows
  linearly with the communication index, as in Patel & Dieuleveut's schedules; T steps then
  take about √(2T) rounds instead of T.
* `plateau`: start at H = 1, double H whenever the workers' mean minibatch loss (sent with the
  weights, free) fell by less than 1 % over the last 100 steps against the 100 before. It
  measures "nearing the solution" instead of assuming it (as adaptive-communication methods do).

Tasks: l2-regularized (λ = 10⁻⁴) logistic regression on the real LIBSVM **a9a** (train on
a9a, test on a9a.t; f* from L-BFGS, so curves show f − f*) and an **MLP** (784-64-10, ReLU) on
10 000 real MNIST images.

**The claims:** a larger H reaches a given loss in fewer communication rounds, at some cost
per step and in final loss; a schedule where H grows as the run nears its solution gets the
best of both.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (minutes on a laptop) | paper (20 000 steps, full MNIST, 5 seeds)
tasks: list = ["a9a-logreg", "mnist-mlp"]  # a9a-logreg, w8a-logreg (LIBSVM logistic regression), mnist-mlp
periods: list = [1, 4, 16, 64]  # constant communication periods H (1 is mini-batch SGD with batch P b)
schedules: list = ["growing", "plateau"]  # growing: H is 1 + round; plateau: H doubles when the loss stalls
workers: int = 16  # P simulated workers, each with an iid shard
batch_size: int = 4  # b, each worker's minibatch
learning_rates: dict = {"a9a-logreg": 8.0, "w8a-logreg": 8.0, "mnist-mlp": 0.5}  # gamma_0 per task
lr_decay: float = 0.5  # alpha in [0, 1]: local step t uses gamma_0 t^-alpha (0: constant steps)
steps: int = 0  # local steps per worker; 0 takes the scale default (cpu: 4000 logreg, 2000 MLP)
seeds: int = 0  # seeds per configuration; 0 takes the scale default (cpu: 3 logreg, 2 MLP)
device: str = "cpu"  # auto | cpu | cuda:N | mps
results_dir: str = ""  # folder for summary.csv / histories.csv ("" saves nothing; `hpolab run` sets it)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab.studies import local_sgd
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## Run every task × period or schedule × seed
One call into the library, with a progress bar.
"""

RUN = """\
result = local_sgd.run_study(
    scale, tasks=tasks, periods=periods, schedules=schedules, workers=workers, batch_size=batch_size,
    learning_rates=learning_rates, lr_decay=lr_decay, steps=steps or None, seeds=seeds or None, device=device,
)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
Means over seeds. `rounds`: communications; `steps`: local steps per worker (parallel
steps); `gradients`: minibatch gradients of all workers together (P × steps); `final`: f − f*
(logistic regression) or the training loss (MLP) of the averaged model, mean over the last
10 % of steps; `test acc` at the end. Two targets per task (first table): **easy**, 1.25 × the
worst final value among the constant H (every constant H gets there, so it compares their
rounds and steps), and **H=1 level**, 1.25 × where mini-batch SGD ends (its quality).
`rounds to …` / `steps to …`: when a run first measured at or below the target (mean over the
runs that did; `reached` counts the runs that reached the H=1 level).
"""

SUMMARY = """\
show(local_sgd.target_table(result.histories))
print()
show(result.summary)
"""

FIGURES_TEXT = """\
## Loss against local steps and against communication rounds
One line per period or schedule: geometric mean over seeds, the band from the best to the
worst run; the dashed line is the easy target. Rounds are on a log axis: H = 1 needs as many
rounds as steps, H = 64 one per 64 steps. The third figure shows how the growing schedules
set H along the run.
"""

FIGURES = """\
targets = local_sgd.targets(result.histories)
for task in tasks:
    runs = [h for h in result.histories if h.problem == task]
    for x in ("step", "round"):
        local_sgd.loss_figure(runs, x=x, title=f"{task}: against {local_sgd.AXIS_TITLES[x]}",
                              target=targets[task]["easy"]).show()
    local_sgd.period_figure(runs, title=f"{task}: the communication period of the growing schedules").show()
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
"""

CLAIMS = """\
print("\\n".join(local_sgd.findings(result)))
"""

FOUND = """\
### What we found at `cpu` scale (P = 16 workers, b = 4; a9a: 4000 steps, 3 seeds; MLP: 2000 steps, 2 seeds)

`hpolab run 13 --scale cpu` took 5 minutes here with the default decaying steps
(γ_t = γ_0 t^−1/2, γ_0 = 8 for a9a and 0.5 for the MLP). The constant-step run
(`-p lr_decay 0.0 -p learning_rates '{"a9a-logreg": 0.5, "w8a-logreg": 0.5, "mnist-mlp": 0.2}'`)
took 7.5 minutes on a busier machine. "Final" is f − f* (a9a) or the training loss (MLP):
the mean over seeds of the last 10 % of steps.

* **A larger H reaches a given loss in fewer rounds.** *This holds for logistic regression.*
  H = 1, 4, 16, 64 took 1360, 333, 98 and 31 rounds to reach f − f* ≤ 1.55e-3 with decaying
  steps, and 371, 93, 23 and 7 rounds to reach 6.8e-3 with constant steps. *It does not hold
  for the MLP.* There a constant H > 1 costs so much per step that the number of rounds does
  not fall as H grows. To reach loss 1.39 with decaying steps, H = 1, 4, 16, 64 took 5, 162,
  9 and 3.5 rounds. To reach 0.62 with constant steps, they took 28, 19, 21 and 24.
* **At a cost per step and in final loss.** *On a9a the cost is small with decaying steps.*
  H = 64 needs 2010 local steps to the target against 1360 for H = 1. Both end at the same
  f − f* (1.11e-3 against 1.18e-3; the per-seed values span 0.97e-3 to 1.32e-3). *With
  constant steps the cost remains at the end:* H = 1, 4, 16, 64 end at 3.6e-3, 4.3e-3,
  5.5e-3 and 5.2e-3 (H = 64 is 1.45x H = 1). *On the MLP the cost is large.* With decaying
  steps, H = 1 ends at loss 0.151 and H = 4, 16, 64 at 0.70, 1.11 and 0.39. In the first
  rounds the averaged model falls back to chance loss (2.30): workers that take several large
  steps from a common start and are then averaged lose what they learned. With constant
  steps, H = 1 ends at 0.0061 and H = 4, 16, 64 at 0.038, 0.15 and 0.50.
* **Growing H gets the best of both.** *On the MLP with decaying steps, yes.* `growing`
  (H = 1 + r) ends at loss 0.159 against 0.151 for mini-batch SGD, using 63 rounds against
  2000. It reaches mini-batch SGD's level (0.188) after 49 rounds; H = 1 needs 980 rounds, and
  no constant H > 1 reaches that level. `plateau` kept H = 1 until step 520 and grew to 64 by
  step 1950 (seed 0); it ended at the same 0.151 with 774 rounds.
  *On a9a a growing schedule is not needed.* A constant H = 64 already matches H = 1's final
  value with 63 rounds. `growing` used 94 rounds and ended a little higher, at 1.56e-3
  (per seed 1.3e-3 to 1.9e-3); `plateau` used 508 rounds.
  *With constant steps, it does not hold on either task.* The cost of a large H does not
  shrink as the run nears its solution, so a schedule that grows into H = 64 ends near
  H = 64 or worse. On a9a, `growing` ends at 7.4e-3 and `plateau` at 5.4e-3, against 3.6e-3
  for H = 1. On the MLP they end at 0.21 and 0.29, against 0.0061.
* **Reading.** On the same minibatches, H local steps differ from H mini-batch steps only
  because each worker takes its gradients at its own point. The average of the workers' steps
  equals the step from their average only if the gradients are linear with the same slope on
  every minibatch. The gap grows with the workers' spread, which is of the order of the step size. With a constant step
  it stays, even at the solution. With γ_t → 0 it shrinks, and this is what lets the
  communication period grow in Patel & Dieuleveut's analysis. On the MLP the costly rounds are
  the first ones, when the workers leave their common start in different directions. A growing
  schedule keeps H small exactly there.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a schedule (`constant` uses H; `growing` and `plateau` start at 1 and stop at H), the
number of workers P, γ_0 and its decay α, b, steps, seed and device, then **Run**: the
objective of the averaged model is drawn live against communication rounds; each run adds
a line.
"""

PANEL = """\
local_sgd.panel(globals(), task=tasks[0])
"""

LOOK = """\
## What to look at
* **Loss against steps.** The lines nearly coincide where H is free and separate where it is
  not. On the MLP, a constant H > 1 falls behind from the first rounds. On logistic regression
  with decaying steps, the lines differ only in the middle of the run.
* **Loss against rounds.** Each line shifts left by a factor of its H, as long as its curve
  against steps did not pay for it. Compare where each line crosses the dashed target.
* **The growing schedules.** They start on the H = 1 curve and leave it as H grows (third
  figure). Compare where they end with H = 1 and with the constant H they grow into. Then set
  `lr decay alpha` to 0 in the panel: with constant steps, a large H costs as much near the
  solution as anywhere else.
"""


def build() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(INTRO),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(IMPORTS),
        new_markdown_cell(RUN_TEXT),
        new_code_cell(RUN, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(SUMMARY_TEXT),
        new_code_cell(SUMMARY, metadata={"tags": ["nbval-check-output"]}),
        new_markdown_cell(FIGURES_TEXT),
        new_code_cell(FIGURES, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(CLAIMS_TEXT),
        new_code_cell(CLAIMS, metadata={"tags": ["nbval-check-output"]}),
        new_markdown_cell(FOUND),
        new_markdown_cell(PANEL_TEXT),
        new_code_cell(PANEL, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(LOOK),
    ]
    for index, cell in enumerate(cells):
        cell["id"] = f"local-sgd-{index:02d}"
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    return notebook


if __name__ == "__main__":
    nbformat.write(build(), TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")
