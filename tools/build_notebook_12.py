"""Write notebooks/12_stn_best_response.ipynb from the cells below (clean: no outputs).

The notebook is generated so that its text, code and tags stay reviewable in one place.
After changing it, refresh the smoke reference nbval compares:

    python tools/build_notebook_12.py && python tools/refresh_references.py 12_stn_best_response
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "notebooks" / "12_stn_best_response.ipynb"

INTRO = """\
# 12 · Self-Tuning Networks: a best response linear in the hyperparameters

*Paper:* **Self-Tuning Networks** (MacKay, Vicol, Lorraine, Duvenaud, Grosse; ICLR 2019), as
summarized in `../shared/papers/iclr-optimization-notes.txt`.

Gradient-based tuning needs d w*(lambda) / d lambda, the way the trained weights respond to the
hyperparameters. STN does not unroll or solve for it. It *fits* an approximate best response
that is linear in the unconstrained hyperparameters lambda (log weight decay, logit dropout),

    w_phi(lambda) = w0 + W1 (lambda - c),

while training. Each cycle has two phases:
* **training phase**, `train_steps` steps on phi = (w0, W1): draw lambda~ = lambda + delta,
  delta ~ N(0, sigma^2), and step on L_train(w_phi(lambda~), lambda~). The regularizer and the
  dropout rate are lambda~'s.
* **tuning phase**, one step on lambda: step on L_val(w_phi(lambda)). The validation loss has
  no regularizer and no dropout, so its gradient goes through the response only:
  dL_val/dw . W1. No relaxation of dropout is needed, because the dropout masks are sampled
  only in the training phase, where no gradient with respect to the rate is taken.

The centre c is the current lambda. After each tuning step the response is re-centred, which
leaves the function unchanged, so w0 is the response at the current lambda and W1 its
Jacobian estimate. The steps of lambda form a hyperparameter *schedule*. Implementation:
`hpolab/methods/stn.py`; study: `hpolab/studies/stn.py`.

1. **Ridge regression**, where the best response is known: w*(lambda) = (X^T X + lambda I)^-1 X^T y.
   STN tunes log lambda with the plain linear response. We compare the fitted response with
   the exact one around the current lambda (value, Jacobian, hypergradient).
2. **An MLP on real MNIST**. Every layer uses the paper's structured response
   W(lambda) = W_e + diag(V (lambda - c)) W_h, which is affine in lambda and lets each example
   carry its own perturbation. It is compared with a grid of fixed (weight decay, dropout)
   settings, each trained for the same number of steps from the same initialization, the best
   picked by validation loss. Both use Adam (lr 1e-3, batch 128) with the penalty
   weight_decay / 2 |W|^2 in the loss.
3. **The schedule, replayed.** The notes: STN's schedules "transferred between optimization
   tasks, outperforming manually tuned constant schedules". The plain MLP is trained from
   scratch with the weight decay and dropout STN used at each step, against the same grid.

**Settings.** The notes give none. Where the authors' code (`cnn/hypertrain.py` of
asteroidhouse/self-tuning-networks) has one we take it: sigma = 0.5, two training steps per
tuning step, validation batches of the training batch size, 5 warm-up epochs before the first
tuning step, dropout started at 0.05. Their step size on lambda (3e-3) belongs to runs of
~50 000 tuning steps; ours is set so that Adam can cross the box once over the run (box width /
tuning steps: about 0.035 at `cpu` scale, 1.8e-3 at `paper` scale). The `cpu` scale is a
784-256-256-10 MLP on 2 000 training images (so regularization matters), 2 000 validation and
5 000 test images, 1 000 steps, a 3 x 3 grid, 3 seeds; `paper` is the same study at full size
(50 000 / 10 000 / 10 000 images, 1000-unit layers, 20 000 steps, a 5 x 4 grid, 2 seeds), not
the paper's own experiments. `docs/studies/12_stn_best_response.md` lists every setting.

The claims the run checks are listed, with their verdicts, at the end of the notebook.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (minutes on a laptop) | paper (full MNIST, 1000-unit layers, 5 x 4 grid)
sigma: float = 0.5  # STN's perturbation scale of lambda on the MLP, positive (the authors' code: 0.5)
hyper_lr: float = 0.0  # Adam step size on lambda; 0 takes box width / tuning steps (about 0.035 at cpu scale)
train_steps: int = 2  # T_train: training steps per tuning step, at least 1 (the authors' code: 2)
val_batch_size: int = 0  # validation examples per tuning step; 0 takes the training batch size (128)
warmup_epochs: float = 5.0  # epochs STN trains before its first tuning step, at least 0 (the authors' code: 5)
weight_decay: float = 0.0001  # where STN starts on the MLP, positive
dropout: float = 0.05  # where STN starts on the MLP, strictly between 0 and 1 (the authors' code: 0.05)
weight_decays: list = []  # grid of fixed weight decays; [] takes the scale's (cpu: 1e-5, 1e-3, 1e-2)
dropouts: list = []  # grid of fixed dropout rates; [] takes the scale's (cpu: 0, 0.25, 0.5)
steps: int = 0  # training steps of every MLP run; 0 takes the scale's (cpu 1000)
ridge_sigma: float = 0.5  # STN's perturbation scale of log lambda on ridge regression, positive
ridge_log_lambda0: float = -4.0  # where STN starts on ridge regression (log lambda)
seeds: int = 0  # MLP runs per setting (initialization, batches, perturbations); 0 takes the scale's (cpu 3)
device: str = "cpu"  # auto | cpu | cuda:N | mps
results_dir: str = ""  # folder for summary.csv / histories.csv / sigma_sweep.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import stn
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN = """\
result = stn.run_study(
    scale, sigma=sigma, hyper_lr=hyper_lr or None, train_steps=train_steps, val_batch_size=val_batch_size or None,
    warmup_epochs=warmup_epochs, weight_decay=weight_decay, dropout=dropout, weight_decays=weight_decays or None,
    dropouts=dropouts or None, steps=steps or None, seeds=seeds or None, ridge_sigma=ridge_sigma,
    ridge_log_lambda0=ridge_log_lambda0, device=device,
)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
One row per setting, over its seeds (`runs`):
* the final hyperparameters: weight decay as a geometric mean, dropout as a mean. For ridge,
  `weight decay` is lambda.
* the final validation loss (mean, with the half-width of its 95 % interval), test loss and
  test accuracy;
* the cost of one run in training and validation minibatch steps, and in `passes`: forward and
  backward passes of the plain network over a training batch, STN's structured layers counting
  two (two matrix products each). Wall times are in `histories.csv`; passes are the same on
  every machine.

For STN these are the response at its final lambda, without perturbation or dropout. The
`STN schedule, replayed` row is the plain MLP trained from scratch with STN's schedule. The
`exact optimum` row is ridge's w*(lambda*) at the lambda that minimizes the exact validation
loss. The second table: per seed, STN, its replayed schedule and that seed's best fixed setting.
"""

SUMMARY = """\
show(result.summary)
print()
show(stn.per_seed(result))
"""

SIGMA_TEXT = """\
## How sigma biases the fitted response (ridge, closed form)
The minimizer of STN's training objective E_delta L_train(w0 + W1 delta, lambda + delta) has a
closed form for ridge (`stn.ridge_stn_optimum`). Below, its relative error against the exact
w*(lambda) and d w*/d log lambda, and its hypergradient against the exact one, at the start
and at the optimum. A larger sigma fits the response over a wider range of lambda. There the
response is not linear, so the fit is biased.
"""

RIDGE_TEXT = """\
## Ridge: the fitted best response against the exact one
Left: the exact validation loss L_val(w*(lambda)) (grey) and, at four moments of the run, the
validation loss of the fitted response w0 + W1 (log lambda - c) around its centre c (dot). Near
its centre each fitted curve should follow the grey one, and farther away it should leave it.
Right: one coordinate of w*(lambda) and the fitted straight lines.
"""

TRAJECTORY_TEXT = """\
STN's log lambda per tuning step against the exact optimum, and the hypergradient through
the fitted response against the exact one, computed at the same lambda.
"""

NETWORK_TEXT = """\
## MNIST MLP: validation loss, the schedule, and the grid
The validation loss during training for STN, its replayed schedule and every fixed setting
(the objective of the grid search is the final value); STN's weight decay and dropout at every
tuning step (its schedule); and the grid coloured by final validation loss with STN's path
through the (weight decay, dropout) plane.
"""

PANEL_TEXT = """\
## Try it yourself
STN (from the weight decay and dropout set here) or a fixed setting, with sigma, the hyper step
size, steps, seed and device; **Run** draws the validation loss live, one line per run. Try
sigma = 0.05 against 2, or a hyper lr ten times smaller or larger.
"""

LOOK_TEXT = """\
## What to look at
* **The fitted response vs the exact one (ridge)**: near its centre each fitted curve should
  follow the exact curve. The sigma table says how much a wide perturbation biases the Jacobian.
* **The hypergradient through the response vs the exact one**: is its sign right often enough
  for lambda to reach the optimum, and how long does that take?
* **STN against the best of the grid (MNIST)**: the final validation loss, test loss and
  accuracy in the summary. Compare the cost: one STN run against the whole grid.
* **The schedule**: does STN raise dropout and weight decay as the network starts to overfit,
  or lower them early on, when less regularization helps the current weights? The
  hypergradient is greedy: it asks what improves the *current* weights on validation data.
"""

LEDGER_TEXT = """\
## The claims, checked on this run
Each claim of the notes that this experiment can test, its source, what this run measured
and the verdict (computed by `stn.CLAIMS`; `not testable here` at a scale too small to
decide). The tolerances (10 % for "tracks", 1 % for "finds the optimum", 5 % for
"comparable") are stated in `docs/studies/12_stn_best_response.md`.
"""


def cells():
    return [
        new_markdown_cell(INTRO),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(IMPORTS),
        new_markdown_cell("## Run STN on ridge regression and on the MNIST MLP, the fixed grid, and the replayed schedule"),
        new_code_cell(RUN, metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(SUMMARY_TEXT),
        new_code_cell(SUMMARY, metadata={"tags": ["nbval-check-output"]}),
        new_markdown_cell(SIGMA_TEXT),
        new_code_cell("show(result.sweep)\nstn.sigma_figure(result.sweep).show()",
                      metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(RIDGE_TEXT),
        new_code_cell("stn.best_response_figure(result.ridge).show()", metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(TRAJECTORY_TEXT),
        new_code_cell("stn.ridge_trajectory_figure(result.ridge).show()", metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(NETWORK_TEXT),
        new_code_cell(
            "stn.validation_figure(result).show()\n"
            "stn.schedule_figure(result).show()\n"
            "stn.grid_figure(result).show()",
            metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(LOOK_TEXT),
        new_markdown_cell(PANEL_TEXT),
        new_code_cell("stn.panel(globals())", metadata={"tags": ["nbval-ignore-output"]}),
        new_markdown_cell(LEDGER_TEXT),
        new_code_cell('ledger = claims.report("12_stn_best_response", result, scale, results_dir)',
                      metadata={"tags": ["nbval-check-output"]}),
    ]


def build() -> Path:
    notebook = new_notebook(cells=cells(), metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    for index, cell in enumerate(notebook.cells):  # stable ids keep the committed notebook diff-able
        cell.id = f"stn-{index:02d}"
    nbformat.validate(notebook)
    nbformat.write(notebook, TARGET)
    return TARGET


if __name__ == "__main__":
    print(build().relative_to(ROOT))
