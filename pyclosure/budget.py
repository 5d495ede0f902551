"""Conservation budget of one recorded host update in flux form.

The host updates cells by flux differences (one explicit stage)::

    after_i = before_i - dt * (flux[i+1] - flux[i]) / dx_i + dt * source_i

:func:`update_budget` checks two things from the recorded arrays:

* **cells**: each ``after_i`` is what the update above gives. In ``"exact"``
  mode it must equal the update evaluated in IEEE arithmetic in the order
  written (left to right, no fused multiply-add), bit for bit: one ulp in one
  cell is a violation. Hosts that evaluate differently (FMA, another order)
  use ``"bounded"``: ``|after_i - update_i|`` (exact arithmetic) must stay
  within the rounding bound of the update.
* **domain**: the exact sum of cell changes times ``dx`` equals the net
  boundary flux plus the source, to within the sum of the per-cell rounding
  bounds; computed in exact rational arithmetic.

Rounding bound of one cell, with unit roundoff ``u`` (``q = dt (F_{i+1} - F_i) / dx``)::

    |after - update| <= u |after| + u (|before| + |q|(1+u)^3) + u (1+u) |dt s| + ((1+u)^3 - 1) |q| + 6 eta

which the code takes with a factor 2 of margin, evaluated in floating point.
"""

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np


@dataclass
class BudgetCheck:
    """Outcome of :func:`update_budget` (JSON-ready through :meth:`as_dict`)."""

    cells: int
    cells_exact: int
    cells_within_bound: int
    worst_cell: int | None  # flat index of the largest departure, None if all exact
    worst_ulps: int
    domain_residual: float
    domain_bound: float
    closes: bool
    mode: str
    message: str

    def as_dict(self):
        return asdict(self)


def _ordered(a):
    """Float bits mapped to integers that are ordered like the floats (for ulps)."""
    bits = a.view(np.int64 if a.dtype == np.float64 else np.int32).astype(np.int64)
    sign_bit = np.int64(-(2**63)) if a.dtype == np.float64 else np.int64(-(2**31))
    return np.where(bits < 0, sign_bit - bits, bits)


def ulps_between(a, b):
    """Distance in units in the last place, elementwise (same dtype, finite)."""
    with np.errstate(over="ignore"):
        d = np.abs(_ordered(a) - _ordered(b))
    return np.where(d < 0, np.iinfo(np.int64).max, d)


def _cell_axis(state, flux, boundary):
    for ax in range(state.ndim):
        if flux.shape[ax] == state.shape[ax] + 1 and all(
                flux.shape[k] == state.shape[k] for k in range(state.ndim) if k != ax):
            return ax, False
    if flux.shape == state.shape and (boundary == "periodic" or state.ndim == 1):
        return 0 if state.ndim == 1 else state.ndim - 1, True
    raise ValueError(f"flux shape {flux.shape} does not fit state shape {state.shape}: "
                     "expected one more face than cells along one axis (or equal, periodic)")


def update_budget(before, after, flux, dt, dx, source=None, *, boundary="periodic", mode="exact"):
    """Check one recorded flux-form update; see the module docstring.

    Parameters
    ----------
    before, after : arrays of one shape (cells along one axis)
    flux : array with one more entry along the cell axis (faces), or the same
        shape for a periodic domain (left faces; the last right face is flux[0])
    dt : scalar; dx : scalar or array like ``before``; source : like ``before`` or None
    boundary : "periodic" or anything else (the end faces then carry boundary fluxes)
    mode : "exact" or "bounded"
    """
    before, after, flux = (np.asarray(a) for a in (before, after, flux))
    if before.shape != after.shape:
        raise ValueError(f"state_before {before.shape} and state_after {after.shape} differ in shape")
    if mode not in ("exact", "bounded"):
        raise ValueError(f"mode must be 'exact' or 'bounded', got {mode!r}")
    ax, wrap = _cell_axis(before, flux, boundary)
    b, a, f = (np.moveaxis(x, ax, -1) for x in (before, after, flux))
    if wrap:
        f = np.concatenate([f, f[..., :1]], axis=-1)
    dtype = np.result_type(b.dtype, a.dtype, f.dtype)
    dt = np.asarray(dt, dtype=dtype).reshape(())
    dxa = np.broadcast_to(np.moveaxis(np.broadcast_to(np.asarray(dx, dtype=dtype), before.shape), ax, -1), b.shape)
    s = None if source is None else np.moveaxis(np.broadcast_to(np.asarray(source, dtype=dtype), before.shape), ax, -1)
    for name, x in (("state_before", b), ("state_after", a), ("flux", f), ("dx", dxa)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} has non-finite values: no budget can be checked")

    with np.errstate(all="ignore"):
        update = b - dt * (f[..., 1:] - f[..., :-1]) / dxa
        if s is not None:
            update = update + dt * s
    exact = a.view(np.uint8).reshape(a.shape + (-1,)) == update.astype(a.dtype).view(np.uint8).reshape(a.shape + (-1,))
    exact = exact.all(axis=-1)
    ulps = ulps_between(a.astype(dtype), update)

    finfo = np.finfo(dtype)
    u, eta = float(finfo.eps) / 2, float(finfo.smallest_subnormal) / 2
    q = np.abs(dt * (f[..., 1:] - f[..., :-1]) / dxa)
    src = 0.0 if s is None else np.abs(dt * s)
    bound = 2 * (u * np.abs(a) + u * (np.abs(b) + q * (1 + u) ** 3) + u * (1 + u) * src
                 + ((1 + u) ** 3 - 1) * q + 6 * eta)
    fr = Fraction
    within = np.zeros(a.shape, dtype=bool)
    residual = Fraction(0)
    domain_bound = Fraction(0)
    for idx in np.ndindex(a.shape[:-1]):
        row_res = Fraction(0)
        dtf = fr(float(dt))
        for i in range(a.shape[-1]):
            k = idx + (i,)
            dxi = fr(float(dxa[k]))
            change = fr(float(a[k])) - fr(float(b[k]))
            applied = -dtf * (fr(float(f[idx + (i + 1,)])) - fr(float(f[k]))) / dxi
            if s is not None:
                applied += dtf * fr(float(s[k]))
            within[k] = abs(change - applied) <= fr(float(bound[k]))
            row_res += dxi * (change - applied)
            domain_bound += abs(dxi) * fr(float(bound[k]))
        residual += abs(row_res)
    cells_ok = exact if mode == "exact" else within
    closes = bool(cells_ok.all()) and residual <= domain_bound
    worst = None
    if not exact.all():
        flat = np.where(exact, -1, ulps).reshape(-1)
        worst = int(np.argmax(flat))
    if closes:
        message = "budget closes"
    elif not cells_ok.all():
        bad = int(np.argmax(~cells_ok.reshape(-1)))
        how = "differs from the update by" if mode == "exact" else "exceeds its rounding bound by"
        message = (f"cell {bad} (flat index along the cell axis last) {how} "
                   f"{int(ulps.reshape(-1)[bad])} ulp(s)")
    else:
        message = f"domain budget residual {float(residual):.3e} exceeds the rounding bound {float(domain_bound):.3e}"
    return BudgetCheck(
        cells=int(a.size), cells_exact=int(exact.sum()), cells_within_bound=int(within.sum()),
        worst_cell=worst, worst_ulps=int(ulps.max()) if ulps.size else 0,
        domain_residual=float(residual), domain_bound=float(domain_bound), closes=closes, mode=mode,
        message=message)
