"""Every closure of the library, exported with pyclosure.export and run through the C
bridge, returns bit for bit what the module returns in Python, and flux-form outputs
keep the budget closed (exact arithmetic, within the rounding bound of the update)."""

import numpy as np
import pytest
import torch

import pyclosure
from pyclosure.bridge import Model
from pyclosure.fluxes import check_budget, column_tendency_np, periodic_tendency_np
from pyclosure.models import (
    ColumnDownGradientClosure,
    ColumnFluxClosure,
    DownGradientClosure,
    InsulatedColumnFluxClosure,
    PeriodicFluxClosure,
    ResidualClosure,
)
from pyclosure.ood import GuardedClosure, MahalanobisGuard
from pyclosure.uncertainty import DeepEnsemble, SeededSampler, StochasticHead

N, BATCH = 16, 5
f64 = torch.float64


def _cells():
    return torch.randn(BATCH, N, dtype=f64, generator=torch.Generator().manual_seed(7))


def _surface():
    return torch.randn(BATCH, 1, dtype=f64, generator=torch.Generator().manual_seed(8))


def _cases():
    torch.manual_seed(0)
    guard = MahalanobisGuard().fit(torch.randn(400, N, dtype=f64))
    head = StochasticHead().double()
    seeds = torch.arange(BATCH, dtype=torch.int64).reshape(BATCH, 1)
    return {
        "periodic": (PeriodicFluxClosure(dx=0.5).double(), (_cells(),), "periodic"),
        "periodic_lipschitz": (PeriodicFluxClosure(lipschitz=2.0).double(), (_cells(),), "periodic"),
        "column": (ColumnFluxClosure().double(), (_cells(), _surface()), "column"),
        "column_insulated": (InsulatedColumnFluxClosure().double(), (_cells(),), "column"),
        "down_gradient": (DownGradientClosure().double(), (_cells(),), "periodic"),
        "column_down_gradient": (ColumnDownGradientClosure().double(), (_cells(), _surface()), "column"),
        "residual": (ResidualClosure().double(), (_cells(),), "periodic"),
        "stochastic_head": (head, (_cells(),), None),
        "seeded_sampler": (SeededSampler(head), (_cells(), seeds), "periodic"),
        "ensemble": (DeepEnsemble([PeriodicFluxClosure().double() for _ in range(3)]), (_cells(),), None),
        "guarded": (GuardedClosure(PeriodicFluxClosure().double(), guard).double(), (_cells(),), None),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_closure_through_bridge_equals_python_bit_for_bit(tmp_path, name):
    module, inputs, _ = CASES[name]
    path = tmp_path / f"{name}.pt"
    contract = pyclosure.export(module, path, inputs)
    with torch.no_grad():
        eager = module.eval()(*inputs)
        scripted = torch.jit.load(str(path))(*inputs)
    eager = eager if isinstance(eager, tuple) else (eager,)
    scripted = scripted if isinstance(scripted, tuple) else (scripted,)
    bridge = Model(path)
    out = bridge(*[x.numpy() for x in inputs])
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(contract["outputs"]) == len(eager)
    for e, s, b in zip(eager, scripted, out):
        assert np.array_equal(s.numpy(), b), f"{name}: bridge differs from torch.jit.load"
        assert torch.equal(e, s), f"{name}: scripted differs from eager"


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2]))
@pytest.mark.parametrize("scale", [1.0, 1e30, 1e-30])
def test_flux_form_budget_closes_through_bridge(tmp_path, name, scale):
    module, inputs, boundary = CASES[name]
    path = tmp_path / f"{name}.pt"
    pyclosure.export(module, path, inputs)
    bridge = Model(path)
    args = [x.numpy() * scale if x.dtype.is_floating_point and i == 0 else x.numpy() for i, x in enumerate(inputs)]
    args[0] = args[0] * np.where(np.arange(N) % 2, -1.0, 1.0)  # mixed signs
    flux = bridge(*args)
    flux = flux[0] if isinstance(flux, tuple) else flux
    assert np.isfinite(flux).all()
    dx = np.linspace(0.1, 10.1, N)
    tend = periodic_tendency_np(flux, dx) if boundary == "periodic" else column_tendency_np(flux, dx)
    report = check_budget(tend, dx, flux, boundary)
    assert report.closes, f"{name} at scale {scale}: worst residual/bound {report.worst_ratio}"


def test_down_gradient_diffusivity_non_negative_through_bridge_far_outside_training(tmp_path):
    module = DownGradientClosure().double()
    path = tmp_path / "dg.pt"
    pyclosure.export(module, path, (_cells(),))
    bridge = Model(path)
    rng = np.random.default_rng(3)
    for scale in (1.0, 1e3, 1e6):
        u = rng.standard_normal((64, N)) * scale
        flux = bridge(u)
        grad = (u - np.roll(u, 1, axis=1))  # left-face gradient, times dx
        assert np.all(flux * grad <= 0.0), "flux must point down the gradient (K >= 0)"


def test_contract_carries_lipschitz_bound_and_ood_threshold(tmp_path):
    module, inputs, _ = CASES["periodic_lipschitz"]
    c = pyclosure.export(module, tmp_path / "l.pt", inputs)
    assert c["lipschitz_bound"] is not None and c["lipschitz_bound"] > 0
    module, inputs, _ = CASES["guarded"]
    c = pyclosure.export(module, tmp_path / "g.pt", inputs)
    assert c["ood"]["output"] == "ood_score" and np.isfinite(c["ood"]["threshold"])
    assert c["outputs"][0]["meaning"]["kind"] == "flux_at_faces"
