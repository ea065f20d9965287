"""Write notebooks/02_jd_mnist_activation.ipynb from the cell sources below (no outputs).

    python tools/build_notebook_02.py && python tools/refresh_references.py 02_jd_mnist_activation
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "notebooks" / "02_jd_mnist_activation.ipynb"

INTRO = """\
# 02 · Joint Descent tunes the activation of an MNIST network while it trains

*Paper:* **Joint Descent: Training and Tuning Simultaneously** (ICLR 2021 submission;
`../shared/papers/joint-descent.txt`), section 4.2, **Figure 3**.

A 784-30-10 MLP on real MNIST with the activation
σ(z) = leaky_relu(z, α) + b · elu(z) and the hyperparameters y = (η, α, b). The learning
rate η enters the objective through one look-ahead step,
f(x, y) = L_σ(x − η ∇L_σ(x)), so that the tuner sees it. α starts at 1 and b at 0: a
*linear* network. **JD** as Algorithm 1 prints it: each iteration, with probability p a
gradient step on the weights x (x −= ∇ₓf / β), otherwise a gradientless step on y (tries
y + gᵢ, gᵢ ~ N(0, rᵢ I), rᵢ = 2ⁱ r up to R; keep the best of y and the tries). An iteration
is one gradient or one function evaluation (section 1.1). **References**: a ReLU network
(α = 0, b = 0) and a linear one (α = 1, b = 0), y fixed, every iteration a gradient step on
the same objective (JD without its tuning steps).

What section 4.2 does not give is ours (`docs/studies/02_jd_mnist_activation.md` has the
settings table, `hpolab/studies/jd_mnist.py` the measurements behind each choice):
minibatches of 128 from all 60 000 training images, a fresh one per step, the same one for
every evaluation of a step; study 01's radii r, R; η₀ = the gradient step. Two settings are
**guards**, kept because the run fails without them, which the section *Why the guards*
measures on this run's scale: the gradient step 1/β is smaller than the printed rule gives
(β measured at the start), and η, α, b are kept in [0, 1]. Training accuracy is measured at
every step on a fixed random sample of the training images (2 000 at `cpu` scale).

**The paper's claims** are checked at the end of the notebook, from this run's numbers."""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (all 60 000 images, 3000 iterations, minutes) | paper (5 seeds, accuracy on all images)
p_values: list = [0.3, 0.5, 0.7]  # JD's gradient-step probabilities, each in (0, 1); the claims read JD at p 0.5
references: list = ["relu", "linear"]  # fixed networks, gradient steps only: relu (alpha 0, b 0), linear (alpha 1, b 0)
iterations: int = 0  # evaluations per run; 0 takes the scale default (smoke 60, cpu 3000, paper 3000)
seeds: int = 0  # seeds per configuration; 0 takes the scale default (smoke 1, cpu 2, paper 5)
lr: float = 0.1  # the gradient step 1 / beta, > 0 (a guard: see "Why the guards")
eta0: float = 0.1  # the starting learning-rate hyperparameter eta, non-negative
batch_size: int = 128  # minibatch size; every step draws a fresh batch
box: list = [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]  # (low, high) for eta, alpha, b (a guard); [] for no box
check_guards: bool = True  # rerun JD without each guard (larger steps; no box) and show what happens
device: str = "cpu"  # auto | cpu | cuda:N | mps
results_dir: str = ""  # folder for summary.csv / histories.csv / claims.csv ("" saves nothing; `hpolab run` sets it)"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import jd_mnist
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval"""

RUN = """\
result = jd_mnist.run_study(
    scale, p_values=p_values, references=references, iterations=iterations or None, seeds=seeds or None,
    lr=lr, eta0=eta0, batch_size=batch_size, box=box, device=device,
)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")"""

SUMMARY_TEXT = """\
## Summary
At the end of each run (mean over seeds): gradient steps taken, training accuracy and plain
loss L of the network x on the monitor sample, the hyperparameters, and the lowest α of
the run. Rounded to 3 significant digits."""

FIGURE_ACCURACY = """\
runs = result.histories
jd_steps = max(h.frame["gradient_evaluations"].iloc[-1] for h in runs if h.method == "jd")
jd_mnist.accuracy_figure(runs, title="Training accuracy (Figure 3, left)").show()
jd_mnist.accuracy_figure(runs, x="gradient_evaluations", x_max=jd_steps,
                         title="The same against gradient steps, up to JD's last").show()"""

FIGURE_HYPER = """\
jd_mnist.hyperparameter_figure([h for h in runs if h.method == "jd"],
                               title="The hyperparameters JD chose (Figure 3, right)").show()"""

GUARDS_TEXT = """\
## Why the guards
The printed gradient step is 1/β with β the smoothness of f in x. Measured where a run starts
(the largest |eigenvalue| of ∇ₓ²f over five minibatches, first line below), it gives the first
step below; the table then reruns JD (p = 0.5, this scale's budget and seeds) with larger
steps (in the box) and without the box (with the step above), and says which runs diverged
or collapsed to chance accuracy (≤ 0.2 at the end). A guard stays only where this table shows
failures without it."""

GUARDS = """\
if check_guards:
    beta = jd_mnist.estimate_beta(scale, y0=(eta0, 1.0, 0.0), device=device)
    print(f"largest |eigenvalue| of grad_x^2 f at the start: {beta:.3g}, so the printed step 1/beta = {1 / beta:.3g}")
    show(jd_mnist.guard_check(scale, seeds=seeds or None, iterations=iterations or None, device=device,
                              progress=False))"""

PANEL_TEXT = """\
## Try it yourself
Pick JD (and its p) or a fixed reference, the gradient step 1/β, η₀, the batch size, the
budget, the seed and the device, then **Run**: the training accuracy is drawn live and each
run adds a line; **Stop** ends a run and keeps what it computed; **Clear** starts over."""

PANEL = """\
jd_mnist.panel(globals(), iterations=result.parameters["iterations"])"""

LOOK = """\
## What to look at
* **α (middle panel)**: does the tuner move the network from linear (α = 1) towards ReLU
  (α = 0), as the paper reports within ~500 iterations? A gradientless step keeps a try
  only if it lowers f *at the current weights, on the current batch*.
* **b and η**: b scales the activation (a gain the weights could provide themselves) and η
  is a one-step line search on the current batch: both lower f on that batch at once, and
  both raise the curvature of f in x. Watch where they go.
* **Per gradient step** (second accuracy figure): a gradientless step costs one evaluation
  per radius plus one; does a tuned y buy back the gradient steps it cost?
* **Dips** in JD's accuracy: a try that lowered f on one batch of 128 was kept, and the
  weights had to adapt to the new activation. Try a larger batch in the panel."""

CLAIMS_TEXT = """\
## The paper's claims, checked on this run
Each line: the claim, what this run measured (JD at p = 0.5), and the verdict (`not testable
here` at `smoke` scale, which is too small to decide)."""

CLAIMS = """\
ledger = claims.report("02_jd_mnist_activation", result, scale, results_dir)"""


def build() -> nbformat.NotebookNode:
    tagged = lambda source, *tags: new_code_cell(source, metadata={"tags": list(tags)})  # noqa: E731
    cells = [
        new_markdown_cell(INTRO),
        tagged(PARAMETERS, "parameters"),
        new_code_cell(IMPORTS),
        new_markdown_cell("## Run the study\nOne call: JD for every p and the two references, for every seed, "
                          "with a progress bar."),
        tagged(RUN, "nbval-ignore-output"),
        new_markdown_cell(SUMMARY_TEXT),
        tagged("show(result.summary)", "nbval-check-output"),
        new_markdown_cell("## Figure 3 (left): training accuracy\nJD for each p and the references, against "
                          "iterations (gradient + function evaluations; a reference's every iteration is a "
                          "gradient step), then against gradient steps alone. Mean over seeds, band from the "
                          "worst to the best seed."),
        tagged(FIGURE_ACCURACY, "nbval-ignore-output"),
        new_markdown_cell("## Figure 3 (right): the hyperparameters\nη, α and b against iterations, one line per p."),
        tagged(FIGURE_HYPER, "nbval-ignore-output"),
        new_markdown_cell(GUARDS_TEXT),
        tagged(GUARDS, "nbval-check-output"),
        new_markdown_cell(PANEL_TEXT),
        tagged(PANEL, "nbval-ignore-output"),
        new_markdown_cell(LOOK),
        new_markdown_cell(CLAIMS_TEXT),
        tagged(CLAIMS, "nbval-check-output"),
    ]
    notebook = new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}}
    return notebook


if __name__ == "__main__":
    notebook = build()
    for index, cell in enumerate(notebook.cells):  # fixed ids (nbformat's are random) keep rebuilds diff-free
        cell["id"] = f"cell-{index:02d}"
    nbformat.write(notebook, TARGET)
    print(f"wrote {TARGET.relative_to(ROOT)}")
