"""Training data: coarse-graining periodic 1-D high-resolution fields, and datasets on disk.

Coarse-graining of a fine field ``u`` (last axis: ``n_fine`` periodic cells) by an integer
``factor`` gives the coarse state ``coarsen(u, factor)`` (block averages) and the subgrid
flux of Burgers-type advection ``tau = 0.5 * (filter(u*u) - filter(u)**2)`` at coarse faces
(see :func:`subgrid_flux`). :class:`ArrayDataset` reads ``.npz`` (numpy) and NetCDF
(through xarray, optional) whole into a torch ``Dataset``; data larger than memory streams
through :class:`pyclosure.stream.StreamDataset`. :func:`subgrid_tendency` turns a coarse
trajectory into tendency targets, with a stated choice of time difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "ArrayDataset",
    "ForwardDifferenceWarning",
    "box_filter",
    "coarsen",
    "spectral_filter",
    "subgrid_flux",
    "subgrid_tendency",
]


def box_filter(u: np.ndarray, width: int) -> np.ndarray:
    """Periodic top-hat filter: mean over ``width`` cells centred on each cell.

    Parameters
    ----------
    u : array, shape (..., n)
    width : int
        Odd number of cells (``(width - 1) / 2`` on each side).

    Returns
    -------
    array, shape (..., n)
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"box filter width must be odd and >= 1, got {width}")
    u = np.asarray(u)
    half = width // 2
    return sum(np.roll(u, s, axis=-1) for s in range(-half, half + 1)) / width


def spectral_filter(u: np.ndarray, cutoff: int) -> np.ndarray:
    """Sharp spectral cutoff: keep Fourier modes with wavenumber index ``|k| <= cutoff``.

    Parameters
    ----------
    u : array, shape (..., n), real, periodic
    cutoff : int
        Highest kept mode (``cutoff >= n // 2`` leaves ``u`` unchanged).
    """
    u = np.asarray(u)
    spec = np.fft.rfft(u, axis=-1)
    spec[..., cutoff + 1 :] = 0
    return np.fft.irfft(spec, n=u.shape[-1], axis=-1)


def coarsen(u: np.ndarray, factor: int) -> np.ndarray:
    """Block average of ``factor`` consecutive fine cells: (..., n) -> (..., n // factor).

    Coarse cell ``I`` covers fine cells ``I*factor .. I*factor + factor - 1``, so the left
    face of coarse cell ``I`` is the left face of fine cell ``I*factor``.
    """
    u = np.asarray(u)
    n = u.shape[-1]
    if n % factor:
        raise ValueError(f"{n} fine cells do not divide into blocks of {factor}")
    return u.reshape(*u.shape[:-1], n // factor, factor).mean(-1)


def subgrid_flux(
    u: np.ndarray, factor: int, filter: str = "box", width: int | None = None, cutoff: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Coarse state and subgrid flux ``tau = 0.5*(filter(u*u) - filter(u)**2)`` at faces.

    Exactly how, for ``filter="box"`` or ``"spectral"``:

    1. ``tau`` is evaluated on the fine grid at fine cell centres, with ``filter`` the box
       filter (default ``width = factor + 1`` if ``factor`` is even, else ``factor``) or
       the sharp spectral filter (default ``cutoff = n_coarse // 2``);
    2. the coarse face ``I`` (left face of coarse cell ``I``) lies between fine cells
       ``I*factor - 1`` and ``I*factor``; ``tau_face[I]`` is the mean of ``tau`` at those
       two fine cells (periodic, so ``I = 0`` uses fine cell ``n - 1``).

    ``filter="face_box"`` (``factor`` even) filters at the faces themselves: a box of exactly
    ``factor`` fine cells centred on coarse face ``I``, fine cells ``I*factor - factor/2 ..
    I*factor + factor/2 - 1`` (periodic), i.e. the block means of the coarse grid shifted by
    half a coarse cell; ``width`` and ``cutoff`` do not apply.

    Parameters
    ----------
    u : array, shape (..., n_fine)
    factor : int
    filter : {"box", "spectral", "face_box"}

    Returns
    -------
    u_coarse : array, shape (..., n_fine // factor)
        ``coarsen(u, factor)``.
    tau_faces : array, shape (..., n_fine // factor)
        Subgrid flux at the left face of each coarse cell (the periodic face convention
        of :mod:`pyclosure.fluxes`).
    """
    u = np.asarray(u, dtype=np.float64)
    n_coarse = u.shape[-1] // factor
    if filter == "face_box":
        if factor % 2:
            raise ValueError(
                f"a face-centred box of {factor} fine cells has no centre on a face: use an even factor"
            )
        shifted = np.roll(u, factor // 2, axis=-1)  # coarse block I now spans face I +- factor/2
        mean = coarsen(shifted, factor)
        return coarsen(u, factor), 0.5 * (coarsen(shifted * shifted, factor) - mean * mean)
    if filter == "box":
        w = width if width is not None else (factor + 1 if factor % 2 == 0 else factor)

        def filt(v):
            return box_filter(v, w)

    elif filter == "spectral":
        kc = cutoff if cutoff is not None else n_coarse // 2

        def filt(v):
            return spectral_filter(v, kc)

    else:
        raise ValueError(f"filter must be 'box', 'spectral' or 'face_box', got {filter!r}")
    tau = 0.5 * (filt(u * u) - filt(u) ** 2)
    right = np.arange(n_coarse) * factor
    tau_faces = 0.5 * (tau[..., right - 1] + tau[..., right])
    return coarsen(u, factor), tau_faces


class ForwardDifferenceWarning(UserWarning):
    """Tendency targets from a forward difference carry the resolved dynamics' time error."""


DIFFERENCES = ("centred", "step", "forward")


def subgrid_tendency(
    trajectory,
    dt: float,
    resolved: Callable | None = None,
    difference: str = "centred",
    step: Callable | None = None,
):
    """Subgrid tendency targets from a coarse trajectory: what the closure must add.

    Parameters
    ----------
    trajectory : array, shape (T, ...)
        Coarse states (coarse-grained truth) every ``dt``, time first.
    dt : float
        Time between consecutive states.
    resolved : callable(states) -> tendencies, optional
        The coarse model's own right-hand side without closure, on states shaped
        ``(n, ...)``; for ``"centred"`` and ``"forward"``.
    difference : {"centred", "step", "forward"}
        ``"centred"`` (default): at states ``1 .. T-2``,
        ``(X[n+1] - X[n-1]) / (2 dt) - resolved(X[n])``; its error in ``dX/dt`` is
        ``O(dt**2)``.
        ``"step"``: at states ``0 .. T-2``, ``(X[n+1] - step(X[n])) / dt`` with ``step``
        the host's own time step without closure: the tendency that, added as
        ``dt * U`` after the host's step, reproduces the trajectory exactly, time-stepping
        error included (consistent with a host that applies the closure that way).
        ``"forward"``: at states ``0 .. T-2``, ``(X[n+1] - X[n]) / dt - resolved(X[n])``.
        Its ``O(dt)`` error, ``dt/2 d2X/dt2``, is mostly the resolved dynamics' own
        curvature, not subgrid physics; a closure trained on it learns that error too,
        and can score better a priori yet worse in the coupled run. It warns
        (:class:`ForwardDifferenceWarning`).
    step : callable(states) -> next states, optional
        For ``"step"``.

    Returns
    -------
    states, targets : arrays, each (T - 2, ...) for "centred", (T - 1, ...) otherwise
        Aligned in time: ``targets[i]`` belongs to ``states[i]``.
    """
    x = np.asarray(trajectory, dtype=np.float64)
    if x.ndim < 1 or x.shape[0] < 3:
        raise ValueError(f"trajectory needs at least 3 states along axis 0, got shape {x.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if difference not in DIFFERENCES:
        raise ValueError(f"difference must be one of {DIFFERENCES}, got {difference!r}")
    needs = "step" if difference == "step" else "resolved"
    fn = step if difference == "step" else resolved
    if fn is None:
        raise ValueError(f"difference={difference!r} needs {needs}=")
    if difference == "centred":
        states = x[1:-1]
        return states, (x[2:] - x[:-2]) / (2 * dt) - np.asarray(fn(states))
    states = x[:-1]
    if difference == "step":
        return states, (x[1:] - np.asarray(fn(states))) / dt
    warnings.warn(
        "forward-difference tendency targets carry the resolved dynamics' O(dt) "
        "time-stepping error (dt/2 d2X/dt2); a closure trained on them can look "
        "better a priori and do worse coupled. Use difference='centred' or 'step', "
        "or train a posteriori (pyclosure.train.fit_a_posteriori)",
        ForwardDifferenceWarning,
        stacklevel=2,
    )
    return states, (x[1:] - x[:-1]) / dt - np.asarray(fn(states))


def _load_npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _load_netcdf(path: Path) -> dict:
    try:
        import xarray as xr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"reading NetCDF file {path} needs xarray and a NetCDF engine; "
            "install them with `pip install pyclosure[data]` (xarray, netCDF4, ...), or convert the data to .npz"
        ) from exc
    with xr.open_dataset(path) as ds:
        return {k: ds[k].values for k in ds.data_vars}


class ArrayDataset(Dataset):
    """Samples ``(inputs..., target)`` read from ``.npz`` or NetCDF (``.nc``) files.

    Parameters
    ----------
    path : str or Path
        ``.npz`` file (numpy) or ``.nc`` / ``.nc4`` / ``.cdf`` file (needs xarray).
    inputs : sequence of str
        Variable names of the model inputs, each shaped (samples, ...).
    target : str
        Variable name of the target, shaped (samples, ...).
    dtype : torch.dtype

    Notes
    -----
    ``dataset[i]`` returns a tuple of tensors ``(input_0, ..., target)``; ``tensors()``
    returns the whole arrays, ready for :func:`pyclosure.train.fit`.
    """

    def __init__(self, path, inputs=("u",), target: str = "flux", dtype: torch.dtype = torch.float32):
        path = Path(path)
        if path.suffix == ".npz":
            arrays = _load_npz(path)
        elif path.suffix in (".nc", ".nc4", ".cdf"):
            arrays = _load_netcdf(path)
        else:
            raise ValueError(f"unsupported data file {path} (use .npz or .nc)")
        names = list(inputs) + [target]
        missing = [n for n in names if n not in arrays]
        if missing:
            raise KeyError(f"{path} lacks variables {missing}; it has {sorted(arrays)}")
        self.names = names
        self.arrays = [torch.as_tensor(np.asarray(arrays[n]), dtype=dtype) for n in names]
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(f"variables {names} have different sample counts {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)

    def tensors(self) -> tuple:
        """``(inputs, target)``: a tuple of input tensors and the target tensor."""
        return tuple(self.arrays[:-1]), self.arrays[-1]
