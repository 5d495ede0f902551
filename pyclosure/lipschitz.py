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
    "padding_gain",
]

# Largest slope of each supported activation (max |f'|), rounded up: tanh'(0) = 1; relu and
# softplus (= sigmoid) slopes never exceed 1; silu' peaks at 1.0998 (x = 2.3994); gelu (erf
# form) peaks at Phi(sqrt 2) + sqrt(2) phi(sqrt 2) = 1.1289 (x = sqrt 2), its tanh form at
# 1.1290. Both silu and gelu slopes tend to 1 as x -> +inf.
ACTIVATION_GAIN = {"tanh": 1.0, "relu": 1.0, "softplus": 1.0, "silu": 1.1, "gelu": 1.13}
_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "gelu": nn.GELU}


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

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, target: float = 1.0):
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


def padding_gain(mode: str, left: int, right: int, kernel_size: int) -> float:
    """Factor by which padding can raise the operator-norm bound of the convolution after it.

    Padding maps ``L`` cells to ``L + left + right`` cells by copying cells or writing zeros,
    so its norm is ``sqrt(m)``, ``m`` the most times one input cell appears in the padded
    sequence, and the padded convolution's norm is at most ``sqrt(m)`` times the unpadded
    bound (:func:`conv1d_bound` holds on any length):

    * ``"zeros"``: ``m = 1``.
    * ``"replicate"``: an edge cell appears ``pad + 1`` times on its side; a one-cell input
      appears ``left + right + 1`` times, but then only ``left + right + 2 - K`` windows
      exist, each seeing that one cell: ``m = max(max(left, right) + 1, left + right + 2 - K)``.
    * ``"reflect"``: a cell is copied at most once per padded side (padding < L).
    * ``"circular"``: with ``left + right <= K - 1`` (at most ``L`` outputs) the operator is
      part of a circular convolution, whose norm the unpadded bound already covers (each cell
      is in exactly ``K`` windows; each tap is a permutation): factor 1. With ``e = left +
      right - K + 1 > 0`` extra outputs, windows repeat: at most ``1 + min(e, 2)`` times, as
      torch needs padding <= L.
    """
    if mode in ("zeros", "constant"):
        return 1.0
    if mode == "replicate":
        return math.sqrt(max(max(left, right) + 1, left + right + 2 - kernel_size))
    if mode == "reflect":
        return math.sqrt(1 + (left > 0) + (right > 0))
    if mode == "circular":
        extra = left + right - kernel_size + 1
        return 1.0 if extra <= 0 else math.sqrt(1 + min(extra, 2))
    raise TypeError(f"no certified Lipschitz bound for padding mode {mode!r}")


def conv1d_bound(weight: Tensor, replicate_pad: int = 0) -> float:
    """Operator-norm bound of an unpadded conv after zero/circular or replicate padding.

    Parameters
    ----------
    weight : Tensor, shape (out, in, K)
    replicate_pad : int
        Cells added on each side by replicate padding (edge cells then appear up to
        ``replicate_pad + 1`` times, multiplying the bound by ``sqrt(replicate_pad + 1)``;
        see :func:`padding_gain`).
    """
    gain = padding_gain("replicate", replicate_pad, replicate_pad, weight.shape[-1])
    return float(_conv_norm(weight.detach().double())) * gain


def _conv_padding(module: nn.Conv1d) -> tuple[int, int]:
    """(left, right) cells padded by a Conv1d (``padding`` may be an int or "same"/"valid")."""
    if module.padding == "valid":
        return 0, 0
    if module.padding == "same":
        total = module.kernel_size[0] - 1
        return total // 2, total - total // 2
    return module.padding[0], module.padding[0]


_UNIT_GAIN = (nn.Tanh, nn.ReLU, nn.Identity, nn.Flatten, nn.Dropout)


def certified_bound(module: nn.Module) -> float:
    """Certified upper bound of the Lipschitz constant of ``module`` (per sample, l2 to l2).

    Handles modules that define ``lipschitz_bound()`` (all pyclosure closures with a
    feed-forward path), ``nn.Sequential`` chains of linear/conv/activation layers,
    :class:`Normalizer`, and the Lipschitz layers of this module. An ``nn.Conv1d``'s own
    padding is accounted for (:func:`padding_gain`); an unpadded conv is assumed to see
    zero- or circularly-padded input (closures that replicate add that gain themselves).

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
        left, right = _conv_padding(module)
        gain = padding_gain(module.padding_mode, left, right, module.kernel_size[0])
        return float(_conv_norm(module.weight.detach().double())) * gain
    if isinstance(module, _UNIT_GAIN):
        return 1.0
    for name, cls in _ACTIVATIONS.items():
        if type(module) is cls:
            return ACTIVATION_GAIN[name]
    raise TypeError(f"no certified Lipschitz bound for {type(module).__name__}")
