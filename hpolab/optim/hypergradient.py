"""Hypergradient-descent optimizers (Baydin et al., 2018): SGD-HD, SGDN-HD and Adam-HD.

Each step first adapts the learning rate of every parameter group online, then takes the
optimizer's usual step with it. The step before moved the weights by ``-alpha u_{t-1}``
(u the update direction: the gradient for SGD, the momentum direction for SGD with
momentum or Nesterov, the bias-corrected ``m / (sqrt(v) + eps)`` for Adam), so the loss at
the current weights has derivative ``dL/dalpha_{t-1} = -g_t . u_{t-1}`` with respect to the
last learning rate, and

    alpha_t = alpha_{t-1} - beta * dL/dalpha_{t-1} = alpha_{t-1} + beta * g_t . u_{t-1}.

The rule as printed (Baydin et al., Algorithm 1) and in their reference code
(github.com/gbaydin/hypergradient-descent) lets the rate go negative: a negative rate steps
uphill, consecutive gradients then align and the rule raises the rate again.
``nonnegative=True`` clamps the rate at 0 instead (where the rule can still raise it, since
``g_t . u_{t-1}`` is evaluated whatever the rate): a guard for callers that start from
alpha = 0 (the FDS studies' HD baseline). The HD-vs-decay studies use the printed rule,
``nonnegative=False``.

Other differences from the reference code: any number of parameter groups, each with its own
learned rate (and its own beta), where the reference allows one group (SGD-HD) or updates
the group's rate tensor by tensor (Adam-HD); Adam-HD's direction is torch's
``m_hat / (sqrt(v_hat) + eps)``, the reference's ``m_hat / (sqrt(v) + eps) * sqrt(1 - beta2^t)``
(they differ only in where eps enters); and every group's rate trajectory is kept in
``optimizer.lr_history[group]`` for plotting. With ``hypergrad_lr = 0`` the steps are exactly
``torch.optim.SGD`` / ``Adam``'s (single-tensor arithmetic, in the same order).
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from hpolab.validation import check_positive


def _check(lr: float, hypergrad_lr: float, weight_decay: float) -> None:
    if not lr >= 0:
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    if not hypergrad_lr >= 0:
        raise ValueError(f"hypergrad_lr (beta) must be >= 0, got {hypergrad_lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")


class _HypergradientOptimizer(Optimizer):
    """The part every HD optimizer shares: the learning-rate update and its history."""

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self.lr_history = [[group["lr"]] for group in self.param_groups]

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "lr_history"):
            self.lr_history.append([self.param_groups[-1]["lr"]])

    def _adapt_lr(self, group, gradients) -> float:
        """alpha <- alpha + beta g_t . u_{t-1} (floored at 0 when ``nonnegative``); the first
        step keeps alpha."""
        if group["hypergrad_lr"] == 0:
            return group["lr"]
        products = [torch.dot(g.reshape(-1), u.reshape(-1)) for p, g in gradients
                    if (u := self._last_direction(p, group)) is not None]
        if products:
            alignment = float(torch.stack(products).sum())
            lr = group["lr"] + group["hypergrad_lr"] * alignment
            group["lr"] = max(0.0, lr) if group["nonnegative"] else lr
        return group["lr"]

    def _last_direction(self, p, group):
        return self.state[p].get("direction")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            gradients = [(p, self._gradient(p, group)) for p in group["params"] if p.grad is not None]
            lr = self._adapt_lr(group, gradients)
            for p, g in gradients:
                self._step(p, g, group, lr)
            self.lr_history[index].append(lr)
        return loss

    @staticmethod
    def _gradient(p, group):
        g = p.grad
        return g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] != 0 else g


class SGDHD(_HypergradientOptimizer):
    """SGD-HD, and with ``momentum`` / ``nesterov`` SGDN-HD, in ``torch.optim.SGD``'s form.

    Args:
      params: parameters or parameter groups.
      lr: initial learning rate alpha_0, >= 0.
      hypergrad_lr: the hypergradient learning rate beta, >= 0 (0: plain SGD).
      momentum: in [0, 1); with ``nesterov`` the Nesterov variant (SGDN).
      weight_decay: L2 coefficient added to the gradient, >= 0.
      nonnegative: floor the learned rate at 0 (True), or follow the printed rule, which lets
        it go negative (False).

    Example:
      >>> model = torch.nn.Linear(3, 1)
      >>> optimizer = SGDHD(model.parameters(), lr=0.01, hypergrad_lr=1e-3, momentum=0.9, nesterov=True)
    """

    def __init__(self, params, lr=1e-3, hypergrad_lr=1e-4, momentum=0.0, nesterov=False, weight_decay=0.0,
                 nonnegative=True):
        _check(lr, hypergrad_lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs momentum in (0, 1), got momentum=0")
        defaults = dict(lr=lr, hypergrad_lr=hypergrad_lr, momentum=momentum, nesterov=nesterov,
                        weight_decay=weight_decay, nonnegative=bool(nonnegative))
        super().__init__(params, defaults)

    def _last_direction(self, p, group):
        # heavy-ball momentum's last direction is its buffer, still unchanged at this point
        key = "momentum_buffer" if group["momentum"] != 0 and not group["nesterov"] else "direction"
        return self.state[p].get(key)

    def _step(self, p, g, group, lr):
        """Move p by -lr u, keeping u where the next learning-rate update needs it."""
        state, momentum = self.state[p], group["momentum"]
        direction = g
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.clone(g).detach()
            else:
                state["momentum_buffer"].mul_(momentum).add_(g)
            buffer = state["momentum_buffer"]
            direction = g.add(buffer, alpha=momentum) if group["nesterov"] else buffer
        p.add_(direction, alpha=-lr)
        if group["hypergrad_lr"] > 0 and (momentum == 0 or group["nesterov"]):
            if direction is p.grad:  # the next backward may reuse p.grad: keep a copy, in last step's buffer
                direction = state["direction"].copy_(direction) if "direction" in state else direction.clone()
            state["direction"] = direction


class AdamHD(_HypergradientOptimizer):
    """Adam-HD in ``torch.optim.Adam``'s form (L2 ``weight_decay`` added to the gradient).

    Args:
      lr: initial learning rate, >= 0.
      hypergrad_lr: beta of the hypergradient rule, >= 0 (0: plain Adam).
      betas: Adam's (beta1, beta2), each in [0, 1).
      eps: > 0.
      weight_decay: L2 coefficient added to the gradient, >= 0.
      nonnegative: floor the learned rate at 0 (True), or follow the printed rule (False).
    """

    def __init__(self, params, lr=1e-3, hypergrad_lr=1e-7, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 nonnegative=True):
        _check(lr, hypergrad_lr, weight_decay)
        for name, value in zip(("betas[0]", "betas[1]"), betas):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        check_positive("eps", eps)
        super().__init__(params, dict(lr=lr, hypergrad_lr=hypergrad_lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, nonnegative=bool(nonnegative)))

    def _step(self, p, g, group, lr):
        """Adam's step with rate lr, keeping its direction m_hat / (sqrt(v_hat) + eps) when
        the learning rate is learned (else exactly torch's arithmetic)."""
        beta1, beta2 = group["betas"]
        state = self.state[p]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(g, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(g, g.conj(), value=1 - beta2)
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** state["step"])
        if group["hypergrad_lr"] == 0:
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
            return
        # torch's arithmetic, written into the direction's buffer (kept across steps) instead of new tensors
        if "direction" not in state:
            state["direction"] = torch.empty_like(p)
        direction = torch.sqrt(exp_avg_sq, out=state["direction"]).div_(bias_correction2_sqrt).add_(group["eps"])
        torch.div(exp_avg, direction, out=direction).div_(bias_correction1)
        p.add_(direction, alpha=-lr)
