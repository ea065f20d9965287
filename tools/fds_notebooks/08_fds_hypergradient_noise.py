"""Cells of notebooks/08_fds_hypergradient_noise.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 08 · FDS: how noisy are non-greedy hypergradients, and what does sharing do?

*Paper:* **Non-greedy Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.1 and Theorem 4.1 (`../shared/papers/fds-long-horizons.md`).

LeNet trains on MNIST for T steps with SGD, momentum β = 0.9 and a learning rate α_t that is
the same value at every step. For each **seed** (its own initialization and data order) the
study computes the hypergradient of every step's learning rate in two ways:

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

**The claims:** greedy hypergradients are a poor (biased) estimate of μ; sharing lowers the
MSE, with an interior best W (50 of T = 250 in the paper), and the bound's shape follows the
measured MSE.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (T 250, 20 seeds, minutes) | paper (100 seeds, 10 000 validation images)
dataset: str = "mnist"  # mnist | svhn (used when its files are in data/SVHN, else MNIST with a note)
lr: float = 0.01  # the fixed learning rate of every step, > 0
momentum: float = 0.9  # beta in [0, 1)
seeds: int = 0  # seeds (initialization and data order); 0 takes the scale default (cpu: 20)
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep each finished seed under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / hypergradients.csv ("" saves nothing; `hpolab run` sets it)
"""

IMPORTS = """\
import plotly.io as pio

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
result = fds_noise.run_noise_study(scale, dataset=dataset, lr=lr, momentum=momentum, seeds=seeds or None,
                                   device=device, cache=cache)
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

CLAIMS_TEXT = """\
## The claims, checked on this run
"""

CLAIMS = """\
print("\\n".join(fds_noise.findings(result)))
"""

FOUND = """\
### What we found at `cpu` scale (MNIST, T = 250, batch 128, α = 0.01, β = 0.9, 20 seeds)

`hpolab run 08 --scale cpu` took 9 minutes here (about 23 s per seed: one reverse-mode and
one greedy run). SVHN is not in `data/`, so this is MNIST only.

* **Greedy hypergradients are biased.** *This holds, strongly.* Against the non-greedy ensemble
  mean μ, the greedy hypergradients have MSE 57.7 (bias² 13.4, variance 44.3). The non-greedy
  per-step MSE_1 is 0.189. The greedy mean has μ's sign at only 18 % of the steps. Summed
  over the run it is −39.4 times the non-greedy sum: greedy says "lower the rate", the
  final validation loss says "raise it". In a 3-seed look at α = 0.002, greedy had μ's sign at
  96 % of the steps, but its sum was only 0.26 times μ's. That is the short-horizon bias: a
  larger rate looks less useful to the next step than to the end of the run.
* **Sharing lowers the MSE, with an interior best W.** *Sharing lowers it, but the best W here
  is T.* MSE_W falls steadily: 0.189 (W = 1), 0.098 (5), 0.058 (50), 0.029 (W = T = 250), which
  is 6.5 times lower. No interior minimum appears at this α. μ drifts little against the noise
  (apart from a few spiky steps), so the bias of wide windows stays below the noise they remove.
  In the 3-seed look at α = 0.002, the seeds' hypergradients moved together: the noise was
  mostly a per-seed offset, and MSE_W stayed flat (16.8 to 17.3) at every W.
* **The bound.** *It holds at every W, but it does not follow the measured shape.* It is
  0.199 at W = 1, and 4180 at W = T. Two measured quantities make it loose. c = 1.00: with 20
  seeds and 31 000 pairs of steps, the largest sample correlation is near 1 by chance alone.
  ε = 0.90: the largest jump of μ comes from a few noisy late steps, so ε²(W² − 1)/12 grows
  far faster than the real bias. The paper says the same of c ("can be quite high which makes
  the upper bound loose").
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

LOOK = """\
## What to look at
* **Left against middle.** Look at the scale and sign of the greedy lines next to the
  non-greedy ones. A greedy step sees only its own immediate effect on the validation loss.
* **The spread around μ.** If the seeds' lines move together (a shared offset per seed), the
  correlation c is high and averaging over a window cannot remove their noise. If they
  cross often, sharing averages the noise away.
* **The MSE curve.** Look at where it is lowest, against W = 1 and W = T, and whether the
  bound's curve has the same shape. Change `lr` to see how ε, c and the best W move.
"""
