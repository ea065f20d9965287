"""Self-Tuning Networks (MacKay et al., ICLR 2019): tune hyperparameters through a learned best response.

The best response w*(lambda) = argmin_w L_train(w, lambda) is approximated by a function
affine in the unconstrained hyperparameters lambda (log weight decay, logit dropout),

    w_phi(lambda) = w0 + W1 (lambda - c),

fitted during training and differentiated for the hypergradient. One cycle is

* a training phase of ``train_steps`` steps on phi: draw lambda~ = lambda + delta with
  delta ~ N(0, sigma^2), one draw per example, and step phi on
  L_train(w_phi(lambda~), lambda~) (the regularizer and the dropout rate are lambda~'s);
* a tuning phase of ``tune_steps`` steps on lambda: step on L_val(w_phi(lambda)). The
  validation loss has no regularizer and no dropout, so it depends on lambda only through
  the response: the hypergradient is dL_val/dw . W1 (no relaxation of dropout is needed).

The centre c is the current lambda: after each tuning step the response is re-centred
(``w0 += W1 (lambda_new - lambda_old)``), which leaves the function w_phi unchanged and keeps
w0 the response at the current lambda and W1 its Jacobian estimate d w / d lambda. The paper
also learns sigma (an entropy bonus in the tuning phase); here sigma is fixed.

What the method needs of a model is a :class:`ResponseModel`: its training loss at perturbed
hyperparameters, its validation loss, and how to re-centre. :func:`linear_response` is the
plain ``w0 + W1 delta`` (ridge regression in ``hpolab.studies.stn``); the MLP there uses the
paper's structured layer, ``W(lambda) = W_e + diag(V delta) W_h`` (:mod:`hpolab.methods.stn_mlp`),
which is also affine in delta and lets every example of a batch carry its own perturbation at
the cost of a second matrix product.

On the core protocol, :func:`stn_tuning` (``TUNERS["stn"]``) tunes the loss hyperparameters of
any :class:`~hpolab.hypergrad.task.InnerTask` with the linear response of its flat weights; one
``update`` of that :class:`~hpolab.protocol.Method` is one cycle of the paper's Algorithm 1.

Example (ridge regression, log lambda tuned from -4; ``hpolab.studies.stn`` has the full study)::

    import torch
    from hpolab.methods.stn import linear_init, linear_response, self_tuning

    x, y = torch.randn(60, 40, dtype=torch.float64), torch.randn(60, dtype=torch.float64)
    val = torch.randn(200, 40, dtype=torch.float64), torch.randn(200, dtype=torch.float64)
    model = linear_response(
        lambda w, h, b: 0.5 * ((b[0] * w).sum(1) - b[1]) ** 2 + 0.5 * h[:, 0].exp() * (w * w).sum(1) / 60,
        lambda w, b: 0.5 * ((b[0] @ w - b[1]) ** 2).mean())
    method = self_tuning(model, sigma=0.3, lr=0.01, hyper_lr=0.05, train_steps=10, per_example=False)
    state = method.init(linear_init(40, 1), torch.tensor([-4.0], dtype=torch.float64))
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        state = method.update(state, lambda: (x, y), lambda: val, generator)
    state.hyper  # the tuned log lambda; state.phi = (w0, W1), W1 ~ d w*/d log lambda

Paper: M. MacKay, P. Vicol, J. Lorraine, D. Duvenaud, R. Grosse, "Self-Tuning Networks:
Bilevel Optimization of Hyperparameters using Structured Best-Response Functions", ICLR 2019.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch.optim.adam import adam as torch_adam

from hpolab.hypergrad.hyperparameters import SCHEDULES, Hyperparameters
from hpolab.hypergrad.task import InnerTask
from hpolab.hypergrad.unroll import loss_terms_of
from hpolab.protocol import Cost, Method
from hpolab.validation import check_count, check_positive

Params = tuple[torch.Tensor, ...]
Batch = tuple[torch.Tensor, ...]


# --- Adam on tuples of tensors as an (init, update) pair (optax's form), by torch's own step ----


class AdamState(NamedTuple):
    step: int
    first: Params
    second: Params


class Optimizer(NamedTuple):
    init: Callable[[Params], AdamState]
    update: Callable[[Params, AdamState, Params], tuple[Params, AdamState]]


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Optimizer:
    """Adam as ``(init, update)``: ``update(grads, state, params) -> (params, state)`` takes
    ``torch.optim.Adam``'s step (its functional form, ``torch.optim.adam.adam``, no weight decay)
    on copies, so that a state, once made, never changes."""
    check_positive("lr", lr)
    beta1, beta2 = betas

    def init(params):
        return AdamState(0, tuple(torch.zeros_like(p) for p in params), tuple(torch.zeros_like(p) for p in params))

    @torch.no_grad()
    def update(grads, state, params):
        params = [p.detach().clone() for p in params]
        first, second = [m.clone() for m in state.first], [v.clone() for v in state.second]
        steps = [torch.tensor(float(state.step)) for _ in params]  # torch's step counts, advanced by the call
        torch_adam(params, [g.detach() for g in grads], first, second, [], steps, foreach=False,
                   amsgrad=False, beta1=beta1, beta2=beta2, lr=lr, weight_decay=0.0, eps=eps, maximize=False)
        return tuple(params), AdamState(state.step + 1, tuple(first), tuple(second))

    return Optimizer(init, update)


# --- what STN needs of a model --------------------------------------------------------------


class ResponseModel(NamedTuple):
    """A model whose weights are an affine function of delta = lambda - c.

    Attributes:
      train_loss: ``(phi, hyper, delta, batch, generator) -> scalar``: the mean training loss
        over the batch, example i at weights w_phi(c + delta_i) with hyperparameters
        ``hyper + delta_i`` (its regularizer and dropout); ``delta`` has shape (B, K).
      val_loss: ``(phi, delta, batch) -> scalar``: the validation loss at w_phi(c + delta),
        ``delta`` of shape (K,); no regularizer, no dropout; differentiable in delta.
      recenter: ``(phi, shift) -> phi'`` with w_phi'(c + d) = w_phi(c + shift + d) for all d.
    """

    train_loss: Callable[[Params, torch.Tensor, torch.Tensor, Batch, torch.Generator], torch.Tensor]
    val_loss: Callable[[Params, torch.Tensor, Batch], torch.Tensor]
    recenter: Callable[[Params, torch.Tensor], Params]


def linear_init(size: int, hyperparameters: int, dtype=torch.float64, device="cpu") -> Params:
    """phi = (w0, W1) = (0, 0) for :func:`linear_response`."""
    return (torch.zeros(size, dtype=dtype, device=device),
            torch.zeros(size, hyperparameters, dtype=dtype, device=device))


def linear_response(train_loss: Callable, val_loss: Callable) -> ResponseModel:
    """The plain linear best response ``w = w0 + W1 delta`` of any loss over a flat weight vector.

    Args:
      train_loss: ``(w, hyper, batch) -> per-example losses (B,)`` with ``w`` of shape (B, D)
        (example i's weights) and ``hyper`` of shape (B, K) (its hyperparameters).
      val_loss: ``(w, batch) -> scalar`` with ``w`` of shape (D,).
    """

    def train(phi, hyper, delta, batch, generator):
        w0, w1 = phi
        return train_loss(w0 + delta @ w1.T, hyper + delta, batch).mean()

    def val(phi, delta, batch):
        w0, w1 = phi
        return val_loss(w0 + w1 @ delta, batch)

    def recenter(phi, shift):
        w0, w1 = phi
        return (w0 + w1 @ shift, w1)

    return ResponseModel(train, val, recenter)


def hypergradient(model: ResponseModel, phi: Params, batch: Batch,
                  hyperparameters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation loss, d L_val(w_phi(lambda)) / d lambda) at the response's centre."""
    first = phi[0]
    delta = torch.zeros(hyperparameters, dtype=first.dtype, device=first.device, requires_grad=True)
    phi = tuple(p.detach() for p in phi)
    loss = model.val_loss(phi, delta, batch)
    (grad,) = torch.autograd.grad(loss, delta)
    return loss.detach(), grad


# --- the method -------------------------------------------------------------------------------


class STNState(NamedTuple):
    phi: Params  # the best-response parameters
    hyper: torch.Tensor  # lambda (K,), unconstrained; the response's centre c
    phi_state: AdamState
    hyper_state: AdamState
    train_steps: int  # training (phi) steps taken
    tune_steps: int  # tuning (lambda) steps taken
    train_loss: float  # of the last training step
    val_loss: float  # of the last tuning step's validation batch
    hypergradient: torch.Tensor  # of the last tuning step


class SelfTuning(NamedTuple):
    """STN as a named set of pure-ish functions (all randomness from the generator passed in).

    Attributes:
      init: ``(phi, hyper) -> STNState``.
      train: ``(state, batch, generator) -> state``: one step on phi at perturbed hyperparameters.
      tune: ``(state, batch) -> state``: one hypergradient step on lambda, then re-centring.
      update: ``(state, next_train, next_val, generator) -> state``: one cycle, ``train_steps``
        training steps on batches from ``next_train()`` then ``tune_steps`` tuning steps.
    """

    name: str
    init: Callable[[Params, torch.Tensor], STNState]
    train: Callable[[STNState, Batch, torch.Generator], STNState]
    tune: Callable[[STNState, Batch], STNState]
    update: Callable[[STNState, Callable[[], Batch], Callable[[], Batch], torch.Generator], STNState]
    config: dict
    label: str


def self_tuning(model: ResponseModel, sigma: float | Sequence[float], lr: float = 1e-3, hyper_lr: float = 3e-3,
                train_steps: int = 5, tune_steps: int = 1,
                limits: tuple[Sequence[float], Sequence[float]] | None = None,
                per_example: bool = True) -> SelfTuning:
    """Self-Tuning Networks' alternating fit of the best response and hypergradient steps.

    Args:
      model: the response model (:class:`ResponseModel`).
      sigma: perturbation scale of lambda in the training phase, > 0 (one per hyperparameter
        or one for all). Small: the response is fitted where it is used (the hypergradient
        tracks d w*/d lambda); large: it averages curvature over a wider range.
      lr: Adam's step size on phi (the weights and their response).
      hyper_lr: Adam's step size on lambda.
      train_steps, tune_steps: T_train and T_val of the paper's Algorithm 1, >= 1.
      limits: optional (low, high) per hyperparameter; lambda is clipped into the box.
      per_example: one perturbation per example (the paper's choice for minibatches: the
        structured response makes it cheap) or one per step, shared by the batch (for a
        full-batch loss: its gradient on W1 then vanishes at the fitted optimum up to
        O(sigma^2), where per-example draws leave each example's residual as noise).

    Returns:
      A :class:`SelfTuning`.
    """
    sigmas = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if not bool(torch.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    check_positive("hyper_lr", hyper_lr)
    check_count("train_steps", train_steps, minimum=1)
    check_count("tune_steps", tune_steps, minimum=1)
    low, high = (None, None) if limits is None else (torch.as_tensor(limits[0], dtype=torch.float64),
                                                     torch.as_tensor(limits[1], dtype=torch.float64))
    if low is not None and not bool((low < high).all()):
        raise ValueError(f"limits must have low < high for every hyperparameter, got {limits!r}")
    phi_optimizer, hyper_optimizer = adam(lr), adam(hyper_lr)

    def init(phi, hyper):
        phi = tuple(p.detach().clone() for p in phi)
        hyper = hyper.detach().clone().to(phi[0])
        if low is not None:
            hyper = torch.clamp(hyper, low.to(hyper), high.to(hyper))
        return STNState(phi, hyper, phi_optimizer.init(phi), hyper_optimizer.init((hyper,)), 0, 0, float("nan"),
                        float("nan"), torch.zeros_like(hyper))

    def train(state, batch, generator):
        examples, k = len(batch[0]), len(state.hyper)  # batch[0]: one row per example
        noise = torch.randn(examples if per_example else 1, k, generator=generator, dtype=torch.float64)
        noise = noise.expand(examples, k)
        delta = (noise * sigmas).to(state.phi[0])
        phi = tuple(p.detach().requires_grad_() for p in state.phi)
        loss = model.train_loss(phi, state.hyper.expand(examples, k), delta, batch, generator)
        grads = torch.autograd.grad(loss, phi)
        new, phi_state = phi_optimizer.update(grads, state.phi_state, tuple(p.detach() for p in phi))
        return state._replace(phi=new, phi_state=phi_state, train_steps=state.train_steps + 1,
                              train_loss=float(loss.detach()))

    def tune(state, batch):
        loss, grad = hypergradient(model, state.phi, batch, len(state.hyper))
        (hyper,), hyper_state = hyper_optimizer.update((grad,), state.hyper_state, (state.hyper,))
        if low is not None:
            hyper = torch.clamp(hyper, low.to(hyper), high.to(hyper))
        phi = model.recenter(state.phi, hyper - state.hyper)
        return state._replace(phi=phi, hyper=hyper, hyper_state=hyper_state, tune_steps=state.tune_steps + 1,
                              val_loss=float(loss), hypergradient=grad)

    def update(state, next_train, next_val, generator):
        for _ in range(train_steps):
            state = train(state, next_train(), generator)
        for _ in range(tune_steps):
            state = tune(state, next_val())
        return state

    config = {"sigma": sigmas.tolist() if sigmas.numel() > 1 else float(sigmas), "lr": lr, "hyper_lr": hyper_lr,
              "train_steps": train_steps, "tune_steps": tune_steps, "per_example": per_example}
    return SelfTuning("stn", init, train, tune, update, config, "STN")


def minibatches(tensors: Sequence[torch.Tensor], batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Endless minibatches of ``tensors`` (same first dimension), reshuffled every epoch by
    ``generator``; the whole set when ``batch_size`` is at least its size."""
    size = len(tensors[0])
    if batch_size >= size:
        while True:
            yield tuple(tensors)
    per_epoch = size // batch_size
    while True:
        order = torch.randperm(size, generator=generator).to(tensors[0].device)
        for start in range(per_epoch):
            index = order[start * batch_size:(start + 1) * batch_size]
            yield tuple(t[index] for t in tensors)


# --- STN as a tuner of any training task, on the core protocol ---------------------------------


def task_response(task: InnerTask, hyper: Hyperparameters) -> ResponseModel:
    """The linear best response ``theta = w0 + W1 delta`` of ``task``'s flat weights, for its
    learned loss hyperparameters. The task's training loss is a batch's mean (or sum), so the
    batch shares one perturbation (``self_tuning(per_example=False)``): per-example draws would
    need a weight vector per example."""
    terms = loss_terms_of(task, hyper, task.init(0).dtype)

    def train(phi, hyper_rows, delta, batch, generator):
        w0, w1 = phi
        return task.train_loss(w0 + w1 @ delta[0], batch, terms(hyper_rows[0] + delta[0]))

    return linear_response(None, lambda w, batch: task.val_loss(w))._replace(train_loss=train)


class STNTuningState(NamedTuple):
    """:func:`stn_tuning`'s state on the core protocol: what the runner records (x, y, kind,
    extras) around STN's own state."""

    x: torch.Tensor  # w0: the response's weights at the current hyperparameters
    y: torch.Tensor  # lambda, packed as the task's h (float64, CPU)
    stn: STNState
    kind: str
    extras: dict = {}  # recorded in the history: the last training loss and hypergradient


def stn_tuning(task: InnerTask, hyper: Hyperparameters, limits: tuple[torch.Tensor, torch.Tensor] | None = None, *,
               sigma: float | Sequence[float] = 0.5, lr: float = 1e-3, hyper_lr: float = 3e-3, train_steps: int = 5,
               tune_steps: int = 1, label: str = "STN") -> Method:
    """Tune ``hyper.learn`` for ``task`` with Self-Tuning Networks (``TUNERS["stn"]``).

    The state's ``x`` is the response's weights w0 (started from the run's initial weights,
    W1 = 0) and ``y`` the hyperparameters lambda, its centre. Each ``update`` is one cycle:
    ``train_steps`` Adam steps on (w0, W1) at lambda + sigma * N(0, I), on the task's
    minibatches (a fresh data order per cycle, drawn from the run's generator), then
    ``tune_steps`` Adam steps on lambda against the validation loss at w0 + W1 delta, each
    re-centring the response; every step is one gradient evaluation. The weights are trained
    once, continuously, as STN does: the task's inner optimizer and horizon are not used.

    STN differentiates the training loss in lambda, so every learned name must be a loss
    hyperparameter (``log_l2``, ``example_weights``), not an optimizer's schedule.
    """
    schedules = [name for name in hyper.learn if name in SCHEDULES]
    if schedules:
        raise ValueError(f"STN tunes hyperparameters of the training loss, not the optimizer's schedules "
                         f"{schedules}: learn only loss terms such as 'log_l2'")
    stn = self_tuning(task_response(task, hyper), sigma, lr, hyper_lr, train_steps, tune_steps, limits=limits,
                      per_example=False)

    def init(x0, y0, oracle, generator):
        state = stn.init((x0, x0.new_zeros(x0.numel(), y0.numel())), y0)
        return STNTuningState(state.phi[0], state.hyper.double().cpu(), state, "start")

    def update(state, oracle, generator):
        order = iter(task.batches(int(torch.randint(2**31 - 1, (), generator=generator)), train_steps))
        # a tuning step's validation loss is the task's, on its whole validation set: no batch
        cycle = stn.update(state.stn, lambda: task.batch(next(order)), lambda: None, generator)
        oracle.charge(Cost(gradient_evaluations=train_steps + tune_steps))
        extras = {"train_loss": cycle.train_loss, "hypergradient_norm2": float((cycle.hypergradient**2).sum())}
        return STNTuningState(cycle.phi[0], cycle.hyper.double().cpu(), cycle, "stn", extras)

    return Method("stn", init, update, dict(stn.config), label)
