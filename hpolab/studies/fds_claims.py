"""The claims of the FDS paper (Micaelli & Storkey) that studies 08 to 11 check.

Each check reads the study's result and decides from its numbers alone. The paper states its
findings in words; these are the readings (one was changed after a run, and it made that
claim fail rather than hold: "works" compared W = 1 with FDS until a cpu run in which both had
failed passed it; it now compares with cosine annealing):

- **"significantly" lower error** (08): at least :data:`MATERIAL` (10 %) lower, and lower in at
  least 95 % of :data:`BOOTSTRAPS` resamples of the seeds; **"significantly" better
  accuracy** (10): a difference over twice its standard error across the evaluation seeds
  (Welch, sample standard deviations);
- **"not worse"** (a schedule that "works" against cosine annealing): the mean is not below
  the other by more than twice that standard error;
- **"W ~ 50" of T = 250**: the W of lowest measured MSE lies inside the run (1 < W < T) and
  within a factor :data:`NEAR_FACTOR` of T / 5;
- **converged**: the authors' own stopping rule (``converged_frac`` = 0.05 in their code),
  every hyperparameter's next step below 5 % of its value (of its first step, for values
  near 0): :func:`hpolab.methods.fds.converged`;
- **zero regret**: within :data:`ZERO_REGRET` (one point of test accuracy) of the reference,
  the seed-to-seed spread of a test accuracy at these sizes; **"~20x sooner"**: at least
  :data:`SPEEDUP` (10) times sooner, an order of magnitude; when the slower method never
  gets there, the budget over the faster one's time is a lower bound on the speed-up, and
  the claim is not testable if that bound is under the threshold;
- **"~10 % test accuracy" better than HD**: a regret at least :data:`HD_GAP` (5 points) lower.

Claims about SVHN are ``not testable here`` when the run used MNIST (SVHN is not in data/).
"""

from __future__ import annotations

import math

import numpy as np

from hpolab.claims import Claim, untestable, verdict

SOURCE = "FDS (Micaelli & Storkey)"
BOOTSTRAPS = 1000
MATERIAL = 0.10
NEAR_FACTOR = 3.0
CONVERGED_FRAC = 0.05
ZERO_REGRET = 0.01
SPEEDUP = 10.0
HD_GAP = 0.05


def _g(value: float) -> str:
    return f"{value:.3g}" if value == value else "nan"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


# ---------------------------------------------------------------------------------------------
# Study 08: hypergradient noise


def greedy_error(nongreedy: np.ndarray, greedy: np.ndarray) -> dict:
    """Greedy hypergradients against the non-greedy ensemble mean mu: their MSE, split into
    bias^2 (mean over t of (E[greedy_t] - mu_t)^2) and variance, and how often their mean
    has mu's sign."""
    mu = nongreedy.mean(axis=0)
    mean = greedy.mean(axis=0)
    return {
        "mse": float(((greedy - mu) ** 2).mean()),
        "bias2": float(((mean - mu) ** 2).mean()),
        "variance": float(greedy.var(axis=0).mean()),
        "same_sign": float((np.sign(mean) == np.sign(mu)).mean()),
    }


def shared_mse(g: np.ndarray, window: int, mu: np.ndarray | None = None) -> float:
    """MSE of the window means of ``g`` (seeds, T) against ``mu`` (default: g's seed mean)."""
    mu = g.mean(axis=0) if mu is None else mu
    T = g.shape[1]
    if T % window == 0:
        shared = np.repeat(g.reshape(len(g), T // window, window).mean(axis=2), window, axis=1)
    else:
        shared = np.empty_like(g)
        for start in range(0, T, window):
            shared[:, start:start + window] = g[:, start:start + window].mean(axis=1, keepdims=True)
    return float(((shared - mu) ** 2).mean())


def paper_window(horizon: int, windows) -> int:
    """The window the paper's W = 50 of T = 250 corresponds to: the W nearest T / 5."""
    return int(min(windows, key=lambda w: (abs(math.log(w / (horizon / 5))), w)))


def check_greedy_poor_estimate(result):
    e = greedy_error(result.nongreedy, result.greedy)
    mse1 = shared_mse(result.nongreedy, 1)
    return verdict(e["mse"] > mse1,
                   f"greedy MSE against mu {_g(e['mse'])} (bias^2 {_g(e['bias2'])}, variance {_g(e['variance'])}) "
                   f"vs one non-greedy seed's MSE_1 {_g(mse1)}; greedy mean has mu's sign at "
                   f"{_pct(e['same_sign'])} of steps")


def check_sharing_lowers_mse(result):
    g = result.nongreedy
    T = g.shape[1]
    W = paper_window(T, [w for w in result.table["W"] if w > 1] or [1])
    if W == 1:
        return untestable(f"no window W > 1 in this run (T = {T})")
    mse1, mseW = shared_mse(g, 1), shared_mse(g, W)
    rng = np.random.default_rng(0)
    lower = 0
    for _ in range(BOOTSTRAPS):
        sample = g[rng.integers(0, len(g), len(g))]
        lower += shared_mse(sample, W) < shared_mse(sample, 1)
    share = lower / BOOTSTRAPS
    return verdict(mseW <= (1 - MATERIAL) * mse1 and share >= 0.95,
                   f"MSE_1 {_g(mse1)}, MSE_{W} {_g(mseW)} ({_g(mse1 / mseW)}x lower; W = {W} of T = {T}); "
                   f"lower in {_pct(share)} of {BOOTSTRAPS} resamples of the {len(g)} seeds (accepted: >= {_pct(MATERIAL)} "
                   f"lower, in >= 95 %)")


def check_best_window(result):
    table = result.table
    T = result.nongreedy.shape[1]
    best = int(table.loc[table["measured MSE"].idxmin(), "W"])
    target = T / 5
    near = 1 < best < T and target / NEAR_FACTOR <= best <= target * NEAR_FACTOR
    return verdict(near, f"lowest measured MSE at W = {best} of T = {T} (the paper's 50 of 250 is W = {target:g} here; "
                         f"accepted: 1 < W < T within {NEAR_FACTOR:g}x of it)")


def check_bound_holds(result):
    table = result.table
    ok = table["bound"] >= table["measured MSE"]
    slack = float((table["bound"] / table["measured MSE"]).min())
    t = result.terms
    return verdict(bool(ok.all()), f"bound >= measured MSE at {int(ok.sum())} of {len(table)} windows "
                                   f"(smallest bound / MSE {_g(slack)}); measured MSE_1 {_g(t.mse1)}, "
                                   f"c {_g(t.c)}, epsilon {_g(t.epsilon)}")


def check_bound_shape(result):
    table = result.table
    best = int(table.loc[table["measured MSE"].idxmin(), "W"])
    bound_best = int(table.loc[table["bound"].idxmin(), "W"])
    ratio = max(best, bound_best) / min(best, bound_best)
    return verdict(ratio <= 2, f"the bound is lowest at W = {bound_best}, the measured MSE at W = {best} "
                               f"(accepted: within a factor 2)")


NOISE = "08_fds_hypergradient_noise"
NOISE_CLAIMS = [
    Claim("greedy-hypergradients-poor-estimate", NOISE,
          "We observe that greediness is a poor approximation to the optimal hypergradients.",
          f"{SOURCE}, section 5.1, Figure 2", check_greedy_poor_estimate),
    Claim("sharing-lowers-mse", NOISE,
          "Time averaging contiguous hypergradients in the non-greedy case can significantly reduce the MSE "
          "even when averaging over only W = 50 steps.",
          f"{SOURCE}, section 5.1, Figure 2", check_sharing_lowers_mse),
    Claim("best-window-about-50", NOISE,
          "The best trade-off between noise reduction and bias increase is W = 50 (T = 250).",
          f"{SOURCE}, Figure 2 caption", check_best_window),
    Claim("theorem-4-1-bound-holds", NOISE,
          "MSE_W <= (1 + c(W - 1))/W MSE_1 + eps^2 (W^2 - 1)/12, with Sigma, c and eps measured "
          "('to verify that our upper bound holds').",
          f"{SOURCE}, Theorem 4.1 and section 5.1", check_bound_holds),
    Claim("theorem-4-1-bound-shape", NOISE,
          "The shape of the upper bound in Theorem 4.1 as a function of W closely matches that of the "
          "measured MSE.",
          f"{SOURCE}, section 5.1 (Appendix B)", check_bound_shape),
]


# ---------------------------------------------------------------------------------------------
# Studies 09 to 11: accuracies over seeds


def welch(a, b) -> tuple[float, float]:
    """(mean(a) - mean(b), its standard error) over finite values; NaN when either has < 2."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return (float(a.mean() - b.mean()) if len(a) and len(b) else math.nan), math.nan
    return float(a.mean() - b.mean()), float(math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


def _acc(values) -> str:
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "diverged"
    spread = f" +- {finite.std(ddof=1):.3f}" if len(finite) > 1 else ""
    return f"{finite.mean():.3f}{spread} (n {len(values)})"


# Study 09: learned schedules

LEARNED_SCHEDULES = "09_fds_lr_schedules"


def _has(result, *methods) -> str:
    missing = [m for m in methods if m not in result.rates or m not in result.accuracies]
    return f"the run has no {', '.join(missing)}" if missing else ""


def check_greedy_too_small(result):
    if why := _has(result, "greedy", "fds"):
        return untestable(why)
    greedy, fds = np.asarray(result.rates["greedy"]), np.asarray(result.rates["fds"])
    below = float((greedy < fds).mean())
    diff, se = welch(result.accuracies["greedy"], result.accuracies["fds"])
    return verdict(below > 0.5 and diff < 0,
                   f"greedy's rate is below FDS's at {_pct(below)} of steps (mean {_g(greedy.mean())} vs "
                   f"{_g(fds.mean())}); test accuracy {_acc(result.accuracies['greedy'])} vs FDS "
                   f"{_acc(result.accuracies['fds'])} [{result.dataset}]")


def check_no_sharing_fails_on_svhn(result):
    if result.dataset != "svhn":
        return untestable(f"needs SVHN, which is not in data/: this run used {result.dataset}")
    if why := _has(result, "non-greedy", "fds"):
        return untestable(why)
    single, fds = np.asarray(result.rates["non-greedy"]), np.asarray(result.rates["fds"])
    diff, se = welch(result.accuracies["non-greedy"], result.accuracies["fds"])
    return verdict(single.mean() > fds.mean() and diff < 0,
                   f"W = 1 mean rate {_g(single.mean())} vs FDS {_g(fds.mean())}; test accuracy "
                   f"{_acc(result.accuracies['non-greedy'])} vs {_acc(result.accuracies['fds'])}")


def check_no_sharing_works_on_mnist(result):
    if result.dataset != "mnist":
        return untestable(f"a claim about MNIST; this run used {result.dataset}")
    if why := _has(result, "non-greedy", "cosine"):
        return untestable(why)
    diff, se = welch(result.accuracies["non-greedy"], result.accuracies["cosine"])
    return verdict(diff >= -2 * se if se == se else diff >= 0,
                   f"W = 1 test accuracy {_acc(result.accuracies['non-greedy'])} vs cosine annealing "
                   f"{_acc(result.accuracies['cosine'])}: difference {_g(diff)}, 2 SE {_g(2 * se)} "
                   f"(works: not below by more than 2 SE)")


def check_fds_matches_cosine(result):
    if why := _has(result, "fds", "cosine"):
        return untestable(why)
    diff, se = welch(result.accuracies["fds"], result.accuracies["cosine"])
    return verdict(diff >= -2 * se if se == se else diff >= 0,
                   f"FDS test accuracy {_acc(result.accuracies['fds'])} vs cosine annealing "
                   f"{_acc(result.accuracies['cosine'])}: difference {_g(diff)}, 2 SE {_g(2 * se)} "
                   f"(works: not below by more than 2 SE) [{result.dataset}]")


def check_fds_beats_cosine_on_svhn(result):
    if result.dataset != "svhn":
        return untestable(f"needs SVHN, which is not in data/: this run used {result.dataset}")
    if why := _has(result, "fds", "cosine"):
        return untestable(why)
    diff, se = welch(result.accuracies["fds"], result.accuracies["cosine"])
    return verdict(diff > 0, f"FDS test accuracy {_acc(result.accuracies['fds'])} vs cosine annealing "
                             f"{_acc(result.accuracies['cosine'])}: difference {_g(diff)} (2 SE {_g(2 * se)})")


SCHEDULE_CLAIMS = [
    Claim("greedy-learns-too-small-rates", LEARNED_SCHEDULES,
          "Greedy optimization leads to poor solutions with learning rates that are always too small.",
          f"{SOURCE}, section 5.2, Figure 3", check_greedy_too_small),
    Claim("no-sharing-works-on-mnist", LEARNED_SCHEDULES,
          "The non-greedy setting without sharing works well for simple datasets like MNIST.",
          f"{SOURCE}, section 5.2, Figure 3", check_no_sharing_works_on_mnist),
    Claim("no-sharing-fails-on-svhn", LEARNED_SCHEDULES,
          "[Without sharing] it fails for real-world datasets like SVHN, converging to much higher learning "
          "rates than reasonable.",
          f"{SOURCE}, section 5.2, Figure 3", check_no_sharing_fails_on_svhn),
    Claim("fds-works-against-cosine", LEARNED_SCHEDULES,
          "Sharing ... allows us to learn a much more sensible learning rate schedule (FDS works as well as a "
          "reasonable off-the-shelf cosine annealing schedule).",
          f"{SOURCE}, section 5.2, Figure 3", check_fds_matches_cosine),
    Claim("fds-beats-cosine-on-svhn", LEARNED_SCHEDULES,
          "[FDS's schedule] can even outperform a reasonable cosine annealing off-the-shelf schedule on SVHN.",
          f"{SOURCE}, section 5.2, Figure 3", check_fds_beats_cosine_on_svhn),
]


# Study 10: CIFAR-10

CIFAR = "10_fds_cifar"
PAPER_OUTER_STEPS = 10


def converged_at(frame) -> int | None:
    """The first outer step after which the authors' stopping rule holds (see
    :func:`hpolab.methods.fds.converged`), from the history's ``relative_step`` column."""
    steps = frame.loc[frame["relative_step"] < CONVERGED_FRAC, "step"] if "relative_step" in frame else []
    return int(steps.iloc[0]) + 1 if len(steps) else None


def check_fds_converges(result):
    frame = result.fds.frame
    outer = int((frame["kind"] == "hypergradient").sum())
    at = converged_at(frame)
    last = frame["relative_step"].dropna()
    largest = f"; largest relative step at the end {_g(float(last.iloc[-1]))}" if len(last) else ""
    if at is not None:
        return verdict(at <= PAPER_OUTER_STEPS, f"every next step below {_pct(CONVERGED_FRAC)} of its value after "
                                                f"outer step {at} of {outer}")
    if outer < PAPER_OUTER_STEPS:
        return untestable(f"not converged within the {outer} outer steps run (fewer than {PAPER_OUTER_STEPS}){largest}")
    return verdict(False, f"not converged within {outer} outer steps{largest}")


def check_fds_beats_hd(result):
    fds, hd = result.accuracies.get("FDS", []), result.accuracies.get("HD", [])
    if not len(fds) or not len(hd):
        return untestable("the run has no FDS or no HD evaluation")
    diff, se = welch(fds, hd)
    return verdict(diff > 2 * se if se == se else False,
                   f"test accuracy FDS {_acc(fds)} vs HD {_acc(hd)}: difference {_g(diff)}, 2 SE {_g(2 * se)}")


CIFAR_CLAIMS = [
    Claim("fds-converges-within-10-outer-steps", CIFAR,
          "All hyperparameters are initialized to zero and converge within just 10 outer steps.",
          f"{SOURCE}, section 5.3, Figure 4", check_fds_converges),
    Claim("fds-significantly-better-than-hd", CIFAR,
          "[They converge] to values that significantly outperform Hypergradient Descent (HD), the greedy "
          "alternative.",
          f"{SOURCE}, section 5.3, Figure 4", check_fds_beats_hd),
]


# Study 11: FDS against black-box HPO

HPO = "11_fds_vs_hpo"
BLACKBOX_OTHERS = ("random-search", "bayesian", "hyperband")


def check_fds_faster_than_bohb(result):
    budget = result.budget
    fds, bohb = result.time_to_regret("fds", ZERO_REGRET), result.time_to_regret("bohb", ZERO_REGRET)
    unit = result.axis_unit
    if fds is None or bohb is None:
        return untestable("the run has no FDS or no BOHB-like")
    if not fds == fds:
        return verdict(False, f"FDS never reached regret <= {ZERO_REGRET:g} within {_g(budget)} {unit}")
    if bohb == bohb:
        return verdict(bohb / fds >= SPEEDUP, f"regret <= {ZERO_REGRET:g} after {_g(fds)} {unit} (FDS) vs {_g(bohb)} "
                                              f"(BOHB-like): {_g(bohb / fds)}x sooner (accepted: >= {SPEEDUP:g}x)")
    bound = budget / fds
    found = (f"FDS reached regret <= {ZERO_REGRET:g} after {_g(fds)} {unit}; BOHB-like did not within "
             f"{_g(budget)} {unit}: at least {_g(bound)}x sooner")
    return verdict(True, found) if bound >= SPEEDUP else untestable(f"{found}, under the {SPEEDUP:g}x to decide")


def check_others_never_zero(result):
    reached, ran = [], []
    for method in (*BLACKBOX_OTHERS, "hd"):
        t = result.time_to_regret(method, ZERO_REGRET)
        if t is None:
            continue
        ran.append(method)
        if t == t:
            reached.append(f"{method} after {_g(t)} {result.axis_unit}")
    if not ran:
        return untestable("the run has none of random search, BO, Hyperband, HD")
    return verdict(not reached, f"{', '.join(reached) if reached else 'none'} of {', '.join(ran)} reached regret "
                                f"<= {ZERO_REGRET:g} within {_g(result.budget)} {result.axis_unit}")


def check_fds_beats_hd_regret(result):
    fds, hd = result.final_regret("fds"), result.final_regret("hd")
    if fds is None or hd is None:
        return untestable("the run has no FDS or no HD")
    gap = hd - fds
    return verdict(gap >= HD_GAP, f"final regret FDS {_g(fds)} vs HD {_g(hd)}: {_g(gap)} lower "
                                  f"(the paper: ~0.1; accepted: >= {HD_GAP:g})")


HPO_CLAIMS = [
    Claim("fds-zero-regret-20x-sooner-than-bohb", HPO,
          "Our method reaches zero regret in just 3 hours, while the next best method (BOHB) reaches zero "
          "regret in 60 hours (converging 20 times faster).",
          f"{SOURCE}, section 5.4, Figure 1", check_fds_faster_than_bohb),
    Claim("others-never-reach-zero-regret", HPO,
          "Other methods [RS, BO, HB, HD] did not reach zero regret in the maximum of 100 hours they were run for.",
          f"{SOURCE}, section 5.4, Figure 1", check_others_never_zero),
    Claim("fds-beats-hd-by-10-points", HPO,
          "We retain the convergence speed of online greedy differentiation while outperforming its regret by "
          "~10% test accuracy.",
          f"{SOURCE}, section 5.4, Figure 1", check_fds_beats_hd_regret),
]
