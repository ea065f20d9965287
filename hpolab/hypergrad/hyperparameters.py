"""Hyperparameters of a training run: optimizer schedules shared over windows, and loss terms.

The inner optimizer is SGD with momentum and weight decay in PyTorch's form,

    v_t = beta_t v_{t-1} + grad L_train(theta_{t-1}) + xi_t theta_{t-1},   theta_t = theta_{t-1} - alpha_t v_t,

and each of alpha (``lr``), beta (``momentum``) and xi (``weight_decay``) is a *schedule*: a
tensor of N values, value i used for the W contiguous steps ``i W .. (i + 1) W - 1`` (the
FDS paper's sharing; W = T means one value, W = 1 one value per step). Hyperparameters of
the training loss (a log-l2 penalty, example weights) are tensors of any shape.

Only the names in ``learn`` are differentiated; their values are packed, in order, into
one flat vector h so that every estimator returns d L_val / d h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from hpolab.validation import check_count

SCHEDULES = ("lr", "momentum", "weight_decay")


def windows_for(horizon: int, window: int) -> int:
    """How many values a schedule over ``horizon`` steps with windows of ``window`` needs."""
    check_count("T", horizon, minimum=1)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= horizon:
        raise ValueError(f"W must be an integer in [1, T] = [1, {horizon}], got {window!r}")
    return math.ceil(horizon / window)


@dataclass(frozen=True)
class Hyperparameters:
    """The hyperparameters of one training run of ``horizon`` steps.

    Attributes:
      horizon: T, the number of inner steps.
      values: ``lr``, ``momentum``, ``weight_decay`` (1-D schedules) and any loss
        hyperparameters, as tensors.
      windows: W per schedule (T when not given).
      learn: the names whose hypergradients are wanted, in packing order.
    """

    horizon: int
    values: dict[str, torch.Tensor]
    windows: dict[str, int] = field(default_factory=dict)
    learn: tuple[str, ...] = ("lr",)

    def __post_init__(self):
        values = dict(self.values)
        for name in SCHEDULES:
            values.setdefault(name, torch.zeros(1, dtype=torch.float64))
        windows = {name: self.windows.get(name, self.horizon) for name in SCHEDULES}
        for name in SCHEDULES:
            need = windows_for(self.horizon, windows[name])
            values[name] = torch.as_tensor(values[name]).reshape(-1)
            if values[name].numel() != need:
                raise ValueError(
                    f"{name} schedule has {values[name].numel()} values, but T={self.horizon} with "
                    f"W={windows[name]} needs ceil(T / W) = {need}"
                )
        unknown = [name for name in self.learn if name not in values]
        if unknown:
            raise ValueError(f"learn names {unknown}, which are not among the hyperparameters {sorted(values)}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "learn", tuple(self.learn))

    @property
    def sizes(self) -> list[int]:
        return [self.values[name].numel() for name in self.learn]

    def pack(self) -> torch.Tensor:
        """The learned values as one flat vector h (float64 on the CPU)."""
        return torch.cat([self.values[name].reshape(-1).double().cpu() for name in self.learn])

    def unpack(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector like :meth:`pack`'s into tensors shaped like the values."""
        parts = torch.split(flat, self.sizes)
        return {name: part.reshape(self.values[name].shape) for name, part in zip(self.learn, parts)}

    def replace(self, **values: torch.Tensor) -> "Hyperparameters":
        return Hyperparameters(self.horizon, {**self.values, **values}, self.windows, self.learn)

    def with_flat(self, flat: torch.Tensor) -> "Hyperparameters":
        """The same hyperparameters with the learned ones taken from ``flat``."""
        return self.replace(**{k: v.detach().clone() for k, v in self.unpack(flat).items()})

    def window_index(self, name: str, step: int) -> int:
        return step // self.windows[name]

    def first_step(self) -> torch.Tensor:
        """For each entry of h, the first inner step that uses it (loss terms: step 0)."""
        firsts = []
        for name in self.learn:
            n = self.values[name].numel()
            if name in SCHEDULES:
                firsts.append(torch.arange(n) * self.windows[name])
            else:
                firsts.append(torch.zeros(n, dtype=torch.long))
        return torch.cat(firsts)


def schedule(horizon: int, lr=0.1, momentum=0.0, weight_decay=0.0, *, windows: dict | None = None,
             learn=("lr",), dtype=torch.float64, **loss_terms) -> Hyperparameters:
    """Build :class:`Hyperparameters`; a scalar fills its whole schedule.

    Example:
      >>> h = schedule(100, lr=0.05, momentum=0.9, windows={"lr": 25}, learn=("lr", "momentum"))
      >>> h.values["lr"].tolist(), h.pack().numel()
      ([0.05, 0.05, 0.05, 0.05], 5)
    """
    windows = dict(windows or {})
    values = {}
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        n = windows_for(horizon, windows.get(name, horizon))
        tensor = torch.as_tensor(value, dtype=dtype).reshape(-1)
        values[name] = tensor.expand(n).clone() if tensor.numel() == 1 else tensor
    for name, value in loss_terms.items():
        values[name] = torch.as_tensor(value, dtype=dtype)
    return Hyperparameters(horizon, values, windows, tuple(learn))
