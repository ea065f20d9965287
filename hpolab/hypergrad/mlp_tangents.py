"""A multilayer perceptron's training gradient and its Hessian times K tangents, by hand.

Forward mode needs, at every step, g = grad L(theta) and H Z for the K tangent rows in use.
torch gets H Z by a batched double-backward (``is_grads_batched``), whose vmap'd backward
formulas spend about three quarters of a 57k-weight MLP's step in transposed copies and
concatenations rather than in matrix products (docs/performance.md). For a plain MLP the
product has a closed form, Pearlmutter's R-operator R{.} = d/dr (.)(theta + r z), here
for all K rows at once (``R{u}`` has a leading dimension K):

    forward, layer l (a_0 = x, R{a_0} = 0):
        s_l = a_{l-1} W_l^T + b_l             R{s_l} = R{a_{l-1}} W_l^T + a_{l-1} dW_l^T + db_l
        a_l = f(s_l)                          R{a_l} = f'(s_l) R{s_l}
    loss: mean cross-entropy of the logits s over a batch of B, p = softmax(s)
        d = (p - onehot(y)) / B              R{d} = (p R{s} - p <p, R{s}>) / B
    backward, layer l (d the loss's gradient at s_l):
        g_W = d^T a_{l-1},  g_b = sum d      R{g_W} = R{d}^T a_{l-1} + d^T R{a_{l-1}},  R{g_b} = sum R{d}
        d_{l-1} = (d W_l) f'(s_{l-1})        R{d_{l-1}} = (R{d} W_l + d dW_l) f'(s_{l-1}) + (d W_l) f''(s_{l-1}) R{s_{l-1}}

where (dW_l, db_l) are a tangent row's entries for layer l. H Z is (R{g_W}, R{g_b}) row by
row: the same numbers as the double-backward up to floating-point order and the same
matrix-product flops, a whole forward-mode run in 0.48-0.72 of its time on the benchmark's
7k- and 57k-weight MLPs (benchmarks/hypergrad.py). A fixed L2 term e^lambda |theta|^2 adds
2 e^lambda theta to g and 2 e^lambda Z to H Z.

:func:`mlp_layers` says whether a module is such an MLP: an ``nn.Sequential`` of Linear
layers and Tanh, ReLU, Sigmoid or Identity activations, after at most one leading
``nn.Flatten()`` of the input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hpolab.hypergrad.direct import ELEMENTWISE, direct_layers


def _tanh(s):
    a = torch.tanh(s)
    slope = 1 - a * a
    return a, slope, -2 * a * slope


def _sigmoid(s):
    a = torch.sigmoid(s)
    slope = a * (1 - a)
    return a, slope, slope * (1 - 2 * a)


def _relu(s):
    return F.relu(s), (s > 0).to(s.dtype), None  # f'' = 0 (almost everywhere)


def _identity(s):
    return s, None, None  # f' = 1, f'' = 0


# the direct path's activation functions (hpolab.hypergrad.direct) -> (f, f', f'') of s
_DERIVATIVES = {ELEMENTWISE[nn.Tanh]: _tanh, ELEMENTWISE[nn.Sigmoid]: _sigmoid, ELEMENTWISE[nn.ReLU]: _relu,
                ELEMENTWISE[nn.Identity]: _identity}


def mlp_layers(module: nn.Module) -> list | None:
    """``module`` as steps ("linear", has_bias) and ("activation", f) when it is a plain MLP
    (see the module docstring), with a leading ("flatten", None) for an ``nn.Flatten()``; else
    None. Read off the direct path's parse (:func:`~hpolab.hypergrad.direct.direct_layers`)."""
    steps = direct_layers(module)
    if steps is None:
        return None
    layers = []
    for position, (kind, setting) in enumerate(steps):
        if kind == "flatten" and position == 0 and setting == (1, -1):
            layers.append(("flatten", None))
        elif kind == "linear":
            layers.append(("linear", setting))
        elif kind == "elementwise" and setting in _DERIVATIVES:
            layers.append(("activation", _DERIVATIVES[setting]))
        else:
            return None
    return layers if any(kind == "linear" for kind, _ in layers) else None


def cross_entropy_tangents(layers: list, sizes: list[int], shapes: list, theta: torch.Tensor, x: torch.Tensor,
                           y: torch.Tensor, Z: torch.Tensor, l2: torch.Tensor | None = None):
    """(mean cross-entropy + e^l2 |theta|^2, its gradient g, H Z) of the MLP ``layers`` with
    weights ``theta`` (split by ``sizes``, shaped by ``shapes``) on the batch (x, y), for the
    K tangent rows ``Z`` (K x D); ``l2`` the log of a fixed L2 weight, or None."""
    K = Z.shape[0]
    weights = [part.view(shape) for part, shape in zip(torch.split(theta, sizes), shapes)]
    tangents = [part.reshape(K, *shape) for part, shape in zip(torch.split(Z, sizes, dim=1), shapes)]
    a, Ra = x, None  # the activation entering the next layer, and its R{.} (None: 0, the data)
    tape, index = [], 0  # what the backward pass reads, layer by layer
    for kind, setting in layers:
        if kind == "flatten":
            a = a.flatten(1)
        elif kind == "linear":
            W, dW = weights[index], tangents[index]
            b, db = (weights[index + 1], tangents[index + 1]) if setting else (None, None)
            tape.append(("linear", a, Ra, W, dW, setting))
            Rs = torch.matmul(a, dW.transpose(1, 2))
            if db is not None:
                Rs = Rs + db.unsqueeze(1)
            if Ra is not None:
                Rs = Rs + torch.matmul(Ra, W.t())
            a, Ra = F.linear(a, W, b), Rs
            index += 2 if setting else 1
        else:
            s, Rs = a, Ra
            a, slope, curvature = setting(s)
            tape.append(("activation", slope, curvature, Rs))
            if Rs is not None and slope is not None:
                Ra = slope * Rs
    logits, Rlogits = a, Ra
    log_p = torch.log_softmax(logits, dim=1)
    rows = torch.arange(len(y), device=y.device)
    loss = -log_p[rows, y].mean()
    p = log_p.exp()
    d = p.clone()
    d[rows, y] -= 1
    d /= len(y)
    Rd = (p * Rlogits - p * (p * Rlogits).sum(-1, keepdim=True)) / len(y)  # every layer's R{.} is set past a linear one
    grads, Rgrads = [], []
    for entry in reversed(tape):
        if entry[0] == "linear":
            _, a, Ra, W, dW, has_bias = entry
            if has_bias:
                grads.append(d.sum(0))
                Rgrads.append(Rd.sum(1))
            grads.append((d.t() @ a).reshape(-1))
            RgW = torch.matmul(Rd.transpose(1, 2), a)
            if Ra is not None:
                RgW = RgW + torch.matmul(d.t(), Ra)
            Rgrads.append(RgW.reshape(K, -1))
            if Ra is None:  # the data: nothing below needs a gradient
                break
            Rd = torch.matmul(Rd, W) + torch.matmul(d, dW)
            d = d @ W
        else:
            _, slope, curvature, Rs = entry
            if slope is not None:
                Rd = Rd * slope if curvature is None else Rd * slope + (d * curvature) * Rs
                d = d * slope
    grad = torch.cat(grads[::-1])
    dgrad = torch.cat(Rgrads[::-1], dim=1)
    if l2 is not None:
        weight = torch.exp(l2)
        loss = loss + weight * (theta * theta).sum()
        grad = grad + 2 * weight * theta
        dgrad = dgrad + 2 * weight * Z
    return loss, grad, dgrad
