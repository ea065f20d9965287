"""Cells of notebooks/08_fds_hypergradient_noise.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 08 · FDS: how noisy are non-greedy hypergradients, and what does sharing do?

*Paper:* **Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.1, Figure 2 and Theorem 4.1
(`../shared/papers/fds-long-horizons.md`). Settings, and where each comes from:
`docs/studies/08_fds_hypergradient_noise.md`.

LeNet trains for T = 250 steps of SGD (batch 128, momentum β = 0.9, no weight decay) with a
fixed learning-rate schedule: cosine annealing from α = 0.01 to 0. The paper says only that
the schedule is "initialized to small values"; this one is the default of the authors'
script for Figure 2, not a value picked here. As in that script, every coordinate of the
training gradient is clamped to [−1, 1] before the SGD update (the paper's text does not say;
the hypergradients differentiate the clamped step). For each **seed** (its own Xavier
initialization and data order) the study computes the hypergradient of every step's
learning rate in two ways:

* **non-greedy**: g_t = ∂L_val(θ_T)/∂α_t, through the whole run (exact, by reverse mode);
* **greedy (H = 1)**: ∂L_val(θ_t)/∂α_t with θ_{t−1} held fixed, the horizon of
  hypergradient descent.

The ensemble mean μ_t of the non-greedy g_t over seeds is taken as the optimal hypergradient.
**Sharing** one learning rate over a window of W contiguous steps makes its hypergradient the
*sum* of the window's g_t (`tests/test_fds.py` checks this identity against FDS's forward mode
with windows), so the shared estimate of every g_t is the window's mean, and

MSE_W = mean over seeds and steps of (mean of g over t's window − μ_t)².

**Theorem 4.1** bounds it by (1 + c(W − 1))/W · MSE_1 + ε²(W² − 1)/12. Here MSE_1 = (1/T) Σ_t Σ_tt
(the per-step variance), c is the largest absolute correlation between two steps, and
ε = max_t |μ_{t+1} − μ_t|. All three are measured here from the same seeds.

The paper's Figure 2 is on SVHN, which is not in `data/`: this run uses MNIST (section 5.1
names both). `cpu` scale: 20 seeds and 1000 validation images; `paper` scale: 100 seeds and
2000. The claims the run checks are listed, with their verdicts, at the end of the notebook.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (T 250, 20 seeds, minutes) | paper (100 seeds, 2000 validation images)
dataset: str = "mnist"  # mnist | svhn (used when its files are in data/SVHN, else MNIST with a note)
lr: float = 0.01  # the schedule's first learning rate, > 0 (the authors' script: 0.01)
shape: str = "cosine"  # cosine (annealed from lr to 0 over T, the authors' script) | constant (lr at every step)
momentum: float = 0.9  # beta in [0, 1)
seeds: int = 0  # seeds (initialization and data order); 0 takes the scale default (cpu: 20)
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep each finished seed under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / hypergradients.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import fds_noise
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## Hypergradients of every step, for every seed
One call into the library, with a progress bar over seeds. Finished seeds are cached under
`runs/cache/`: run the cell again after an interruption and it resumes.
"""

RUN = """\
result = fds_noise.run_noise_study(scale, dataset=dataset, lr=lr, shape=shape, momentum=momentum,
                                   seeds=seeds or None, device=device, cache=cache)
if result.note:
    print(result.note)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## MSE against W, with Theorem 4.1's bound
`values learned`: how many learning rates a schedule with windows of W steps has (T/W).
`measured MSE`: MSE_W over the seeds. `bound`: Theorem 4.1's right-hand side, the sum of the
`noise term` and the `bias term`.
"""

SUMMARY = """\
show(result.table, digits=3)
"""

FIGURES_TEXT = """\
## The hypergradients and the MSE
Left: each seed's non-greedy hypergradient of every step, with their ensemble mean μ dotted.
Middle: the greedy ones, with the same μ. Right: measured MSE_W, the bound and its two terms
against W, with the greedy MSE as a horizontal line (the paper's Figure 2).
"""

FIGURES = """\
fds_noise.hypergradient_figure(result).show()
fds_noise.mse_figure(result).show()
"""

LOOK = """\
## What to look at
* **Left against middle.** Look at the scale and sign of the greedy lines next to the
  non-greedy ones. A greedy step sees only its own immediate effect on the validation loss.
* **The spread around μ.** If the seeds' lines move together (a shared offset per seed), the
  correlation c is high and averaging over a window cannot remove their noise. If they
  cross often, sharing averages the noise away.
* **The MSE curve.** Look at where it is lowest, against W = 1 and W = T, and whether the
  bound's curve has the same shape. Change `lr` or `shape` to see how ε, c and the best W move.
"""

PANEL_TEXT = """\
## Try it yourself
Pick the estimator, the window W, the learning rate, a seed and the device, then **Run**:
the seed's hypergradients, shared over windows of W steps, are drawn against the inner step,
and each run adds a line. Compare seeds at W = 1 and at a larger W, or greedy against non-greedy.
"""

PANEL = """\
fds_noise.panel(globals())
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
Each claim of section 5.1 and Theorem 4.1, its source, what this run measured and the verdict
(computed by `fds_noise.CLAIMS`; `not testable here` at a scale too small to decide). How
each sentence is read as a test ("significantly", "W ~ 50") is stated in
`hpolab/studies/fds_claims.py` and `docs/studies/08_fds_hypergradient_noise.md`.
"""

CLAIMS = """\
ledger = claims.report("08_fds_hypergradient_noise", result, scale, results_dir)
"""
