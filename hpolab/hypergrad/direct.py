"""A plain ``nn.Sequential`` run on views of one flat weight vector, without ``functional_call``.

:class:`~hpolab.hypergrad.task.FlatModel` runs a ``Sequential`` of Linear, Conv2d, MaxPool2d,
Flatten and parameter-free elementwise activations by the same ``torch.nn.functional`` calls
the layers' own ``forward`` makes, so the same numbers, without ``functional_call``'s swapping
of every parameter into the module and back at every call (about 0.1 ms a step, a fifth of a
small MLP's training step; benchmarks/hypergrad.py).

A convolution of the data (its input does not require a gradient) goes through
:class:`_DataConv` when autograd records a graph outside any ``torch.func`` transform, as
reverse mode's unrolled run does. torch's double backward of a convolution
(``_convolution_double_backward``) computes the gradient for the convolution's input whether
or not anything needs it; for LeNet's first layer that is a transposed convolution to one
channel, 2-3 ms a step on a CPU, a fifth of a reverse-mode step. :class:`_DataConv` takes the
same first-order gradients by the same kernel and back-propagates through them only to the
output's gradient: the same numbers bit for bit, reverse mode 0.81-0.85x the time on LeNet.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ELEMENTWISE = {nn.Tanh: torch.tanh, nn.ReLU: F.relu, nn.Sigmoid: torch.sigmoid, nn.Identity: lambda x: x}


def direct_layers(module: nn.Module) -> list | None:
    """``module``'s layers as (kind, settings) steps when it is an ``nn.Sequential`` of Linear,
    Conv2d (zero padding), MaxPool2d (no indices), Flatten and parameter-free elementwise
    activations (not in place); else None."""
    if type(module) is not nn.Sequential:
        return None
    layers = []
    for layer in module:
        if type(layer) is nn.Linear:
            layers.append(("linear", layer.bias is not None))
        elif type(layer) is nn.Conv2d and layer.padding_mode == "zeros":
            padding = layer.padding if isinstance(layer.padding, str) else list(layer.padding)
            layers.append(("conv2d", (layer.bias is not None, list(layer.stride), padding, list(layer.dilation),
                                      layer.groups)))
        elif type(layer) is nn.MaxPool2d and not layer.return_indices:
            layers.append(("max_pool2d", (layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                          layer.ceil_mode)))
        elif type(layer) is nn.Flatten:
            layers.append(("flatten", (layer.start_dim, layer.end_dim)))
        elif type(layer) in ELEMENTWISE and not getattr(layer, "inplace", False):
            layers.append(("elementwise", ELEMENTWISE[type(layer)]))
        else:
            return None
    return layers


def run_direct(layers: list, parts: tuple[torch.Tensor, ...], shapes, x: torch.Tensor) -> torch.Tensor:
    """The layers on input x, their parameters the views ``parts`` (shaped as ``shapes``)."""
    index = 0
    for kind, setting in layers:
        if kind in ("linear", "conv2d"):
            has_bias = setting if kind == "linear" else setting[0]
            weight = parts[index].view(shapes[index])
            bias = parts[index + 1].view(shapes[index + 1]) if has_bias else None
            index += 2 if has_bias else 1
            x = F.linear(x, weight, bias) if kind == "linear" else _conv2d(x, weight, bias, *setting[1:])
        elif kind == "max_pool2d":
            kernel_size, stride, padding, dilation, ceil_mode = setting
            x = F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
        elif kind == "flatten":
            x = x.flatten(*setting)
        else:
            x = setting(x)
    return x


def _conv2d(x, weight, bias, stride, padding, dilation, groups):
    if (bias is not None and not isinstance(padding, str) and torch.is_grad_enabled() and not x.requires_grad
            and weight.requires_grad and not torch._C._are_functorch_transforms_active()):
        return _DataConv.apply(x, weight, bias, (stride, padding, dilation, groups))
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


class _DataConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias)`` of data x, whose backward takes the weight and bias
    gradients through :class:`_WeightGradient` (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, conv):
        stride, padding, dilation, groups = conv
        ctx.save_for_backward(x, weight)
        ctx.conv = conv
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_weight, grad_bias = _WeightGradient.apply(grad_output, x, weight.detach(), ctx.conv)
        return None, grad_weight, grad_bias, None


class _WeightGradient(torch.autograd.Function):
    """``(grad_output, x, weight) -> (grad_weight, grad_bias)`` by torch's own convolution
    backward (as autograd takes them for data x), differentiable in grad_output only: its
    backward is torch's double backward without the input's term,
    ``conv(x, gg_weight) + gg_bias``, in torch's order of operations."""

    @staticmethod
    def forward(ctx, grad_output, x, weight, conv):
        stride, padding, dilation, groups = conv
        ctx.save_for_backward(x)
        ctx.conv = conv
        _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_output, x, weight, [weight.shape[0]], stride, padding, dilation, False, [0] * len(stride), groups,
            [False, True, True])
        return grad_weight, grad_bias

    @staticmethod
    def backward(ctx, gg_weight, gg_bias):  # both given (zeros where unused): autograd materializes them
        (x,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        gg_output = torch.convolution(x, gg_weight, None, stride, padding, dilation, False, [0] * len(stride), groups)
        gg_output = gg_output + gg_bias.view(1, -1, *([1] * (x.dim() - 2))).expand(gg_output.shape)
        return gg_output, None, None, None
