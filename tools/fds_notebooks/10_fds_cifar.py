"""Cells of notebooks/10_fds_cifar.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 10 · FDS on CIFAR-10: learning rate, momentum and weight decay from zero

*Paper:* **Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.3 and Figure 4 (`../shared/papers/fds-long-horizons.md`).
Settings, and where each comes from: `docs/studies/10_fds_cifar.md`.

A WideResNet trains on CIFAR-10 with SGD. Its update is v_t = β v_{t−1} + ∇L(θ_{t−1}) + ξ θ_{t−1},
θ_t = θ_{t−1} − α_t v_t. **FDS** learns α (5 values, each shared over a fifth of the run: 10
of the paper's 50 epochs), β and ξ (one value each). All three start at **0**. Each outer
step trains from scratch and takes a sign-based step inside section 5.4's ranges
α ∈ [−1, 1], β ∈ [−1.5, 1.5], ξ ∈ [−4·10⁻³, 4·10⁻³]; the steps γ = 0.1, 0.3 and 4·10⁻⁴
(halved on a sign flip), the batch of 256, the 5 % validation split, the 10 outer steps and
the stopping rule (every step below 5 % of its value) are those of the authors' script for
Figure 4 (the paper's text gives none of them). A *start check* keeps those γ only if two
steps of them from 0 still train, else scales them by 1/3 or 1/10 (shown below, with every
candidate tried). As in that script (`clamp_grads_range` 3), every coordinate of FDS's
training gradient is clamped to [−3, 3] before the SGD update (the hypergradients
differentiate the clamped step). A training that still diverges sends the hyperparameters
halfway back to the last ones that trained, with halved steps (the paper does not say what
its loop does then).

**HD** (hypergradient descent, the greedy alternative, Baydin et al.) adapts α online from 0
in one training. It learns α only, so it is *given* β = 0.9 and ξ = 5·10⁻⁴, the usual WRN
values (the paper does not say which its HD used; starting them at 0 could only hurt HD). Its
own hypergradient rate is picked from {10⁻⁴, 10⁻³, 10⁻²} on the validation loss; all three
are shown below.

`paper` scale: full CIFAR-10 (47 500 training and 2 500 validation images), WRN-16-1, 50
epochs. `cpu` scale: the real CIFAR-10 subset in `data/cifar10_partial` (4000 training and 1000
validation images of its 5085, its 1017 test images), WRN-10-1, 2 epochs with batch 64, the
same 5 α values and 10 outer steps. The claims the run checks are listed, with their verdicts,
at the end of the notebook.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (WRN-10-1, 2 epochs of 4000 images, 10 outer steps) | paper (WRN-16-1, 50 epochs)
outer_steps: int = 0  # 0 takes the scale default (10, the authors' script)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished outer step under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv / claims.csv ("" saves nothing)
"""

IMPORTS = """\
import plotly.io as pio

from hpolab import claims
from hpolab.studies import fds_cifar
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval
"""

RUN_TEXT = """\
## FDS and HD
One call into the library, with progress bars. Finished outer steps and runs are cached under
`runs/cache/`: after an interruption, run the cell again and it resumes.
"""

RUN = """\
result = fds_cifar.run_cifar_study(scale, outer_steps=outer_steps or None, estimator=estimator, device=device,
                                   cache=cache)
print(f"{result.parameters['model']}, T = {result.parameters['horizon']} steps, "
      f"hypergradients by {result.parameters['estimator']} mode")
if result.fds.message:
    print(f"FDS: {result.fds.message}")
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
FDS's learned hyperparameters after the last outer step and HD's final rate. `runs`: the
trainings each used (for HD, its three hypergradient rates). `test acc`: the mean over fresh
seeds of training with the final hyperparameters (for HD, of HD's own run). The second table:
every HD hypergradient rate tried, with its final validation loss; the third: FDS's start check.
"""

SUMMARY = """\
show(result.summary, digits=3)
show(result.hd_grid, digits=3)
show(result.gamma_check, digits=3)
"""

FIGURES_TEXT = """\
## How FDS moves the hyperparameters
Left: α over the run at every outer step, darker when later, with HD's online α dashed. Middle
and right: β and ξ against the outer step (the paper's Figure 4). Then the test accuracy of each
outer step's run against HD's.
"""

FIGURES = """\
fds_cifar.hyperparameter_figure(result).show()
fds_cifar.accuracy_figure(result).show()
"""

LOOK = """\
## What to look at
* **α.** Look at how many outer steps it takes to settle, and where in the run its largest
  value sits (the paper finds one-cycle-like schedules).
* **β and ξ.** They start at 0, where SGD has no momentum and no decay. Look at where they go,
  and whether ξ stays near zero.
* **HD's dashed α.** It is greedy: it grows only while each step's immediate gain says so.
"""

PANEL_TEXT = """\
## Try it yourself
Pick FDS (forward or reverse mode: the same hypergradient, different cost) with W (epochs per
learning rate) and the number of outer steps, or HD with its hypergradient rate. Then pick a
seed and the device and press **Run**. The live figure gains the test accuracy as the run goes.
Panel runs are not cached.
"""

PANEL = """\
fds_cifar.panel(globals())
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
Each claim of section 5.3, its source, what this run measured and the verdict (computed by
`fds_cifar.CLAIMS`; `not testable here` at a scale too small to decide). "Converge" is the
authors' own stopping rule, "significantly" a gap over twice its standard error across the
evaluation seeds (`hpolab/studies/fds_claims.py`, `docs/studies/10_fds_cifar.md`).
"""

CLAIMS = """\
ledger = claims.report("10_fds_cifar", result, scale, results_dir)
"""
