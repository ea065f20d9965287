"""Writes notebooks/01_jd_sphere.ipynb (kept for reference; edit the notebook directly)."""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


cells = [
    md("""# 01 · Joint Descent on the sphere: train and tune at once

*Paper:* **Joint Descent: Training and Tuning Simultaneously** (ICLR 2021 submission;
`../shared/papers/joint-descent.txt`), section 4.1, **Figures 1 and 2**.

f(x, y) = |x|² + |y|² over nx = 30 training variables x and ny = 32 hyperparameters y,
randomly rotated (in the joint space, so x and y interact) and shifted; the
*ill-conditioned* variant scales rotated coordinate i by s_i, linear from 1 to n = 62.
Every iteration is one gradient evaluation *or* one function evaluation.

* **JD** (Algorithm 1): with probability p a gradient step on x, otherwise a gradientless
  step on y (the best of y and one Gaussian try per radius 2^i r, up to R).
* **AJD** (Algorithm 2): Nesterov-style coupling driven by an estimate of the gradient
  of the Gaussian-smoothed f that is unbiased for every p (x-gradient / p, or a
  two-point zeroth-order estimate / (1 - p)).
* **Alternating** baselines: train x from a random start until f changes by < 1 %,
  then the next y from GP Bayesian optimization (Optuna) or from Nesterov–Spokoiny
  zeroth-order steps.

**The paper's claims:** p ≈ 0.5 works best, also for AJD; AJD beats JD; JD reaches a
better value before the alternating methods pick their second y."""),
    tagged(code("""scale: str = "cpu"  # smoke (seconds, CI) | cpu (minutes on a laptop) | paper (longer runs, 10 seeds)
functions: list = ["sphere", "ill-conditioned sphere"]  # objectives studied
methods: list = ["jd", "ajd", "alt-bo", "alt-zo"]  # JD, accelerated JD, alternating with BO / zeroth-order
p_values: list = [0.1, 0.3, 0.5, 0.7, 0.9]  # gradient-step probabilities of JD and AJD, each in (0, 1)
ajd_step_scales: list = [1.0, 4.0]  # AJD steps as multiples of the paper step 1 / (8 beta (ny + 4))
iterations: int = 0  # evaluations per run; 0 takes the scale default (smoke 60, cpu 1000, paper 3000)
seeds: int = 0  # seeds per configuration; 0 takes the scale default (smoke 1, cpu 3, paper 10)
mu: float = 0.001  # Gaussian smoothing radius of AJD and of the zeroth-order baseline, > 0
device: str = "cpu"  # auto | cpu | cuda:N | mps
results_dir: str = ""  # folder for summary.csv / histories.csv ("" saves nothing; `hpolab run` sets it)"""),
           "parameters"),
    code("""import plotly.io as pio

from hpolab.plots import objective_figure, sweep_figure
from hpolab.studies import jd_sphere
from hpolab.tables import show

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON: render in JupyterLab, compare in nbval"""),
    md("## Run the study\nOne call: every function × seed × method configuration, with a progress bar."),
    tagged(code("""result = jd_sphere.run_study(
    scale, functions=functions, methods=methods, p_values=p_values, iterations=iterations or None,
    seeds=seeds or None, mu=mu, ajd_step_scales=ajd_step_scales, device=device,
)
if results_dir:
    for kind, path in result.save(results_dir).items():
        print(f"{kind}: {path}")"""), "nbval-ignore-output"),
    md("""## Summary
Mean over seeds of the objective at the end of each run (`final`) and the best value seen
(`best`; for the alternating methods, x restarts at random every cycle, so `final` is
mid-cycle). Rounded to 3 significant digits."""),
    tagged(code("""show(result.summary)"""), "nbval-check-output"),
    md("""## Figure 1: JD for each p against the alternating baselines
Objective at the current iterate against iterations (log scale): geometric mean over
seeds, band from the best to the worst seed."""),
    tagged(code("""def pick(function, *names):
    return [h for h in result.histories if h.problem == function and jd_sphere.variant(h) in names]


for function in functions:
    objective_figure(pick(function, "JD", "Alternating BO", "Alternating ZO"),
                     title=f"JD on the {function} (nx=30, ny=32)").show()"""), "nbval-ignore-output"),
    md("""## Figure 2: AJD for each p
With the paper's step (`AJD`) and with larger multiples of it (`AJD step xk`)."""),
    tagged(code("""for function in functions:
    for name in sorted({jd_sphere.variant(h) for h in result.histories if h.method == "ajd"}):
        objective_figure(pick(function, name), title=f"{name} on the {function}").show()"""),
           "nbval-ignore-output"),
    md("""## The p sweep
Best objective at the end of the budget against p; dashed lines are the alternating
baselines."""),
    tagged(code("""for function in functions:
    sweep_figure([h for h in result.histories if h.problem == function],
                 title=f"Best objective against p, {function}").show()"""), "nbval-ignore-output"),
    md("## The paper's claims, checked on this run"),
    tagged(code("""print("\\n".join(jd_sphere.findings(result)))"""), "nbval-check-output"),
    md("""FINDINGS_PLACEHOLDER"""),
    md("""## Try it yourself
Pick a function, a method, p (the slider keeps it inside (0, 1)), mu, AJD's step, the
budget, the seed and the device, then **Run**: the run is drawn live and joins the figure;
**Stop** ends it and keeps what it computed; **Clear** starts over."""),
    tagged(code("""jd_sphere.panel(iterations=result.parameters["iterations"], device=device)"""), "nbval-ignore-output"),
    md("""## What to look at
* **The p sweep**: where is the minimum for JD, and does it move for AJD? The paper says
  p ≈ 0.5 for both; on the plain sphere one gradient step solves x, so gradient steps
  after that are wasted — watch small p win there.
* **Sawtooth**: each alternating cycle restarts x at random; compare where JD is when the
  baselines start their second cycle.
* **AJD's step**: the paper's h is a worst-case constant; compare `AJD` with
  `AJD step x4`, and see which p survive the larger step (the estimate's variance grows
  like 1/p and 1/(1 - p)).
* **Ill-conditioning** slows everything down; is acceleration worth more there?"""),
]

nb = nbf.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/01_jd_sphere.ipynb")
