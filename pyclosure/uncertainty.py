"""Uncertainty-aware closures: a Gaussian head with seeded sampling, and deep ensembles.

Sampling is reproducible by construction: the host passes the seed as an input tensor
and the noise is a counter-based hash of (seed, position) computed with int64 tensor
arithmetic, so the same inputs always give the same sample, whatever the global RNG state,
in eager mode, in TorchScript, and in the C bridge.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import _channels, _meaning, stencil_net
from .normalize import Normalizer

__all__ = ["DeepEnsemble", "SeededSampler", "StochasticHead", "gaussian_nll", "hash_normal"]


def _mulmod32(a: Tensor, c: int) -> Tensor:
    """``(a * c) mod 2**32`` for ``0 <= a, c < 2**32`` without int64 overflow."""
    lo = (a & 0xFFFF) * c
    hi = (((a >> 16) * c) & 0xFFFF) << 16
    return (lo + hi) & 0xFFFFFFFF


def _hash32(x: Tensor) -> Tensor:
    """The 'lowbias32' integer hash (C. Wellons) on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = _mulmod32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mulmod32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_normal(seed: Tensor, n: int) -> Tensor:
    """Standard normal noise from a counter-based hash of (seed, position).

    Parameters
    ----------
    seed : Tensor, shape (batch,) or (batch, 1), integer or integral float
        One seed per sample; all 64 bits of the (truncated) int64 value matter. Float
        seeds are exact only for integers below 2**24 (float32) or 2**53 (float64).
    n : int
        Number of positions per sample.

    Returns
    -------
    Tensor, shape (batch, n), float64
        Box-Muller transform of two hashed uniforms in (0, 1).
    """
    s = seed.reshape(-1, 1).to(torch.int64)
    pos = torch.arange(n, dtype=torch.int64, device=seed.device).unsqueeze(0)
    key = _hash32(_hash32(s & 0xFFFFFFFF) ^ ((s >> 32) & 0xFFFFFFFF) ^ 0x5BD1E995)
    h1 = _hash32((key + _mulmod32(pos, 0x9E3779B9)) & 0xFFFFFFFF)
    h2 = _hash32(h1 ^ 0x68BC21EB)
    u1 = (h1.to(torch.float64) + 0.5) / 4294967296.0
    u2 = (h2.to(torch.float64) + 0.5) / 4294967296.0
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def gaussian_nll(prediction: tuple[Tensor, Tensor], target: Tensor) -> Tensor:
    """Mean Gaussian negative log-likelihood of ``target`` under ``(mean, std)``."""
    mean, std = prediction
    return F.gaussian_nll_loss(mean, target, std * std, full=True)


class StochasticHead(nn.Module):
    """Periodic face-flux closure predicting a Gaussian: ``forward(x) -> (mean, std)``.

    Parameters
    ----------
    in_channels, stencil, hidden, depth, act, dx, input_normalizer
        As :class:`pyclosure.models.PeriodicFluxClosure`.
    output_normalizer : Normalizer, optional
        Global output scale; ``std`` is scaled by its ``std``.
    min_std : float
        Floor added to the softplus, so ``std > 0`` strictly.

    Notes
    -----
    x (batch, N) or (batch, C, N) -> mean (batch, N), std (batch, N). Train with
    :func:`gaussian_nll`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        dx: float = 1.0,
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
        min_std: float = 1e-6,
    ):
        super().__init__()
        if stencil < 2 or stencil % 2:
            raise ValueError(f"stencil must be even and >= 2, got {stencil}")
        self.left, self.right = stencil // 2, stencil // 2 - 1
        self.dx = float(dx)
        self.min_std = float(min_std)
        self.net = stencil_net(in_channels, 2, stencil, hidden, depth, act)
        self.normalizer = input_normalizer if input_normalizer is not None else Normalizer()
        self.out_scale = output_normalizer if output_normalizer is not None else Normalizer()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = F.pad(self.normalizer(_channels(x)), [self.left, self.right], mode="circular")
        out = self.net(z)
        mean = self.out_scale.inverse(out[:, 0])
        std = (F.softplus(out[:, 1]) + self.min_std) * self.out_scale.std.to(out.dtype)
        return mean, std

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x"],
            "output_names": ["flux_mean", "flux_std"],
            "variable_dims": {"x": [0]},
            "meaning": {
                "flux_mean": _meaning("periodic", self.dx),
                "flux_std": {"kind": "flux_std", "boundary": "periodic"},
            },
        }


class SeededSampler(nn.Module):
    """Draw a flux sample from a :class:`StochasticHead`: ``forward(x, seed) -> flux``.

    ``flux = mean + std * hash_normal(seed, N)``; the same ``(x, seed)`` always gives the
    same flux, bit for bit. ``seed`` has shape (batch,) or (batch, 1), int64 or float.
    """

    def __init__(self, head: StochasticHead):
        super().__init__()
        self.head = head

    def forward(self, x: Tensor, seed: Tensor) -> Tensor:
        mean, std = self.head(x)
        noise = hash_normal(seed, mean.shape[1]).to(mean.dtype)
        return mean + std * noise

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x", "seed"],
            "output_names": ["flux"],
            "variable_dims": {"x": [0]},
            "meaning": {"flux": dict(_meaning("periodic", self.head.dx), sampling="seeded_gaussian")},
        }


class DeepEnsemble(nn.Module):
    """``M`` one-output members in one module: ``forward(x) -> (mean, spread)``.

    ``spread`` is the population standard deviation across members (same shape as the
    mean); it grows where the members disagree, typically off the training distribution.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least 2 members")
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outs: list[Tensor] = []
        for member in self.members:
            outs.append(member(x))
        stacked = torch.stack(outs, dim=0)
        return stacked.mean(0), stacked.std(0, unbiased=False)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        inner = getattr(self.members[0], "pyclosure_contract", None)
        c = dict(inner()) if callable(inner) else {"input_names": ["x"], "output_names": ["y"]}
        c.pop("lipschitz_bound", None)
        name = c["output_names"][0]
        c["output_names"] = [name, f"{name}_spread"]
        c.setdefault("meaning", {})[f"{name}_spread"] = {
            "kind": "ensemble_spread",
            "members": len(self.members),
        }
        return c
