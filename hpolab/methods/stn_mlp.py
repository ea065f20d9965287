"""The STN paper's structured best response for an MLP classifier (MacKay et al., ICLR 2019, section 4.1).

In every layer the weights are affine in delta = lambda - c, ``W(lambda) = W_e + diag(V delta) W_h``
and ``b(lambda) = b_e + (V delta) * b_h`` (STN's "scaled" layer), so every example of a batch can
carry its own perturbation at the cost of a second matrix product. lambda = (log weight decay,
logit dropout). :func:`mlp_response` is the :class:`~hpolab.methods.stn.ResponseModel` that
:func:`~hpolab.methods.stn.self_tuning` fits; :func:`structured_weights` reads the plain MLP
the response gives at one lambda.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch.nn import functional as F

from hpolab.methods.stn import Params, ResponseModel

DECAY, DROPOUT = 0, 1  # lambda = (log weight decay, logit dropout) for :func:`mlp_response`
LAYER = 5  # tensors per layer in phi: W_e, b_e, W_h, b_h, V


def mlp_init(sizes: Sequence[int], generator: torch.Generator, dtype=torch.float32, device="cpu") -> Params:
    """Weights and biases ``(W, b)`` per layer of an MLP with these sizes, drawn as ``nn.Linear``
    draws them (uniform in +-1/sqrt(fan_in)) from ``generator`` on the CPU."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        for shape in ((fan_out, fan_in), (fan_out,)):
            params.append(((torch.rand(shape, generator=generator) * 2 - 1) * bound).to(dtype).to(device))
    return tuple(params)


def structured_init(sizes: Sequence[int], hyperparameters: int, generator: torch.Generator, dtype=torch.float32,
                    device="cpu") -> Params:
    """phi for :func:`mlp_response`: per layer (W_e, b_e, W_h, b_h, V). The elementary weights
    (W_e, b_e) are the ones :func:`mlp_init` draws first from the same generator, so a plain MLP
    of the same seed starts from them; (W_h, b_h) are drawn next the same way and V = 0, so the
    response starts constant in lambda."""
    elementary = mlp_init(sizes, generator, dtype, device)
    hyper = mlp_init(sizes, generator, dtype, device)
    params = []
    for index, fan_out in enumerate(sizes[1:]):
        params += [*elementary[2 * index:2 * index + 2], *hyper[2 * index:2 * index + 2],
                   torch.zeros(fan_out, hyperparameters, dtype=dtype, device=device)]
    return tuple(params)


def dropout_masks(shape: tuple[int, int], keep: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Inverted-dropout multipliers: 1 / keep_i with probability keep_i (row i), else 0; drawn on
    the CPU from ``generator`` (keep: (B,) or a scalar)."""
    keep = keep.reshape(-1, 1) if keep.ndim else keep
    uniform = torch.rand(shape, generator=generator).to(keep.device, keep.dtype)
    return (uniform < keep).to(keep.dtype) / keep


def mlp_logits(params: Params, x: torch.Tensor, keep: torch.Tensor | None = None,
               generator: torch.Generator | None = None, scales: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Logits of an MLP with ReLU hidden layers and dropout after each (``keep`` per example or
    scalar; None: no dropout).

    With ``scales`` (one (B, out) or (out,) tensor per layer) ``params`` is the structured
    response's phi and layer l computes x W_e^T + b_e + s_l * (x W_h^T + b_h), i.e. weights
    W_e + diag(s_l) W_h; otherwise ``params`` is (W, b) per layer.
    """
    step = LAYER if scales is not None else 2
    layers = len(params) // step
    for index in range(layers):
        chunk = params[index * step:(index + 1) * step]
        z = F.linear(x, chunk[0], chunk[1])
        if scales is not None:
            z = z + scales[index] * F.linear(x, chunk[2], chunk[3])
        if index == layers - 1:
            return z
        x = torch.relu(z)
        if keep is not None:
            x = x * dropout_masks(tuple(x.shape), keep, generator)
    raise ValueError("params must hold at least one layer")


def layer_scales(phi: Params, delta: torch.Tensor) -> list[torch.Tensor]:
    """s_l = V_l delta per layer: (B, out) for delta (B, K), (out,) for delta (K,)."""
    return [delta @ phi[index + 4].T for index in range(0, len(phi), LAYER)]


def structured_penalty(phi: Params, scales: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of |W_e + diag(s) W_h|^2 (weights only), per row of the scales, from
    |W_e|^2 + 2 s . rowdot(W_e, W_h) + s^2 . |W_h rows|^2 without forming the weights."""
    total = 0.0
    for index, s in zip(range(0, len(phi), LAYER), scales):
        w_e, w_h = phi[index], phi[index + 2]
        total = total + (w_e * w_e).sum() + (2 * s * (w_e * w_h).sum(1) + s * s * (w_h * w_h).sum(1)).sum(-1)
    return total


def structured_weights(phi: Params, delta: torch.Tensor) -> Params:
    """The plain MLP's (W, b) per layer that the response gives at one delta (K,)."""
    params = []
    for index, s in zip(range(0, len(phi), LAYER), layer_scales(phi, delta)):
        w_e, b_e, w_h, b_h, _ = phi[index:index + LAYER]
        params += [w_e + s[:, None] * w_h, b_e + s * b_h]
    return tuple(params)


def mlp_response() -> ResponseModel:
    """The structured best response of an MLP classifier (cross-entropy) with
    lambda = (log weight decay, logit dropout): in every layer W(lambda) = W_e + diag(V delta) W_h,
    b(lambda) = b_e + (V delta) * b_h (STN's "scaled" layer, affine in delta).

    Training loss of example i: CE_i with dropout at rate sigmoid(lambda_i[1]) after every
    hidden layer, plus exp(lambda_i[0]) / 2 |W(lambda_i)|^2 (weights, not biases). Validation
    loss: mean CE at W(lambda), no dropout.
    """

    def train(phi, hyper, delta, batch, generator):
        x, y = batch
        lam = hyper + delta
        scales = layer_scales(phi, delta)
        logits = mlp_logits(phi, x, keep=torch.sigmoid(-lam[:, DROPOUT]), generator=generator, scales=scales)
        ce = F.cross_entropy(logits, y, reduction="none")
        return (ce + 0.5 * lam[:, DECAY].exp() * structured_penalty(phi, scales)).mean()

    def val(phi, delta, batch):
        x, y = batch
        return F.cross_entropy(mlp_logits(phi, x, scales=layer_scales(phi, delta)), y)

    def recenter(phi, shift):
        params = list(phi)
        for index, s in zip(range(0, len(phi), LAYER), layer_scales(phi, shift)):
            params[index] = phi[index] + s[:, None] * phi[index + 2]
            params[index + 1] = phi[index + 1] + s * phi[index + 3]
        return tuple(params)

    return ResponseModel(train, val, recenter)
