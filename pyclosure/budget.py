"""Conservation budgets of a flux-form update, checked in exact arithmetic: one module for both forms.

Two questions, with one rounding model (unit roundoff ``u`` and underflow constant ``eta`` of
the host's float type, :func:`rounding_units`) and exact rational sums:

* **the update budget** (:func:`update_budget`, :func:`closure_in_total`): did one recorded
  host update ``after = before - dt (F_{i+1} - F_i) / dx + dt s`` use the fluxes it claims,
  cell by cell and over the domain? Replay checks every record with it.
* **the tendency budget** (:func:`check_budget`, :func:`budget_residual`,
  :func:`budget_bound`): do tendencies ``t_i = -(F_{i+1} - F_i) / dx_i`` (as
  :mod:`pyclosure.fluxes` computes them) conserve, ``sum_i t_i dx_i = F_bottom - F_top``
  (zero for a periodic domain), within a rigorous rounding bound that needs only the
  tendencies and the two boundary fluxes?

Update budget
-------------
The host updates cells by flux differences (one explicit stage)::

    after_i = before_i - dt * (flux[i+1] - flux[i]) / dx_i + dt * source_i

:func:`update_budget` checks three things from the recorded arrays:

* **cells**: each ``after_i`` is what the update above gives. In ``"exact"``
  mode it must equal the update evaluated in IEEE arithmetic in the order
  written (left to right, no fused multiply-add), bit for bit: one ulp in one
  cell is a violation. Hosts that evaluate differently (FMA, another order)
  use ``"bounded"``: ``|after_i - update_i|`` (exact arithmetic) must stay
  within the rounding bound ``b_i`` of the update (below).
* **domain** (per row along the cell axis: a column, or the whole 1-D domain):
  the departure of the host's domain total from the reference update's,
  ``D = sum_i dx_i (after_i - ref_i)`` with ``ref_i`` the IEEE update in the
  written order, computed in exact rational arithmetic, must satisfy
  ``|D| <= DOMAIN_LAMBDA * sqrt(sum_i (dx_i b_i)**2)``. Rounding errors of a
  correct evaluation carry no common sign, so their weighted sum grows like
  the root-sum-square of the cell bounds; a bias of one sign in every cell
  grows like their plain sum. With ``DOMAIN_LAMBDA = 8`` a sum of independent
  zero-mean errors each within its bound exceeds the limit with probability
  below ``2 exp(-32)`` (Hoeffding), while a bias of ``c b_i`` in each of ``n``
  cells is caught once ``c sqrt(n) > 8``: e.g. 0.9 of the bound from 80 cells
  on, one ulp (about half the bound) from about 260 on. This is independent
  of the cell check: cells may all be within their bounds and the domain
  still fail. In ``"exact"`` mode ``D`` is 0 whenever the cells pass (the
  domain check then adds nothing, and says nothing false). A host whose
  evaluation differs from the written order by the same rounding in many
  cells (e.g. FMA on a uniform state with a uniform flux gradient) can fail it
  in ``"bounded"`` mode: evaluate in the written order, or record and use
  ``"exact"``.
* **end faces**: on a periodic domain recorded with one more face than cells,
  the last face must be the first one, bit for bit (else flux leaves one end
  of the domain and does not enter the other).

Rounding bound of one cell, with unit roundoff ``u`` (``q = dt (F_{i+1} - F_i) / dx``)::

    |after - update| <= u |after| + u (|before| + |q|(1+u)^3) + u (1+u) |dt s| + ((1+u)^3 - 1) |q| + 6 eta

which the code takes with a factor 2 of margin, evaluated in floating point.

:func:`closure_in_total` ties the closure to the update: the total face flux
the host applied must be its non-closure part plus the closure's flux, one
IEEE addition per face, bit for bit.

Tendency budget
---------------
Each computed tendency is ``t_i = fl(fl(-(F_{i+1} - F_i)) / dx_i)``; the exact differences
telescope to ``F_0 - F_N``, so :func:`budget_residual`, ``sum_i t_i dx_i - (F_bottom - F_top)``
in exact arithmetic, is rounding alone, bounded by :func:`budget_bound` (derived there).
:func:`check_budget` takes a batch and the face fluxes it came from.
"""

import math
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "DOMAIN_LAMBDA",
    "BudgetCheck",
    "BudgetReport",
    "budget_bound",
    "budget_residual",
    "check_budget",
    "closure_in_total",
    "rounding_units",
    "same_bits",
    "ulps_between",
    "update_budget",
]

DOMAIN_LAMBDA = 8.0


def rounding_units(dtype):
    """Unit roundoff ``u`` and half the smallest subnormal ``eta`` of a float dtype, as floats.

    Both are powers of two, so ``Fraction(u)`` and ``Fraction(eta)`` are exact.
    """
    finfo = np.finfo(np.dtype(dtype))
    return float(finfo.eps) / 2, float(finfo.smallest_subnormal) / 2


@dataclass
class BudgetCheck:
    """Outcome of :func:`update_budget` (JSON-ready through :meth:`as_dict`)."""

    cells: int
    cells_exact: int
    cells_within_bound: int
    worst_cell: int | None  # flat index of the largest departure, None if all exact
    worst_ulps: int
    domain_residual: float  # sum over rows of |sum dx (after - before) - net flux - source|, exact
    domain_departure: float  # |sum dx (after - reference update)| of the worst row, exact
    domain_bound: float  # DOMAIN_LAMBDA * sqrt(sum (dx b)^2) of that row
    domain_closes: bool
    end_faces_equal: bool | None  # periodic domain with n+1 faces: last face == first; else None
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


def same_bits(a, b):
    """Elementwise bit-for-bit equality of two arrays of one dtype and shape."""
    a, b = np.ascontiguousarray(np.atleast_1d(a)), np.ascontiguousarray(np.atleast_1d(b))
    return (a.view(np.uint8).reshape(a.shape + (-1,)) == b.view(np.uint8).reshape(b.shape + (-1,))).all(
        axis=-1
    )


def _cell_axis(state, flux, boundary):
    for ax in range(state.ndim):
        if flux.shape[ax] == state.shape[ax] + 1 and all(
            flux.shape[k] == state.shape[k] for k in range(state.ndim) if k != ax
        ):
            return ax, False
    if flux.shape == state.shape and boundary == "periodic":
        return state.ndim - 1, True
    extra = "" if boundary == "periodic" else f" (a {boundary!r} domain needs its boundary faces: n + 1)"
    raise ValueError(
        f"flux shape {flux.shape} does not fit state shape {state.shape}: "
        "expected one more face than cells along one axis (or equal, periodic)" + extra
    )


def _prepare(before, after, flux, dt, dx, source, boundary):
    """Arrays with the cell axis last, faces wrapped if periodic, checked finite."""
    before, after, flux = (np.asarray(a) for a in (before, after, flux))
    if before.shape != after.shape:
        raise ValueError(f"state_before {before.shape} and state_after {after.shape} differ in shape")
    if flux.ndim != before.ndim:
        raise ValueError(f"flux has rank {flux.ndim}, the state rank {before.ndim}")
    ax, wrap = _cell_axis(before, flux, boundary)
    b, a, f = (np.moveaxis(x, ax, -1) for x in (before, after, flux))
    if wrap:
        f = np.concatenate([f, f[..., :1]], axis=-1)
    dtype = np.result_type(b.dtype, a.dtype, f.dtype)
    dt = np.asarray(dt, dtype=dtype).reshape(())
    dxa = np.broadcast_to(
        np.moveaxis(np.broadcast_to(np.asarray(dx, dtype=dtype), before.shape), ax, -1), b.shape
    )
    s = (
        None
        if source is None
        else np.moveaxis(np.broadcast_to(np.asarray(source, dtype=dtype), before.shape), ax, -1)
    )
    for name, x in (("state_before", b), ("state_after", a), ("flux", f), ("dx", dxa)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} has non-finite values: no budget can be checked")
    return b, a, f, dt, dxa, s, dtype, wrap


def _cell_bounds(a, b, f, dt, dxa, s, dtype):
    u, eta = rounding_units(dtype)
    q = np.abs(dt * (f[..., 1:] - f[..., :-1]) / dxa)
    src = 0.0 if s is None else np.abs(dt * s)
    return 2 * (
        u * np.abs(a)
        + u * (np.abs(b) + q * (1 + u) ** 3)
        + u * (1 + u) * src
        + ((1 + u) ** 3 - 1) * q
        + 6 * eta
    )


def _exact_sums(a, b, f, dt, dxa, s, reference, bound):
    """Per cell: within bound; per row: |residual|, |departure| and its limit (exact arithmetic)."""
    fr = Fraction
    dtf = fr(float(dt))
    within = np.zeros(a.shape, dtype=bool)
    residual, worst = Fraction(0), (-1.0, 0.0, 0.0)  # (departure/limit, departure, limit)
    for idx in np.ndindex(a.shape[:-1]):
        row_res, row_dep, row_var = Fraction(0), Fraction(0), 0.0
        for i in range(a.shape[-1]):
            k = idx + (i,)
            dxi = fr(float(dxa[k]))
            after = fr(float(a[k]))
            change = after - fr(float(b[k]))
            applied = -dtf * (fr(float(f[idx + (i + 1,)])) - fr(float(f[k]))) / dxi
            if s is not None:
                applied += dtf * fr(float(s[k]))
            within[k] = abs(change - applied) <= fr(float(bound[k]))
            row_res += dxi * (change - applied)
            row_dep += dxi * (after - fr(float(reference[k])))
            row_var += (float(dxa[k]) * float(bound[k])) ** 2
        residual += abs(row_res)
        limit = DOMAIN_LAMBDA * math.sqrt(row_var)
        dep = float(abs(row_dep))
        ratio = (dep / limit) if limit > 0 else (0.0 if dep == 0 else math.inf)
        if ratio > worst[0]:
            worst = (ratio, dep, limit)
    return within, float(residual), worst


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

    Returns
    -------
    BudgetCheck
        ``closes`` is true when cells, domain and (periodic) end faces all pass;
        ``message`` names the first check that failed.
    """
    if mode not in ("exact", "bounded"):
        raise ValueError(f"mode must be 'exact' or 'bounded', got {mode!r}")
    b, a, f, dt, dxa, s, dtype, wrap = _prepare(before, after, flux, dt, dx, source, boundary)
    with np.errstate(all="ignore"):
        reference = b - dt * (f[..., 1:] - f[..., :-1]) / dxa
        if s is not None:
            reference = reference + dt * s
    reference = reference.astype(a.dtype)
    exact = same_bits(a, reference)
    ulps = ulps_between(a.astype(dtype), reference.astype(dtype))
    bound = _cell_bounds(a, b, f, dt, dxa, s, dtype)
    within, residual, (_, departure, limit) = _exact_sums(a, b, f, dt, dxa, s, reference, bound)
    end_faces = None
    if boundary == "periodic" and not wrap:
        end_faces = bool(same_bits(f[..., -1], f[..., 0]).all())
    cells_ok = exact if mode == "exact" else within
    domain_ok = departure <= limit
    closes = bool(cells_ok.all()) and domain_ok and end_faces is not False
    if closes:
        message = "budget closes"
    elif not cells_ok.all():
        bad = int(np.argmax(~cells_ok.reshape(-1)))
        how = "differs from the update by" if mode == "exact" else "exceeds its rounding bound, off by"
        message = (
            f"cell {bad} (flat index along the cell axis last) {how} {int(ulps.reshape(-1)[bad])} ulp(s)"
        )
    elif end_faces is False:
        message = "periodic domain, but the last face's flux is not the first face's: flux leaves the domain"
    else:
        message = (
            f"domain total departs from the update by {departure:.3e}, beyond its rounding limit "
            f"{limit:.3e} (a bias of one sign across cells, each within its own bound)"
        )
    worst = None if exact.all() else int(np.argmax(np.where(exact, -1, ulps).reshape(-1)))
    return BudgetCheck(
        cells=int(a.size),
        cells_exact=int(exact.sum()),
        cells_within_bound=int(within.sum()),
        worst_cell=worst,
        worst_ulps=int(ulps.max()) if ulps.size else 0,
        domain_residual=residual,
        domain_departure=departure,
        domain_bound=limit,
        domain_closes=domain_ok,
        end_faces_equal=end_faces,
        closes=closes,
        mode=mode,
        message=message,
    )


def _faces_of(closure, total, state_shape, boundary):
    """The closure's flux laid on the total flux's faces (periodic: face n is face 0)."""
    c = np.asarray(closure)
    if c.shape == total.shape:
        return c
    squeezed = c.reshape([d for d in c.shape if d != 1])
    if squeezed.shape == total.shape:
        return squeezed
    if boundary == "periodic" and len(state_shape) == total.ndim:
        ax, _ = _cell_axis(np.empty(state_shape), total, boundary)
        cells = squeezed.reshape(state_shape) if squeezed.size == math.prod(state_shape) else None
        if cells is not None and total.shape[ax] == state_shape[ax] + 1:
            return np.concatenate([cells, np.take(cells, [0], axis=ax)], axis=ax)
    raise ValueError(
        f"the closure's applied flux of shape {c.shape} does not fit the total flux of shape {total.shape}"
    )


def closure_in_total(total, other, closure, state_shape, *, boundary="periodic", name="flux"):
    """Check that the total face flux is the non-closure part plus the closure's flux.

    Parameters
    ----------
    total : the host's total face flux (the ``flux`` its update used)
    other : the non-closure part, same shape, as the host summed it
    closure : what the host applied of the closure's output (``applied_<name>``):
        the total's shape, or for a periodic domain one face fewer (face n is face 0)
    state_shape : shape of the cells (to place the faces)

    Returns
    -------
    dict
        ``equal`` (bit for bit ``total == other + closure``, one IEEE addition per face,
        which is commutative: the host adds the closure's flux to its other part last),
        ``faces_differing``, ``first_face``, ``max_ulps`` and ``message``.
    """
    total, other = np.asarray(total), np.asarray(other)
    if other.shape != total.shape:
        raise ValueError(f"other_flux has shape {other.shape}, the total flux {total.shape}")
    c = _faces_of(closure, total, tuple(state_shape), boundary).astype(total.dtype)
    with np.errstate(all="ignore"):
        expected = (other.astype(total.dtype) + c).astype(total.dtype)
    same = same_bits(total, expected)
    out = {"array": "flux", "equal": bool(same.all()), "faces": int(total.size)}
    if out["equal"]:
        out["message"] = f"the total flux is other_flux + applied_{name} at every face, bit for bit"
        return out
    flat = ~same.reshape(-1)
    first = int(np.argmax(flat))
    out.update(faces_differing=int(flat.sum()), first_face=first)
    if total.dtype.kind == "f" and np.isfinite(total).all() and np.isfinite(expected).all():
        out["max_ulps"] = int(ulps_between(total.reshape(-1), expected.reshape(-1)).max())
    out["message"] = (
        f"the total flux the update used is not other_flux + applied_{name} at {int(flat.sum())} "
        f"face(s), first face {first}: the closure's flux is not (all) in the update"
    )
    return out


# --- the tendency budget ----------------------------------------------------------------------------------


def _np(a):
    """Array view of a numpy array, scalar or (possibly grad-tracking) torch tensor."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _fractions(values):
    out = []
    for v in _np(values).ravel().tolist():
        if not np.isfinite(v):
            raise ValueError(f"budget check needs finite values, got {v!r}")
        out.append(Fraction(v))
    return out


def _per_cell(dx, shape):
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
    """Rigorous bound on ``|budget_residual|`` caused by rounding in the host's tendencies.

    Each computed tendency is ``t_i = fl(fl(-(F_{i+1} - F_i)) / dx_i)``. With unit
    roundoff ``u`` and underflow constant ``eta`` (:func:`rounding_units`)::

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
    u, eta = (Fraction(v) for v in rounding_units(dtype if dtype is not None else t.dtype))
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
    """Check the tendency budget of a batch of tendencies computed from ``flux``.

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
