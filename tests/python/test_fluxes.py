"""Budget closure of flux-form closures, checked in exact arithmetic."""

import numpy as np
import pytest
import torch
from conftest import roundtrip

from pyclosure.budget import budget_bound, budget_residual, check_budget
from pyclosure.fluxes import (
    column_tendency,
    column_tendency_np,
    periodic_tendency,
    periodic_tendency_np,
)
from pyclosure.models import ColumnFluxClosure, PeriodicFluxClosure
from pyclosure.normalize import Normalizer

DTYPES = [torch.float32, torch.float64]


def adversarial(shape, dtype, seed=0):
    """Values of magnitude 1e30 and 1e-30 with mixed signs, interleaved at random."""
    g = torch.Generator().manual_seed(seed)
    mag = torch.where(torch.rand(shape, generator=g) < 0.5, 1e30, 1e-30)
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return (mag * sign * (1 + torch.rand(shape, generator=g))).to(dtype)


def cell_widths(n, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (0.1 + 10 * torch.rand(n, generator=g)).to(dtype)


def test_periodic_tendency_is_minus_flux_difference_over_dx():
    flux = torch.tensor([[1.0, 3.0, 7.0]], dtype=torch.float64)
    dx = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    expected = torch.tensor([[-(3 - 1) / 1, -(7 - 3) / 2, -(1 - 7) / 4]], dtype=torch.float64)
    assert torch.equal(periodic_tendency(flux, dx), expected)


def test_column_tendency_uses_n_plus_one_faces():
    flux = torch.tensor([[2.0, 1.0, 0.0]])
    assert torch.equal(column_tendency(flux, torch.tensor(0.5)), torch.tensor([[2.0, 2.0]]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_and_torch_tendencies_agree_bit_for_bit(dtype):
    flux, dx = adversarial((4, 33), dtype), cell_widths(33, dtype)
    assert np.array_equal(periodic_tendency(flux, dx).numpy(), periodic_tendency_np(flux, dx))
    t_col = column_tendency(flux, dx[:32]).numpy()
    assert np.array_equal(t_col, column_tendency_np(flux.numpy(), dx[:32].numpy()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adversarial_periodic_fluxes_close_budget_within_rounding_bound(dtype):
    flux, dx = adversarial((8, 64), dtype), cell_widths(64, dtype)
    tend = periodic_tendency(flux, dx)
    report = check_budget(tend.numpy(), dx.numpy(), flux.numpy(), "periodic")
    assert report.closes, report.worst_ratio


@pytest.mark.parametrize("dtype", DTYPES)
def test_adversarial_column_fluxes_close_budget_within_rounding_bound(dtype):
    flux, dx = adversarial((8, 65), dtype, seed=3), cell_widths(64, dtype)
    tend = column_tendency(flux, dx)
    report = check_budget(tend.numpy(), dx.numpy(), flux.numpy(), "column")
    assert report.closes, report.worst_ratio


def test_budget_check_detects_a_non_conservative_update():
    flux, dx = adversarial((1, 16), torch.float32), cell_widths(16, torch.float32)
    tend = periodic_tendency(flux, dx).numpy().copy()
    i = int(np.argmax(np.abs(tend)))
    tend[0, i] *= np.float32(1 + 1e-4)  # one cell gains mass from nowhere
    assert not check_budget(tend, dx.numpy(), flux.numpy(), "periodic").closes


def test_bound_is_a_few_ulps_of_the_total_not_vacuous():
    t = np.full(10, 1.0, dtype=np.float32)
    bound = budget_bound(t, 1.0)
    u = 2.0**-24
    assert 10 * 2 * u <= float(bound) <= 10 * 2.01 * u
    assert budget_residual(t, 1.0, 10.0, 0.0) == 0


def test_budget_rejects_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        budget_residual(np.array([np.inf]), 1.0)


def _closure_inputs(dtype, n):
    g = torch.Generator().manual_seed(7)
    return [torch.randn(6, n, generator=g).to(dtype), adversarial((6, n), dtype, seed=11)]


def _closes_against(tend, dx, bottom, top):
    """Budget of each sample against boundary fluxes given by the caller (the declared
    ones), never read back from the closure's output."""
    return all(
        abs(budget_residual(t, dx, b, f)) <= budget_bound(t, dx)
        for t, b, f in zip(tend, bottom, top, strict=True)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_std", [1.0, 1e30, 1e-30])
def test_scripted_periodic_closure_is_local_shift_equivariant_and_feeds_a_closed_update(
    tmp_path, dtype, out_std
):
    # Any flux closes a periodic budget (the differences telescope); what a learned
    # periodic closure adds, and a wrong output would break, is that the face flux is the
    # module's, is a function of its stencil alone, and moves with the state.
    module = PeriodicFluxClosure(
        stencil=4, hidden=8, output_normalizer=Normalizer(torch.zeros(1), torch.tensor([out_std]))
    )
    module = module.to(dtype)
    loaded = roundtrip(module, tmp_path)
    dx = cell_widths(40, dtype)
    for x in _closure_inputs(dtype, 40):
        with torch.no_grad():
            flux = loaded(x)
            assert torch.equal(flux, module(x))
            # The face flux moves with the state; within 64 ulps of the row's largest flux, as
            # torch's conv sums in a position-dependent order on some CPUs (1 ulp seen on AVX2).
            moved, want = loaded(torch.roll(x, 7, -1)), torch.roll(flux, 7, -1)
            bound = 64 * torch.finfo(dtype).eps * flux.abs().amax(-1, keepdim=True)
            assert bool(((moved - want).abs() <= bound).all())
            bumped = x.clone()
            bumped[:, 20] = 2 * bumped[:, 20] + 1
            changed = (loaded(bumped) != flux).any(0).nonzero().flatten().tolist()
        assert set(changed) <= {19, 20, 21, 22}, changed  # faces whose stencil holds cell 20
        tend = periodic_tendency(flux, dx)
        assert torch.equal(tend, periodic_tendency(module(x).detach(), dx))
        zeros = [0.0] * len(x)
        assert _closes_against(tend.numpy(), dx.numpy(), zeros, zeros)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_std", [1.0, 1e30, 1e-30])
def test_scripted_column_closure_conserves_with_surface_flux_and_zero_lid(tmp_path, dtype, out_std):
    module = ColumnFluxClosure(
        stencil=4, hidden=8, output_normalizer=Normalizer(torch.zeros(1), torch.tensor([out_std]))
    )
    module = module.to(dtype)
    loaded = roundtrip(module, tmp_path)
    dx = cell_widths(30, dtype)
    for x in _closure_inputs(dtype, 30):
        surface = adversarial((6,), dtype, seed=5)
        with torch.no_grad():
            flux = loaded(x, surface)
        assert torch.equal(flux, module(x, surface))
        assert torch.equal(flux[:, 0], surface) and bool((flux[:, -1] == 0).all())
        # The budget is taken against the surface flux the host passed in and a zero lid,
        # not against the ends of the output (which would telescope for any output).
        tend = column_tendency(flux, dx).numpy()
        assert _closes_against(tend, dx.numpy(), surface.tolist(), [0.0] * len(x))
