"""Flux-form closures: scriptability, shapes, boundary conditions and constraints."""

import pytest
import torch
from conftest import roundtrip

from pyclosure.models import (
    ColumnDownGradientClosure,
    ColumnFluxClosure,
    DownGradientClosure,
    InsulatedColumnFluxClosure,
    NonNegative,
    PeriodicFluxClosure,
    ResidualClosure,
)
from pyclosure.normalize import Normalizer


def _cases():
    x = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    s = torch.randn(5, 1)
    return [
        (PeriodicFluxClosure(hidden=8), (x,)),
        (PeriodicFluxClosure(in_channels=2, stencil=6, hidden=8), (torch.stack([x, x**2], 1),)),
        (PeriodicFluxClosure(hidden=8, lipschitz=1.0, act="relu"), (x,)),
        (ColumnFluxClosure(hidden=8), (x, s)),
        (ColumnFluxClosure(hidden=8, padding="zeros", stencil=2), (x, s[:, 0])),
        (ColumnFluxClosure(24, variant="mlp", hidden=8), (x, s)),
        (InsulatedColumnFluxClosure(hidden=8), (x,)),
        (DownGradientClosure(hidden=8, dx=0.5), (x,)),
        (ColumnDownGradientClosure(hidden=8), (x, s)),
        (ResidualClosure(dx=0.5, kappa=0.1), (x,)),
        (NonNegative(PeriodicFluxClosure(hidden=8)), (x,)),
    ]


@pytest.mark.parametrize("case", range(len(_cases())))
def test_scripted_and_reloaded_closure_equals_eager_bit_for_bit(tmp_path, case):
    module, args = _cases()[case]
    loaded = roundtrip(module, tmp_path)
    assert torch.equal(loaded(*args), module(*args))


@pytest.mark.parametrize("case", range(len(_cases())))
def test_closure_contract_names_inputs_outputs_and_flux_meaning(case):
    module, args = _cases()[case]
    contract = module.pyclosure_contract()
    assert len(contract["input_names"]) == len(args)
    out = contract["output_names"][0]
    meaning = contract.get("meaning", {}).get(out)
    if meaning is not None:
        assert meaning["kind"] == "flux_at_faces"
        assert meaning["boundary"] in ("periodic", "column")


def test_one_stencil_closure_runs_on_any_number_of_cells():
    module = PeriodicFluxClosure(hidden=8)
    for n in (3, 16, 101):
        assert module(torch.randn(2, n)).shape == (2, n)
    column = ColumnFluxClosure(hidden=8)
    for n in (2, 9, 50):
        assert column(torch.randn(2, n), torch.randn(2)).shape == (2, n + 1)


def test_periodic_closure_is_shift_equivariant():
    module, x = PeriodicFluxClosure(hidden=8), torch.randn(3, 20, dtype=torch.float64)
    module = module.double()
    assert torch.allclose(module(torch.roll(x, 5, -1)), torch.roll(module(x), 5, -1))


def test_face_flux_depends_only_on_its_stencil_cells():
    module, x = PeriodicFluxClosure(stencil=4, hidden=8), torch.zeros(1, 12, requires_grad=True)
    module(x)[0, 6].backward()
    touched = torch.nonzero(x.grad[0]).flatten().tolist()
    assert set(touched) <= {4, 5, 6, 7}  # face 6 sits between cells 5 and 6


def test_column_closure_passes_surface_flux_and_zeroes_lid():
    module = ColumnFluxClosure(hidden=8)
    x, s = 1e6 * torch.randn(4, 10), torch.tensor([1.0, -2.0, 3.5, 0.0])
    flux = module(x, s)
    assert torch.equal(flux[:, 0], s) and torch.equal(flux[:, -1], torch.zeros(4))


def test_column_interior_face_sees_stencil_cells_only():
    module = ColumnFluxClosure(stencil=4, hidden=8, padding="zeros")
    x = torch.zeros(1, 10, requires_grad=True)
    module(x, torch.zeros(1))[0, 5].backward()  # face 5: between cells 4 and 5
    assert set(torch.nonzero(x.grad[0]).flatten().tolist()) <= {3, 4, 5, 6}


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_diffusivity_is_non_negative_even_far_outside_training(scale):
    g = torch.Generator().manual_seed(1)
    periodic = DownGradientClosure(hidden=16, act="relu")
    column = ColumnDownGradientClosure(hidden=16)
    with torch.no_grad():
        for _ in range(20):
            x = scale * torch.randn(16, 32, generator=g)
            assert bool((periodic.diffusivity(x) >= 0).all())
            assert bool((column.diffusivity(x) >= 0).all())


def test_down_gradient_flux_never_points_up_gradient():
    module = DownGradientClosure(hidden=8, dx=0.1)
    x = 1e6 * torch.randn(8, 32)
    grad = (x - torch.roll(x, 1, -1)) / 0.1
    assert bool((module(x) * grad <= 0).all())


def test_non_negative_wrapper_output_is_non_negative():
    module = NonNegative(PeriodicFluxClosure(hidden=8), mode="relu")
    assert bool((module(1e6 * torch.randn(4, 16)) >= 0).all())


def test_untrained_residual_closure_equals_smagorinsky_plus_diffusion():
    dx, cs, kappa = 0.5, 0.25, 0.125  # exactly representable in float32 parameters
    module = ResidualClosure(dx=dx, cs=cs, kappa=kappa).double()
    u = torch.randn(3, 16, dtype=torch.float64)
    grad = (u - torch.roll(u, 1, -1)) / dx
    expected = -((cs * dx) ** 2 * grad.abs() + kappa) * grad
    assert torch.allclose(module(u), expected, rtol=1e-12, atol=0)


def test_normalizer_round_trips_and_is_baked_into_closure(tmp_path):
    data = 5 + 3 * torch.randn(200, 2, 16)
    norm = Normalizer.fit(data, per="channel")
    assert norm.mean.shape == (2, 1)
    z = norm(data)
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-2
    assert torch.allclose(norm.inverse(z), data, atol=1e-5)
    module = PeriodicFluxClosure(in_channels=2, hidden=8, input_normalizer=norm)
    assert torch.equal(roundtrip(module, tmp_path)(data[:3]), module(data[:3]))
