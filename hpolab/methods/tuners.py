"""Black-box tuners over y for the alternating baselines: ask for a y, tell its value.

Each tuner sees only ``g(y) = f(x*(y), y)``, the objective after a full training of x.
"""

from __future__ import annotations

import math
import warnings

import optuna
import torch

from hpolab.smoothing import smoothed_gradient
from hpolab.validation import check_positive


class BayesianTuner:
    """Gaussian-process Bayesian optimization over the box ``bounds^ny`` (Optuna's GPSampler).

    The first trial is the run's own starting y (clipped into the box), so that every
    method starts from the same point.
    """

    def __init__(self, y0: torch.Tensor, bounds: tuple[float, float], generator: torch.Generator):
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.names = [f"y{i}" for i in range(y0.shape[0])]
        self.space = {n: optuna.distributions.FloatDistribution(*bounds) for n in self.names}
        start = y0.clamp(*bounds).tolist()
        self.study.enqueue_trial(dict(zip(self.names, start)))
        self.like = y0
        self.trial = None

    def ask(self, generator: torch.Generator) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna's experimental / independent-sampling notes
            self.trial = self.study.ask(self.space)
        values = [self.trial.params[n] for n in self.names]
        return torch.tensor(values, dtype=self.like.dtype, device=self.like.device)

    def tell(self, value: float) -> None:
        self.study.tell(self.trial, value)


class GaussianSmoothingTuner:
    """Nesterov & Spokoiny's random gradient-free method on g(y).

    Alternates two trainings: at ``y`` and at ``y + mu u``; then steps
    ``y <- y - h (g(y + mu u) - g(y)) / mu * u``, u ~ N(0, I), with the paper's
    ``h = 1 / (4 (ny + 4) L)``.
    """

    def __init__(self, y0: torch.Tensor, mu: float, smoothness: float, common_start: bool = True):
        self.mu = check_positive("mu", mu)
        self.common_start = common_start
        self.h = 1.0 / (4 * (y0.shape[0] + 4) * smoothness)
        self.y = y0
        self.u = None
        self.base_value = None

    @property
    def paired(self) -> bool:
        """True while the next trial is the probe y + mu u, to be compared with g(y) from the
        same start (when ``common_start``)."""
        return self.common_start and self.base_value is not None

    def ask(self, generator: torch.Generator) -> torch.Tensor:
        if self.base_value is None:
            return self.y
        self.u = torch.randn(self.y.shape, generator=generator, dtype=self.y.dtype).to(self.y.device)
        return self.y + self.mu * self.u

    def tell(self, value: float) -> None:
        if self.base_value is None:
            self.base_value = value
            return
        if math.isfinite(value - self.base_value):
            step = smoothed_gradient(torch.tensor(self.base_value), torch.tensor([value]), self.u[None], self.mu)
            self.y = self.y - self.h * step.to(self.y)
        self.base_value = None
