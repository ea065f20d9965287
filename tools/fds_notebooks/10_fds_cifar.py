"""Cells of notebooks/10_fds_cifar.ipynb (see tools/build_fds_notebooks.py)."""

INTRO = """\
# 10 · FDS on CIFAR-10: learning rate, momentum and weight decay from zero

*Paper:* **Non-greedy Gradient-based Hyperparameter Optimization Over Long Horizons**
(Micaelli & Storkey; FDS), section 5.3 and Figure 4 (`../shared/papers/fds-long-horizons.md`).

A WideResNet trains on CIFAR-10 with SGD. Its update is v_t = β v_{t−1} + ∇L(θ_{t−1}) + ξ θ_{t−1},
θ_t = θ_{t−1} − α_t v_t. **FDS** learns α (one value per window of epochs), β and ξ (one value
each). All three start at **0**. Each outer step trains from scratch and takes a sign-based
step (γ = 0.03, 0.1 and 5·10⁻⁴, halved on a sign flip) inside the paper's wide ranges
α ∈ [−1, 1], β ∈ [−1.5, 1.5], ξ ∈ [−4·10⁻³, 4·10⁻³].

**HD** (hypergradient descent, the greedy alternative) adapts α online from 0 in one
training. It is *given* the common β = 0.9 and ξ = 5·10⁻⁴, since it cannot learn them. Its
own hypergradient rate is picked from {10⁻⁴, 10⁻³, 10⁻²} on the validation loss.

At `cpu` scale: the real CIFAR-10 subset in `data/cifar10_partial` (4000 training and 1000
validation images from its 5085, the 1017 test images), WRN-10-1, 2 epochs with batch 64, one α
per epoch, 8 outer steps. At `paper` scale: full CIFAR-10, WRN-16-1, 50 epochs, α shared
over 10 epochs.

**The claims:** FDS converges in about 10 outer steps, to hyperparameters far better than HD's.
"""

PARAMETERS = """\
scale: str = "cpu"  # smoke (seconds, CI) | cpu (WRN-10-1, 2 epochs of 4000 images, 8 outer steps) | paper (WRN-16-1, 50 epochs)
outer_steps: int = 0  # 0 takes the scale default (cpu: 8)
estimator: str = "auto"  # auto (reverse mode on a CPU, FDS's forward mode on a GPU) | forward | reverse
device: str = "cpu"  # auto | cpu | cuda:N | mps
cache: bool = True  # keep every finished outer step under runs/cache/ and resume from there
results_dir: str = ""  # folder for summary.csv / histories.csv ("" saves nothing; `hpolab run` sets it)
"""

IMPORTS = """\
import plotly.io as pio

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
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")
"""

SUMMARY_TEXT = """\
## Summary
FDS's learned hyperparameters after the last outer step and HD's final rate. `runs`: the
trainings each used (for HD, its three hypergradient rates). `test acc`: the mean over fresh
seeds of training with the final hyperparameters (for HD, of HD's own run).
"""

SUMMARY = """\
show(result.summary, digits=3)
"""

FIGURES_TEXT = """\
## How FDS moves the hyperparameters
Left: α over the run at every outer step, darker when later, with HD's online α dashed. Middle
and right: β and ξ against the outer step. Then the test accuracy of each outer step's run
against HD's.
"""

FIGURES = """\
fds_cifar.hyperparameter_figure(result).show()
fds_cifar.accuracy_figure(result).show()
"""

CLAIMS_TEXT = """\
## The claims, checked on this run
"""

CLAIMS = """\
print("\\n".join(fds_cifar.findings(result)))
"""

FOUND = """\
### What we found at `cpu` scale (WRN-10-1, 4000 CIFAR-10 images, 2 epochs = 124 steps of batch 64, 8 outer steps)

`hpolab run 10 --scale cpu` took 6.5 minutes here. One outer step (a reverse-mode
hypergradient through 124 WRN steps) took about 31 s, the HD runs about 14 s each. Test
accuracies are means over 2 fresh seeds, on the 1017 test images of the subset.

* **FDS converges in about 10 outer steps.** *α does; β and ξ do not within 8.* The validation loss
  fell from 2.315 (everything at 0) to 1.679 at outer step 4, within 5 % of the best, 1.628.
  The two rates rose by 0.03 per step. The second turned back at step 4 (its γ halved) and
  settled near 0.077, and the first settled near 0.15. β and ξ moved one full step every time
  and never flipped sign: β reached 0.7 and ξ reached −3.5·10⁻³ (near the box's edge,
  −4·10⁻³). With γ_β = 0.1, β needs 9 steps just to reach 0.9. After two epochs the network
  underfits, so the hypergradient asks for *negative* weight decay, which lets the weights grow.
  The paper's 50-epoch runs are not in that regime.
* **FDS is far better than HD.** *Better, not far better, at this size.* FDS's final
  hyperparameters reach test accuracy 0.385, and HD 0.363 (its hypergradient rate 10⁻³ was the
  best of three on the validation loss). HD's α rises to 0.024 within 40 steps and then
  drifts down to 0.014: greedy steps favor small rates. FDS's learned α is 5-10 times larger.
  The gap comes from that α and from β, which HD was given at 0.9.
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

LOOK = """\
## What to look at
* **α.** Look at how many outer steps it takes to settle, and where in the run its largest
  value sits (the paper finds one-cycle-like schedules).
* **β and ξ.** They start at 0, where SGD has no momentum and no decay. Look at where they go,
  and whether ξ stays near zero.
* **HD's dashed α.** It is greedy: it grows only while each step's immediate gain says so.
"""
