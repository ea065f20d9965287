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

**Setting.** As in the notes, each worker uses batch size b = 1 and the task is
l2-regularized (λ = 10⁻⁴, the strong convexity μ) logistic regression: the real LIBSVM
**a9a** (train on a9a, test on a9a.t; f* from L-BFGS, so curves show f − f*). Patel &
Dieuleveut's *large decaying* steps γ_t = γ_0 t^−α take α ∈ (1/2, 1); the notes give no value,
so we take the middle, α = 3/4. γ_0 is not given either: mini-batch SGD (H = 1, seed 0) is run
over a grid of γ_0 first and every configuration uses the one with the lowest final f − f*
(the table below shows every γ_0 tried). An **MLP** (784-64-10, ReLU) on 10 000 real MNIST
images goes beyond the papers' convex setting; the claims are checked on logistic regression
only. `docs/studies/13_local_sgd.md` lists every setting.

**Growing H.** The notes: "for logistic regression, you can reduce communication frequency
as you get closer to the solution … the allowable delay grows in inverse proportion to
distance to the final result". Two schedules:

* `growing`: H_r = 1 + r in round r (uncapped): the number of local steps between
  communications grows linearly with the communication index, as in Patel & Dieuleveut's
  schedules; T steps then take about √(2T) rounds instead of T.
* `plateau` (ours): start at H = 1, double H whenever the workers' mean minibatch loss (sent
  with the weights, free) fell by less than 1 % over the last 100 steps against the 100 before,
  up to the largest constant H. It measures "nearing the solution" instead of assuming it.

The claims the run checks are listed, with their verdicts, at the end of the notebook.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (minutes on a laptop) | paper (20 000 steps, full MNIST, 5 seeds)
tasks: list = ["a9a-logreg", "mnist-mlp"]  # a9a-logreg, w8a-logreg (LIBSVM logistic regression), mnist-mlp
periods: list = [1, 4, 16, 64]  # constant communication periods H (1 is mini-batch SGD with batch P b)
schedules: list = ["growing", "plateau"]  # growing: H is 1 + round; plateau: H doubles when the loss stalls
workers: int = 16  # P simulated workers, each with an iid shard
batch_size: int = 1  # b, each worker's minibatch (the notes: workers use batch size 1)
learning_rates: dict = {}  # gamma_0 per task; a task missing here gets the best gamma_0 of mini-batch SGD on its grid
lr_decay: float = 0.75  # alpha in [0, 1]: local step t uses gamma_0 t^-alpha (Patel & Dieuleveut: in (1/2, 1))
steps: int = 0  # local steps per worker; 0 takes the scale default (cpu: 4000 logreg, 2000 MLP)
seeds: int = 0  # seeds per configuration; 0 takes the scale default (cpu: 3 logreg, 2 MLP)
device: str = "cpu"  # auto | cpu | cuda:N | mps
results_dir: str = ""  # folder for summary.csv / histories.csv / lr_sweep.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import local_sgd
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## Run every task × period or schedule × seed
One call into the library, with a progress bar. It first picks γ_0 per task (next table),
then runs every configuration with it.
"""

RUN = """\
result = local_sgd.run_study(
    scale, tasks=tasks, periods=periods, schedules=schedules, workers=workers, batch_size=batch_size,
    learning_rates=learning_rates or None, lr_decay=lr_decay, steps=steps or None, seeds=seeds or None,
    device=device,
)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SWEEP_TEXT = """\
## How γ_0 was picked
Mini-batch SGD (H = 1, seed 0, the same steps and α) for every γ_0 of the task's grid: its
final value (f − f* for logistic regression, the loss for the MLP; mean over the last 10 % of
steps; NaN if it diverged). `chosen` marks the γ_0 every configuration of the study then uses.
Only the baseline is tuned, never a local-SGD run; a γ_0 at the edge of the grid would say
that the grid should be widened.
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
runs that did; `reached` counts the runs that reached the H=1 level). The last table: each
constant H at the same number of communications (the rounds of the largest H).
"""

SUMMARY = """\
show(local_sgd.target_table(result.histories))
print()
show(result.summary)
print()
show(local_sgd.at_equal_rounds(result.histories))
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

LOOK = """\
## What to look at
* **Loss against steps.** The lines nearly coincide where H is free and separate where it is
  not. Where does a constant H > 1 fall behind, early or late?
* **Loss against rounds.** Each line shifts left by a factor of its H, as long as its curve
  against steps did not pay for it. Compare where each line crosses the dashed target.
* **The growing schedules.** They start on the H = 1 curve and leave it as H grows (third
  figure). Compare where they end with H = 1 and with the constant H they grow into. Then set
  `lr decay alpha` to 0 in the panel: with constant steps, the workers' spread does not shrink
  near the solution, so a large H costs as much there as anywhere else.
"""

PANEL_TEXT = """\
## Try it yourself
Pick a schedule (`constant` uses H; `growing` and `plateau` start at 1 and stop at H), the
number of workers P, γ_0 (the study's pick to start with) and its decay α, b, steps, seed and
device, then **Run**: the objective of the averaged model is drawn live against communication
rounds; each run adds a line.
"""

PANEL = """\
local_sgd.panel(globals(), task=tasks[0], learning_rates=result.parameters["learning_rates"])
"""

LEDGER_TEXT = """\
## The claims, checked on this run
Each claim of the notes that this experiment can test, its source, what this run measured
and the verdict (computed by `local_sgd.CLAIMS`; `not testable here` at a scale too small to
decide). The tolerances (1.25 × H = 1's final for "reaches its level", 2× for "the same rate",
10 % for "equal") are stated in `docs/studies/13_local_sgd.md`.
"""

LEDGER = """\
ledger = claims.report("13_local_sgd", result, scale, results_dir)
"""


def build() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(INTRO),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(IMPORTS),
        new_markdown_cell(RUN_TEXT),
        new_code_cell(RUN, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(SWEEP_TEXT),
        new_code_cell("show(result.lr_sweep)", metadata={"tags": ["nbval-check-output"]}),
        new_markdown_cell(SUMMARY_TEXT),
        new_code_cell(SUMMARY, metadata={"tags": ["nbval-check-output"]}),
        new_markdown_cell(FIGURES_TEXT),
        new_code_cell(FIGURES, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(LOOK),
        new_markdown_cell(PANEL_TEXT),
        new_code_cell(PANEL, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(LEDGER_TEXT),
        new_code_cell(LEDGER, metadata={"tags": ["nbval-check-output"]}),
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
