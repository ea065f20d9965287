"""Forward-mode hypergradients (FDS, RFHO's forward method) and their greedy variant.

Forward mode carries the tangents Z = d theta_t / d h and C = d v_t / d h (one row per
learned hyperparameter value, K in all) along the training run; at the end
``dL_val/dh = Z_T grad L_val(theta_T)``. Memory is O(K D), whatever T. Differentiating the
SGD step ``v' = beta v + g + xi theta``, ``theta' = theta - alpha v'`` gives (the paper's
Eq. 3-4, for every hyperparameter at once)

    dg  = H Z + d g / d h                      (the mixed term: loss hyperparameters only)
    C'  = beta C + dg + xi Z + v e_beta + theta e_xi
    Z'  = Z - alpha C' - v' e_alpha

where e_alpha marks the row of the learning-rate value used at this step (likewise beta,
xi). Rather than one double-backward Hessian-vector product per row (the official FDS
code), each step makes one gradient with ``create_graph=True`` and one *batched*
double-backward (``is_grads_batched=True``) for all rows at once (a plain one for a single
row, where vmap's set-up costs more than it saves); the mixed term rides in
the same backward, since d/dtheta (dL/dlambda . e) = d g / d lambda e by symmetry. A row
joins from the first step that uses its value (it is zero before).

A task that clamps its training gradient (``grad_clip`` c) steps with clamp(g) and carries
its tangent: dg is zeroed on the coordinates where |g| > c (torch.clamp's derivative).
This module implements SGD with momentum only; a task with another inner optimizer (Adam)
goes through :mod:`hpolab.hypergrad.unrolled_forward` or reverse mode.

Greedy (horizon H): every H steps the hypergradient of L_val(theta_t) with respect to the
values used in those H steps is accumulated and the tangents restart from zero, i.e. the
weights entering each chunk are treated as constants. H = 1 is hypergradient descent's
setting.
"""

from __future__ import annotations

import bisect

import torch

from hpolab.hypergrad.cost import Meter
from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.result import Estimator, Hypergradient, diverged_result, validation_gradient
from hpolab.hypergrad.task import InnerTask
from hpolab.hypergrad.unroll import Watch, loss_terms
from hpolab.validation import check_count


class Layout:
    """Where each learned hyperparameter sits in h, and which rows step t touches.

    Tangent rows are kept sorted by the first step that uses them, so that the rows a
    non-greedy step works on are always a prefix (a view, not a copy).
    """

    def __init__(self, hyper: Hyperparameters):
        self.hyper = hyper
        self.offsets, offset = {}, 0
        for name, size in zip(hyper.learn, hyper.sizes):
            self.offsets[name] = offset
            offset += size
        self.size = offset
        first = hyper.first_step()
        lasts = []
        for name in hyper.learn:
            n = hyper.values[name].numel()
            if name in SCHEDULES:
                lasts.append(torch.clamp((torch.arange(n) + 1) * hyper.windows[name] - 1, max=hyper.horizon - 1))
            else:
                lasts.append(torch.full((n,), hyper.horizon - 1))
        self.order = torch.argsort(first, stable=True)  # row r holds h[order[r]]
        self.position = torch.empty_like(self.order)
        self.position[self.order] = torch.arange(self.size)
        self.first, self.last = first[self.order].tolist(), torch.cat(lasts)[self.order].tolist()  # by row
        self.loss_terms = [name for name in hyper.learn if name not in SCHEDULES]
        term_index = torch.full((self.size,), -1)  # a loss term's entry of h -> its entry in the flat terms
        position = 0
        for name in self.loss_terms:
            n = hyper.values[name].numel()
            term_index[self.offsets[name]:self.offsets[name] + n] = torch.arange(position, position + n)
            position += n
        self.term_index = term_index[self.order]
        self._position = self.position.tolist()  # row() reads it at every step: without a tensor op
        self._rows: dict = {}

    def rows(self, step: int, start: int) -> tuple[slice | torch.Tensor, torch.Tensor, list[int]]:
        """The rows in use at ``step`` in a chunk beginning at ``start``: (a slice when contiguous,
        else their numbers; their numbers as a tensor; and as a list). Rows are sorted by their
        first step, so the rows begun by ``step`` are a prefix: the answer depends on its length
        and ``start`` only, and is worked out once per pair."""
        key = (bisect.bisect_right(self.first, step), start)
        if key not in self._rows:
            members = [r for r in range(key[0]) if self.last[r] >= start]
            index = torch.tensor(members, dtype=torch.long)
            contiguous = not members or members[-1] - members[0] + 1 == len(members)
            rows = slice(members[0] if members else 0, members[-1] + 1 if members else 0) if contiguous else index
            self._rows[key] = (rows, index, members)
        return self._rows[key]

    def row(self, name: str, step: int) -> int | None:
        """The row holding the value of schedule ``name`` used at ``step`` (None if not learned)."""
        if name not in self.offsets:
            return None
        return self._position[self.offsets[name] + self.hyper.window_index(name, step)]


def forward_hypergradient(task: InnerTask, hyper: Hyperparameters, seed: int, horizon: int | None = None) -> Hypergradient:
    """The hypergradient by forward mode; greedy over chunks of ``horizon`` steps if given."""
    if getattr(task, "optimizer", None) is not None:
        raise ValueError(f"forward mode here implements SGD with momentum only, but task {task.name!r} trains with "
                         f"{type(task.optimizer).__name__}: use unrolled_forward() or reverse_mode()")
    T = hyper.horizon
    chunk = T if horizon is None else horizon
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= T:
        raise ValueError(f"H (the greedy horizon) must be an integer in [1, T] = [1, {T}], got {horizon!r}")
    theta = task.init(seed)
    with Meter(theta.device) as meter:
        layout = Layout(hyper)
        dtype, device = theta.dtype, theta.device
        values = {name: value.to(device=device, dtype=dtype) for name, value in hyper.values.items()}
        terms = loss_terms(values)
        scalars = {name: values[name].unbind() for name in SCHEDULES}  # each window's value, indexed without an op
        floats = {name: values[name].tolist() for name in SCHEDULES}
        learned_terms = torch.cat([terms[n].reshape(-1) for n in layout.loss_terms]) if layout.loss_terms else None
        Z = torch.zeros(layout.size, theta.numel(), dtype=dtype, device=device)
        C = torch.zeros_like(Z)
        velocity = torch.zeros_like(theta)
        hypergrad = torch.zeros(layout.size, dtype=dtype, device=device)
        batches = task.batches(seed, T)
        watch = Watch()
        start = 0
        for t in range(T):
            rows, index, members = layout.rows(t, start)
            window = {name: hyper.window_index(name, t) for name in SCHEDULES}
            alpha, beta, xi = (scalars[name][window[name]] for name in SCHEDULES)
            grad, dgrad, loss = _gradient_and_tangents(task, theta, task.batch(batches[t]), terms, learned_terms,
                                                       layout, Z[rows], index)
            meter.gradient_evaluations += 1
            meter.hvp_evaluations += len(index)
            new_velocity = beta * velocity + grad + xi * theta
            # C' = beta C + dg + xi Z, then Z' = Z - alpha C' (and the rows of this step's values)
            dC = C[rows].mul_(beta).add_(dgrad).add_(Z[rows], alpha=floats["weight_decay"][window["weight_decay"]])
            _add_to_row(dC, members, layout.row("momentum", t), velocity)
            _add_to_row(dC, members, layout.row("weight_decay", t), theta)
            dZ = Z[rows].sub_(dC, alpha=floats["lr"][window["lr"]])
            _add_to_row(dZ, members, layout.row("lr", t), -new_velocity)
            if isinstance(rows, torch.Tensor):  # gathered copies: write them back
                C[rows], Z[rows] = dC, dZ
            theta, velocity = theta - alpha * new_velocity, new_velocity
            if watch.diverged(loss, t):
                return diverged_result(watch.message, meter, theta)
            if t + 1 - start == chunk or t == T - 1:
                grad_val, val_loss = validation_gradient(task, theta, meter)
                hypergrad += Z @ grad_val
                if t < T - 1:
                    Z.zero_()
                    C.zero_()
                start = t + 1
    if not torch.isfinite(hypergrad).all() or val_loss != val_loss:
        return diverged_result("the validation loss or its hypergradient is not finite", meter, theta)
    return Hypergradient(val_loss, hypergrad[layout.position].double().cpu(), meter.cost(), theta=theta.detach())


def _gradient_and_tangents(task, theta, batch, terms, learned_terms, layout, Z_active, active):
    # Z_active: the tangent rows in use; active: their row numbers
    """(g, dg for the active rows, loss): one gradient with its graph, one batched double-backward;
    with the task's clamp, g clamped and dg zeroed where it clamps (``task.clip_with_tangents``).
    A task with closed-form tangents (a plain MLP) gives them when no loss term is learned."""
    if task.tangents is not None and learned_terms is None and len(active) > 0:
        loss, grad, dgrad = task.tangents(theta.detach(), batch, terms, Z_active)
        grad, dgrad = task.clip_with_tangents(grad, dgrad)
        return grad, dgrad, loss
    theta = theta.detach().requires_grad_()
    with torch.enable_grad():
        if learned_terms is not None:
            flat = learned_terms.detach().requires_grad_()
            pieces = torch.split(flat, [terms[n].numel() for n in layout.loss_terms])
            terms = {**terms, **{n: p.view(terms[n].shape) for n, p in zip(layout.loss_terms, pieces)}}
        loss = task.train_loss(theta, batch, terms)
        inputs = [theta] if learned_terms is None else [theta, flat]
        grads = torch.autograd.grad(loss, inputs, create_graph=len(active) > 0)
        grad = grads[0]
        if len(active) == 0:
            return task.clip(grad.detach()), Z_active, loss.detach()
        outputs, tangents = [grad], [Z_active]
        if learned_terms is not None:  # rows of loss terms: d/dtheta (dL/dlambda . e_row)
            basis = torch.zeros(len(active), flat.numel(), dtype=flat.dtype, device=flat.device)
            entries = layout.term_index[active]
            rows = (entries >= 0).nonzero().squeeze(1)
            basis[rows, entries[rows]] = 1.0
            outputs.append(grads[1])
            tangents.append(basis)
        (dgrad,) = grad_rows(outputs, [theta], tangents)
    grad, dgrad = task.clip_with_tangents(grad.detach(), dgrad.detach())
    return grad, dgrad, loss.detach()


def grad_rows(outputs: list, inputs: list, rows: list) -> list:
    """``torch.autograd.grad(outputs, inputs)`` for K rows of cotangents at once: ``rows`` holds
    one K x (output's shape) tensor per output; returns one K x (input's shape) tensor per input,
    zeros for an input the outputs do not depend on. One row (the first window; every step of
    greedy H = 1) takes a plain backward pass, where vmap's set-up would cost more than it saves."""
    K = len(rows[0])
    if K == 1:
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=[row[0] for row in rows], allow_unused=True)
        grads = [None if g is None else g.unsqueeze(0) for g in grads]
    else:
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=rows, is_grads_batched=True, allow_unused=True)
    return [torch.zeros(K, *x.shape, dtype=x.dtype, device=x.device) if g is None else g for g, x in zip(grads, inputs)]


def _add_to_row(tangent: torch.Tensor, members: list[int], row: int | None, vector: torch.Tensor) -> None:
    """tangent[row] += vector, where ``tangent`` holds the rows numbered ``members`` (in order)."""
    if row is not None and row in members:
        tangent[members.index(row)] += vector


def forward_mode() -> Estimator:
    """Non-greedy forward-mode hypergradients: FDS with the windows of ``hyper``, RFHO's
    forward method with W = 1."""
    def estimate(task, hyper, seed):
        return forward_hypergradient(task, hyper, seed)

    return estimate


def greedy(horizon: int = 1) -> Estimator:
    """Greedy forward-mode hypergradients over chunks of ``horizon`` steps (H = 1: HD's setting)."""
    check_count("H", horizon, minimum=1)

    def estimate(task, hyper, seed):
        return forward_hypergradient(task, hyper, seed, horizon)

    return estimate
