"""Face fluxes to cell tendencies, exactly as a finite-volume host computes them.

Two geometries are supported:

* **periodic** 1-D domain: ``N`` cells and ``N`` faces. Face ``i`` is the LEFT face of
  cell ``i``; the right face of cell ``N-1`` is face ``0``.
* **column**: ``N`` cells and ``N + 1`` faces. Face ``0`` is the bottom (surface) face,
  face ``N`` is the lid.

The host (Fortran) evaluates, for every cell, in this exact order::

    dudt(i) = -(F(i+1) - F(i)) / dx(i)

that is: subtract first, then divide (the negation is exact). The torch functions here
perform the same two rounded operations in the same order, so a replay reproduces the
host bit for bit.

The budget helpers (numpy + :class:`fractions.Fraction`) check conservation of a set of
computed tendencies in exact arithmetic: ``sum_i tend_i * dx_i`` must equal
``F_bottom - F_top`` (zero for a periodic domain) up to a rigorous rounding bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BudgetReport",
    "budget_bound",
    "budget_residual",
    "check_budget",
    "column_tendency",
    "column_tendency_np",
    "periodic_tendency",
    "periodic_tendency_np",
]


def periodic_tendency(flux: Tensor, dx: Tensor) -> Tensor:
    """Tendencies on a periodic domain from fluxes at left faces.

    Parameters
    ----------
    flux : Tensor, shape (batch, N)
        ``flux[:, i]`` is the flux through the left face of cell ``i``.
    dx : Tensor, shape (), (N,) or (batch, N)
        Cell widths, same dtype as ``flux``.

    Returns
    -------
    Tensor, shape (batch, N)
        ``-(F[i+1] - F[i]) / dx[i]`` with ``F[N] = F[0]``; subtract first, then divide.
    """
    return -(torch.roll(flux, -1, dims=-1) - flux) / dx


def column_tendency(flux: Tensor, dx: Tensor) -> Tensor:
    """Tendencies in a bounded column from fluxes at its ``N + 1`` faces.

    Parameters
    ----------
    flux : Tensor, shape (batch, N + 1)
        Face 0 is the bottom (surface) face, face N the lid.
    dx : Tensor, shape (), (N,) or (batch, N)
        Cell thicknesses.

    Returns
    -------
    Tensor, shape (batch, N)
        ``-(F[i+1] - F[i]) / dx[i]``; subtract first, then divide.
    """
    return -(flux[..., 1:] - flux[..., :-1]) / dx


def periodic_tendency_np(flux: np.ndarray, dx) -> np.ndarray:
    """Numpy twin of :func:`periodic_tendency` (same operation order, same dtype)."""
    flux = np.asarray(flux)
    dx = np.asarray(dx, dtype=flux.dtype)
    return -(np.roll(flux, -1, axis=-1) - flux) / dx


def column_tendency_np(flux: np.ndarray, dx) -> np.ndarray:
    """Numpy twin of :func:`column_tendency` (same operation order, same dtype)."""
    flux = np.asarray(flux)
    dx = np.asarray(dx, dtype=flux.dtype)
    return -(flux[..., 1:] - flux[..., :-1]) / dx


def _np(a) -> np.ndarray:
    """Array view of a numpy array, scalar or (possibly grad-tracking) torch tensor."""
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _fractions(values: np.ndarray) -> list[Fraction]:
    out = []
    for v in _np(values).ravel().tolist():
        if not np.isfinite(v):
            raise ValueError(f"budget check needs finite values, got {v!r}")
        out.append(Fraction(v))
    return out


def _unit_roundoff(dtype) -> tuple[Fraction, Fraction]:
    """Unit roundoff ``u`` and half the smallest subnormal ``eta`` of a float dtype."""
    fi = np.finfo(np.dtype(dtype))
    return Fraction(float(fi.eps)) / 2, Fraction(float(fi.smallest_subnormal)) / 2


def _per_cell(dx, shape) -> np.ndarray:
    return np.broadcast_to(_np(dx).astype(np.float64), shape)


def budget_residual(tendency, dx, flux_bottom=0.0, flux_top=0.0) -> Fraction:
    """Exact residual ``sum_i tend_i * dx_i - (F_bottom - F_top)`` of one sample.

    Parameters
    ----------
    tendency : array, shape (N,)
        Tendencies as computed by the host (any float dtype).
    dx : float or array, shape (N,)
        Cell widths, the exact values the host divided by.
    flux_bottom, flux_top : float
        Flux through face 0 and face N (both 0 for a periodic domain).

    Returns
    -------
    Fraction
        The residual in exact rational arithmetic.
    """
    t = _np(tendency)
    total = sum(
        (a * b for a, b in zip(_fractions(t), _fractions(_per_cell(dx, t.shape)), strict=True)),
        Fraction(0),
    )
    return total - (Fraction(float(flux_bottom)) - Fraction(float(flux_top)))


def budget_bound(tendency, dx, dtype=None) -> Fraction:
    """Rigorous bound on ``|budget_residual|`` caused by rounding in the host update.

    Each computed tendency is ``t_i = fl(fl(-(F_{i+1} - F_i)) / dx_i)``. With unit
    roundoff ``u`` and underflow constant ``eta`` (half the smallest subnormal)::

        t_i * dx_i = -(F_{i+1} - F_i) (1 + d1)(1 + d2) + e_i * dx_i,
        |d1|, |d2| <= u,  |e_i| <= eta  (the subtraction is exact when it underflows).

    The exact differences telescope to ``F_0 - F_N``, hence::

        |residual| <= sum_i |F_{i+1} - F_i| ((1+u)^2 - 1) + eta |dx_i|
        |F_{i+1} - F_i| <= (|t_i dx_i| + eta |dx_i|) / (1 - u)^2.

    The bound assumes no overflow (non-finite values raise ``ValueError``).

    Parameters
    ----------
    tendency : array, shape (N,)
    dx : float or array, shape (N,)
    dtype : numpy dtype, optional
        Precision of the host arithmetic; defaults to ``tendency.dtype``.

    Returns
    -------
    Fraction
    """
    t = _np(tendency)
    u, eta = _unit_roundoff(dtype if dtype is not None else t.dtype)
    rel = ((1 + u) ** 2 - 1) / (1 - u) ** 2
    bound = Fraction(0)
    for ti, di in zip(_fractions(t), _fractions(_per_cell(dx, t.shape)), strict=True):
        bound += rel * (abs(ti * di) + eta * abs(di)) + eta * abs(di)
    return bound


@dataclass(frozen=True)
class BudgetReport:
    """Outcome of :func:`check_budget` for a batch.

    Attributes
    ----------
    residuals, bounds : list of Fraction, length batch
    closes : bool
        ``abs(residual) <= bound`` for every sample.
    worst_ratio : float
        ``max |residual| / bound`` (0 when all bounds are 0 and residuals 0).
    """

    residuals: list
    bounds: list
    closes: bool
    worst_ratio: float


def check_budget(tendency, dx, flux, boundary: str, dtype=None) -> BudgetReport:
    """Check budget closure for a batch of tendencies computed from ``flux``.

    Parameters
    ----------
    tendency : array, shape (batch, N)
    dx : float or array broadcastable to (batch, N)
    flux : array, shape (batch, N) for ``"periodic"`` or (batch, N + 1) for ``"column"``
    boundary : {"periodic", "column"}
    dtype : numpy dtype, optional

    Returns
    -------
    BudgetReport
    """
    t = np.atleast_2d(_np(tendency))
    f = np.atleast_2d(_np(flux))
    d = np.broadcast_to(_np(dx), t.shape)
    if boundary not in ("periodic", "column"):
        raise ValueError(f"boundary must be 'periodic' or 'column', got {boundary!r}")
    residuals, bounds = [], []
    for b in range(t.shape[0]):
        bottom, top = (0.0, 0.0) if boundary == "periodic" else (f[b, 0], f[b, -1])
        residuals.append(budget_residual(t[b], d[b], bottom, top))
        bounds.append(budget_bound(t[b], d[b], dtype if dtype is not None else t.dtype))
    ratios = [
        float(abs(r) / bd) if bd > 0 else (0.0 if r == 0 else float("inf"))
        for r, bd in zip(residuals, bounds, strict=True)
    ]
    closes = all(abs(r) <= bd for r, bd in zip(residuals, bounds, strict=True))
    return BudgetReport(residuals, bounds, closes, max(ratios))
