"""Lipschitz-constrained layers and a certified upper bound on a closure's Lipschitz constant.

Layers here rescale their weight in every forward pass by the *exact* bound of their
operator norm (no power iteration, so results are deterministic and identical in eager
and TorchScript):

* :class:`LipschitzLinear`: ``W * min(1, c / ||W||_2)``.
* :class:`LipschitzConv1d`: same with the conv bound of :func:`conv1d_bound`.

:func:`certified_bound` returns a provable upper bound of the Lipschitz constant (l2 norm
of one sample's input to l2 norm of its output) from the weights alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .normalize import Normalizer

__all__ = [
    "LipschitzConv1d",
    "LipschitzLinear",
    "activation",
    "certified_bound",
    "conv1d_bound",
    "linear_bound",
]

# Largest slope of each supported activation (max |f'|).
ACTIVATION_GAIN = {"tanh": 1.0, "relu": 1.0, "softplus": 1.0, "silu": 1.1, "gelu": 1.13}
_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU,
                "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    """Activation module by name (tanh, relu, softplus, silu, gelu)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _conv_norm(weight: Tensor) -> Tensor:
    """Bound of a 1-D convolution's operator norm on any length, from its (out, in, K) weight.

    ``min(sqrt(K) * ||[W_0 ... W_{K-1}]||_2, sum_t ||W_t||_2)``: every input cell appears in
    at most ``K`` windows (first term); each tap is a shift (an isometry or a contraction)
    followed by ``W_t`` (second term). Valid for circular and zero padding.
    """
    out_ch, in_ch, k = weight.shape
    unfolded = weight.reshape(out_ch, in_ch * k)
    a = math.sqrt(k) * torch.linalg.matrix_norm(unfolded, ord=2)
    b = torch.linalg.matrix_norm(weight.permute(2, 0, 1), ord=2).sum()
    return torch.minimum(a, b)


class LipschitzLinear(nn.Module):
    """Linear layer whose operator norm never exceeds ``target``.

    Parameters
    ----------
    in_features, out_features : int
    target : float
        Upper bound on ``||W||_2`` used in forward.
    """

    def __init__(self, in_features: int, out_features: int, target: float = 1.0):
        super().__init__()
        ref = nn.Linear(in_features, out_features)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.target = float(target)

    @torch.jit.export
    def effective_weight(self) -> Tensor:
        sigma = torch.linalg.matrix_norm(self.weight, ord=2)
        return self.weight * torch.clamp(self.target / sigma, max=1.0)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., out_features)."""
        return F.linear(x, self.effective_weight(), self.bias)


class LipschitzConv1d(nn.Module):
    """Unpadded 1-D convolution whose operator-norm bound never exceeds ``target``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    target : float
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 target: float = 1.0):
        super().__init__()
        ref = nn.Conv1d(in_channels, out_channels, kernel_size)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.target = float(target)

    @torch.jit.export
    def effective_weight(self) -> Tensor:
        return self.weight * torch.clamp(self.target / _conv_norm(self.weight), max=1.0)

    def forward(self, x: Tensor) -> Tensor:
        """(batch, in, L) -> (batch, out, L - K + 1)."""
        return F.conv1d(x, self.effective_weight(), self.bias)


def linear_bound(weight: Tensor) -> float:
    """Exact ``||W||_2`` computed in float64."""
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2))


def conv1d_bound(weight: Tensor, replicate_pad: int = 0) -> float:
    """Operator-norm bound of an unpadded conv after zero/circular or replicate padding.

    Parameters
    ----------
    weight : Tensor, shape (out, in, K)
    replicate_pad : int
        Cells added on each side by replicate padding (edge cells then appear up to
        ``replicate_pad + 1`` times, multiplying the bound by ``sqrt(replicate_pad + 1)``).
    """
    return float(_conv_norm(weight.detach().double())) * math.sqrt(replicate_pad + 1)


_UNIT_GAIN = (nn.Tanh, nn.ReLU, nn.Identity, nn.Flatten, nn.Dropout)


def certified_bound(module: nn.Module) -> float:
    """Certified upper bound of the Lipschitz constant of ``module`` (per sample, l2 to l2).

    Handles modules that define ``lipschitz_bound()`` (all pyclosure closures with a
    feed-forward path), ``nn.Sequential`` chains of linear/conv/activation layers,
    :class:`Normalizer`, and the Lipschitz layers of this module. Conv layers are assumed
    to see zero- or circularly-padded input (closures add their own padding gain).

    Raises
    ------
    TypeError
        If no bound is known for a submodule (e.g. a multiplicative down-gradient flux,
        which is not globally Lipschitz).
    """
    if hasattr(module, "lipschitz_bound"):
        return float(module.lipschitz_bound())
    if isinstance(module, nn.Sequential):
        total = 1.0
        for child in module:
            total *= certified_bound(child)
        return total
    if isinstance(module, Normalizer):
        return module.forward_gain()
    if isinstance(module, LipschitzLinear | LipschitzConv1d):
        w = module.effective_weight().detach()
        return linear_bound(w) if isinstance(module, LipschitzLinear) else conv1d_bound(w)
    if isinstance(module, nn.Linear):
        return linear_bound(module.weight)
    if isinstance(module, nn.Conv1d):
        if module.stride != (1,) or module.dilation != (1,):
            raise TypeError("certified_bound supports stride 1, dilation 1 convolutions")
        pad = module.padding[0] if module.padding_mode == "replicate" else 0
        return conv1d_bound(module.weight, replicate_pad=int(pad))
    if isinstance(module, _UNIT_GAIN):
        return 1.0
    for name, cls in _ACTIVATIONS.items():
        if type(module) is cls:
            return ACTIVATION_GAIN[name]
    raise TypeError(f"no certified Lipschitz bound for {type(module).__name__}")
