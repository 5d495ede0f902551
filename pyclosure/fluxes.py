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

Whether tendencies computed this way conserve (``sum_i tend_i * dx_i == F_bottom - F_top``
up to a rigorous rounding bound) is checked by :mod:`pyclosure.budget`, the one budget module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = [
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
