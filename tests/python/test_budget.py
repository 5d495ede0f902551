"""The update and domain budgets of `pyclosure.budget`, on hand-made updates.

Every test plants the error its check exists for and shows it caught, next to
the correct update that passes: bounded mode (a cell beyond its rounding bound,
a bias of one sign within every cell's bound), the source term, non-periodic
columns with boundary fluxes, periodic end faces, and the tie of the closure's
flux to the total flux.
"""

from fractions import Fraction

import numpy as np
import pytest

from pyclosure.budget import closure_in_total, update_budget

DT, DX = 0.1, 0.5


def _update(b, f, dt=DT, dx=DX, s=None):
    """The update in the written order, as a host computes it (no FMA)."""
    u = b - dt * (f[..., 1:] - f[..., :-1]) / dx
    return u if s is None else u + dt * s


def _correctly_rounded(b, f, dt=DT, dx=DX, s=None):
    """Each cell's exact update rounded once: a legitimate evaluation in another order (error <= u|after|)."""
    out = np.empty_like(b)
    for k in np.ndindex(b.shape):
        i = k[-1]
        q = Fraction(dt) * (Fraction(f[k[:-1] + (i + 1,)]) - Fraction(f[k])) / Fraction(dx)
        out[k] = float(Fraction(b[k]) - q + (0 if s is None else Fraction(dt) * Fraction(s[k])))
    return out


def _data(n, seed=0, cols=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if cols is None else (cols, n)
    before = 1.0 + rng.random(shape)
    flux = 0.01 * rng.standard_normal(shape[:-1] + (n + 1,))
    return before, flux


# --- bounded mode -----------------------------------------------------------------------------------


def test_bounded_mode_accepts_another_evaluation_order_that_exact_mode_rejects():
    before, flux = _data(200, seed=1)
    flux *= 300  # flux differences of the size of the state: the roundings of q matter
    flux[-1] = flux[0]
    after = _correctly_rounded(before, flux)
    assert not np.array_equal(after, _update(before, flux))  # some cells differ from the written order
    bounded = update_budget(before, after, flux, DT, DX, mode="bounded")
    assert bounded.closes and bounded.cells_within_bound == 200 and bounded.domain_closes, bounded.message
    exact = update_budget(before, after, flux, DT, DX, mode="exact")
    assert not exact.closes and exact.cells_exact < 200 and "differs from the update by" in exact.message


def test_bounded_mode_catches_a_cell_beyond_its_rounding_bound():
    before, flux = _data(50, seed=2)
    flux[-1] = flux[0]
    after = _update(before, flux)
    for _ in range(8):  # 8 ulps: beyond a bound of a few ulps
        after[17] = np.nextafter(after[17], np.inf)
    check = update_budget(before, after, flux, DT, DX, mode="bounded")
    assert not check.closes and check.cells_within_bound == 49 and check.worst_cell == 17
    assert "cell 17" in check.message and "exceeds its rounding bound" in check.message


def test_domain_check_catches_a_bias_of_one_sign_within_every_cell_bound():
    n = 4096
    before, flux = _data(n, seed=3)
    flux[-1] = flux[0]
    # A legitimate host of another evaluation order: no false alarm.
    honest = update_budget(before, _correctly_rounded(before, flux), flux, DT, DX, mode="bounded")
    assert honest.closes and honest.domain_departure <= honest.domain_bound, honest.message
    # One ulp up in every cell: each cell within its bound (so a domain bound that is the sum of
    # the cell bounds, as before, could never fail), but the domain gains n ulps of mass.
    biased = np.nextafter(_update(before, flux), np.inf)
    check = update_budget(before, biased, flux, DT, DX, mode="bounded")
    assert check.cells_within_bound == n, "the planted bias must stay within every cell's bound"
    assert not check.closes and not check.domain_closes
    assert check.domain_departure > check.domain_bound and "domain total departs" in check.message


def test_exact_mode_domain_departure_is_zero_when_cells_are_exact():
    before, flux = _data(64, seed=4)
    flux[-1] = flux[0]
    check = update_budget(before, _update(before, flux), flux, DT, DX)
    assert check.closes and check.domain_departure == 0 and check.end_faces_equal is True
    assert check.domain_residual > 0  # the written order's own rounding, reported


# --- source term ------------------------------------------------------------------------------------


def test_source_term_is_part_of_the_update_and_a_forgotten_source_is_caught():
    before, flux = _data(40, seed=5)
    flux[-1] = flux[0]
    source = np.random.default_rng(6).standard_normal(40)
    after = _update(before, flux, s=source)
    for mode in ("exact", "bounded"):
        assert update_budget(before, after, flux, DT, DX, source, mode=mode).closes
        # the host recorded its source but did not apply it
        forgot = update_budget(before, _update(before, flux), flux, DT, DX, source, mode=mode)
        assert not forgot.closes and forgot.cells_within_bound < 40, mode
    # ... or applied it without recording it
    assert not update_budget(before, after, flux, DT, DX, None).closes


def test_one_ulp_in_one_source_value_is_caught_in_exact_mode():
    before, flux = _data(40, seed=7)
    flux[-1] = flux[0]
    source = np.random.default_rng(8).standard_normal(40)
    after = _update(before, flux, s=source)
    moved = [
        i
        for i in range(40)
        if _update(before, flux, s=np.where(np.arange(40) == i, np.nextafter(source, np.inf), source))[i]
        != after[i]
    ]
    assert moved, "no cell's update moves with one ulp of its source"
    i = moved[0]
    planted = source.copy()
    planted[i] = np.nextafter(planted[i], np.inf)
    check = update_budget(before, after, flux, DT, DX, planted)
    assert not check.closes and check.worst_cell == i and f"cell {i}" in check.message


# --- non-periodic boundaries: columns with boundary fluxes ---------------------------------------------


def test_columns_with_boundary_fluxes_close_and_the_boundary_flux_counts():
    before, flux = _data(30, seed=9, cols=5)  # 5 columns of 30 levels, 31 faces each; ends differ
    assert not np.array_equal(flux[:, 0], flux[:, -1])
    after = _update(before, flux)
    for mode in ("exact", "bounded"):
        check = update_budget(before, after, flux, DT, DX, boundary="closed", mode=mode)
        assert check.closes and check.cells == 150 and check.end_faces_equal is None, check.message
    # one column's bottom boundary flux changed after the update: the update did not use it
    planted = flux.copy()
    planted[3, -1] *= 1.5
    check = update_budget(before, after, planted, DT, DX, boundary="closed")
    assert not check.closes and check.worst_cell == 3 * 30 + 29 and f"cell {3 * 30 + 29}" in check.message
    assert not update_budget(before, after, planted, DT, DX, boundary="closed", mode="bounded").closes


def test_a_column_updated_as_if_periodic_is_caught():
    before, flux = _data(30, seed=10, cols=4)
    wrapped = flux.copy()
    wrapped[:, -1] = wrapped[:, 0]  # the host's update ignored its bottom boundary flux
    after = _update(before, wrapped)
    check = update_budget(before, after, flux, DT, DX, boundary="closed")
    assert not check.closes and check.cells_exact == 4 * 29  # the last level of every column
    # the cell axis need not be last: levels first, columns second
    check_t = update_budget(before.T, after.T, flux.T, DT, DX, boundary="closed")
    assert not check_t.closes and check_t.cells_exact == 4 * 29
    assert update_budget(before.T, _update(before, flux).T, flux.T, DT, DX, boundary="closed").closes


def test_a_non_periodic_domain_needs_its_boundary_faces():
    before, flux = _data(10, seed=11)
    with pytest.raises(ValueError, match="needs its boundary faces"):
        update_budget(before, before, flux[:-1], DT, DX, boundary="closed")


def test_periodic_domain_whose_last_face_is_not_the_first_leaks():
    before, flux = _data(32, seed=12)
    assert flux[-1] != flux[0]
    check = update_budget(before, _update(before, flux), flux, DT, DX, boundary="periodic")
    assert check.cells_exact == 32 and check.end_faces_equal is False and not check.closes
    assert "flux leaves the domain" in check.message
    flux[-1] = flux[0]
    assert update_budget(before, _update(before, flux), flux, DT, DX, boundary="periodic").closes


# --- the closure's flux in the total -------------------------------------------------------------------


def test_total_flux_must_be_other_part_plus_closure_flux_bit_for_bit():
    rng = np.random.default_rng(13)
    n = 16
    other = rng.standard_normal(n + 1)
    other[-1] = other[0]
    closure = 0.01 * rng.standard_normal(n)  # left faces, periodic: face n is face 0
    total = other + np.append(closure, closure[0])
    ok = closure_in_total(total, other, closure, (n,))
    assert ok["equal"], ok
    assert closure_in_total(total, other, closure[None, :], (n,))["equal"]  # (1, n) as the model returns it
    dropped = closure_in_total(other.copy(), other, closure, (n,))  # update without the closure's flux
    assert not dropped["equal"] and dropped["faces_differing"] == n + 1
    assert "not (all) in the update" in dropped["message"]
    one = total.copy()
    one[5] = np.nextafter(one[5], np.inf)
    bad = closure_in_total(one, other, closure, (n,))
    assert not bad["equal"] and bad["first_face"] == 5 and bad["max_ulps"] == 1
    with pytest.raises(ValueError, match="does not fit"):
        closure_in_total(total, other, closure[:-1], (n,))
