"""Every closure of the library, exported with pyclosure.export and run through the C
bridge, returns bit for bit what the module returns in Python, and keeps through the
bridge the promises its contract and its class make: the boundary fluxes the contract's
``meaning`` declares, shift equivariance on a periodic domain, down-gradient fluxes,
reproducible seeded samples. A host update fed by the bridge's flux equals the update fed
by the module's own flux, and its budget closes against the DECLARED boundary fluxes (not
the ones the output happens to carry).

Each check is a function of a bridge-like object; the last test runs every check against
a bridge whose outputs are random numbers and requires each one to fail.
"""

import numpy as np
import pytest
import torch

import pyclosure
from pyclosure.bridge import Model
from pyclosure.budget import budget_bound, budget_residual
from pyclosure.fluxes import column_tendency_np, periodic_tendency_np
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
SCALES = [1.0, 1e30, 1e-30]  # cell values ~1, and far beyond any training range both ways


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
        "periodic": (PeriodicFluxClosure(dx=0.5).double(), (_cells(),)),
        "periodic_lipschitz": (PeriodicFluxClosure(lipschitz=2.0).double(), (_cells(),)),
        "column": (ColumnFluxClosure().double(), (_cells(), _surface())),
        "column_insulated": (InsulatedColumnFluxClosure().double(), (_cells(),)),
        "down_gradient": (DownGradientClosure().double(), (_cells(),)),
        "column_down_gradient": (ColumnDownGradientClosure().double(), (_cells(), _surface())),
        "residual": (ResidualClosure().double(), (_cells(),)),
        "stochastic_head": (head, (_cells(),)),
        "seeded_sampler": (SeededSampler(head), (_cells(), seeds)),
        "ensemble": (DeepEnsemble([PeriodicFluxClosure().double() for _ in range(3)]), (_cells(),)),
        "guarded": (GuardedClosure(PeriodicFluxClosure().double(), guard).double(), (_cells(),)),
    }


CASES = _cases()
# Closures whose only output is a flux at faces: the host updates its state with it.
FLUX_FORM = [
    "column",
    "column_down_gradient",
    "column_insulated",
    "down_gradient",
    "periodic",
    "periodic_lipschitz",
    "residual",
    "seeded_sampler",
]
# A column declares its end fluxes (surface, lid); on a periodic domain every face is
# interior, and what such a closure promises instead is to move with the state.
COLUMN = ["column", "column_down_gradient", "column_insulated"]
SHIFT_EQUIVARIANT = ["down_gradient", "periodic", "periodic_lipschitz", "residual"]
DOWN_GRADIENT = ["column_down_gradient", "down_gradient"]


@pytest.fixture(scope="module")
def bridges(tmp_path_factory):
    """Every case exported once and loaded through the C bridge."""
    d = tmp_path_factory.mktemp("closures")
    out = {}
    for name, (module, inputs) in CASES.items():
        pyclosure.export(module, d / f"{name}.pt", inputs)
        out[name] = Model(d / f"{name}.pt")
    return out


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _scaled_inputs(name, scale):
    """The case's inputs as numpy: cells times ``scale`` with alternating signs, a surface
    flux times ``scale`` (integer seeds as they are)."""
    _, inputs = CASES[name]
    args = [x.numpy() * scale if x.dtype.is_floating_point else x.numpy().copy() for x in inputs]
    args[0] = args[0] * np.where(np.arange(N) % 2, -1.0, 1.0)
    return args


def _module_outputs(name, args):
    module, _ = CASES[name]
    with torch.no_grad():
        return [o.numpy() for o in _outputs(module.eval()(*[torch.from_numpy(a) for a in args]))]


def _declared(bridge):
    """(boundary, surface source, lid) of the first output, from the contract the bridge read."""
    meaning = bridge.contract["outputs"][0]["meaning"]
    assert meaning["kind"] == "flux_at_faces"
    return meaning["boundary"], meaning.get("surface"), meaning.get("lid")


def _declared_boundary_fluxes(bridge, args):
    """(bottom, top) face fluxes per sample, as the contract says the host must see them."""
    boundary, surface, lid = _declared(bridge)
    zeros = np.zeros(BATCH)
    if boundary == "periodic":
        return zeros, zeros
    assert lid == "zero_flux", lid
    if surface == "zero_flux":
        return zeros, zeros
    source = surface.removeprefix("input:")
    return args[bridge.input_names.index(source)].reshape(BATCH), zeros


# ---------------------------------------------------------------- the checks
def check_flux_is_the_modules_own(name, bridge, scale):
    args = _scaled_inputs(name, scale)
    got = _outputs(bridge(*args))
    for g, e in zip(got, _module_outputs(name, args), strict=True):
        assert np.array_equal(g, e), f"{name} at scale {scale}: bridge differs from the module"


def check_declared_boundary_fluxes(name, bridge, scale):
    args = _scaled_inputs(name, scale)
    flux = _outputs(bridge(*args))[0]
    assert _declared(bridge)[0] == "column" and flux.shape == (BATCH, N + 1)
    bottom, top = _declared_boundary_fluxes(bridge, args)
    assert np.array_equal(flux[:, 0], bottom), "surface flux must pass through unchanged"
    assert np.array_equal(flux[:, N], top), "the lid must carry exactly zero flux"


def _host_step(bridge, args, dx, dt):
    """One explicit finite-volume step, as a host writes it: the closure fills the host's
    own face array (a strided view inside a halo'd buffer), the update reads that array."""
    boundary, _, _ = _declared(bridge)
    faces = np.full((BATCH, N + 3), np.nan)  # one halo cell each side, one spare
    flux = faces[:, 1 : N + 1] if boundary == "periodic" else faces[:, 1 : N + 2]
    bridge(*args, out=[flux])
    tend = periodic_tendency_np(flux, dx) if boundary == "periodic" else column_tendency_np(flux, dx)
    return args[0] + dt * tend, tend


def check_host_update_uses_the_closure_flux_and_closes(name, bridge, scale):
    args = _scaled_inputs(name, scale)
    dx, dt = np.linspace(0.1, 10.1, N), 0.25
    u_new, tend = _host_step(bridge, args, dx, dt)
    flux = _module_outputs(name, args)[0]
    boundary, _, _ = _declared(bridge)
    expected = periodic_tendency_np(flux, dx) if boundary == "periodic" else column_tendency_np(flux, dx)
    # The tendency itself, not only the new state: at 1e30 a state absorbs any O(1) increment.
    assert np.array_equal(tend, expected), "the update must use the closure's flux"
    assert np.array_equal(u_new, args[0] + dt * expected)
    bottom, top = _declared_boundary_fluxes(bridge, args)
    for b in range(BATCH):
        residual = budget_residual(tend[b], dx, bottom[b], top[b])
        assert abs(residual) <= budget_bound(tend[b], dx), (name, scale, b, float(residual))


def check_shift_equivariance(name, bridge, scale):
    args = _scaled_inputs(name, scale)
    flux = _outputs(bridge(*args))[0]
    for shift in (1, 5):
        moved = _outputs(bridge(np.roll(args[0], shift, axis=1), *args[1:]))[0]
        # Each face applies the same function to the same stencil values. Not bit for bit
        # through torch: its conv kernels sum in an order that depends on the position in
        # the row on some CPUs (AVX2 here: 1 ulp at scattered faces). So: within 64 ulps of
        # the row's largest flux, where a closure that is not local fails by far.
        want = np.roll(flux, shift, axis=1)
        bound = 64 * np.finfo(flux.dtype).eps * np.abs(flux).max(axis=1, keepdims=True)
        assert np.all(np.abs(moved - want) <= bound), (name, scale, shift, float(np.abs(moved - want).max()))


def check_down_gradient(name, bridge, scale):
    args = _scaled_inputs(name, scale)
    flux = _outputs(bridge(*args))[0]
    u = args[0]
    if name == "down_gradient":
        jump, inner = u - np.roll(u, 1, axis=1), flux
    else:
        jump, inner = u[:, 1:] - u[:, :-1], flux[:, 1:N]
    assert np.all(inner * jump <= 0.0), "flux must point down the gradient (K >= 0)"
    assert np.any(inner != 0.0)


def check_residual_is_classical(name, bridge, scale):
    # An untrained ResidualClosure is exactly -(cs dx)^2 |g| g - kappa g, g = (u_i - u_{i-1})/dx:
    # its correction's last layer is zero. Same operations, same order as the module.
    module, _ = CASES[name]
    args = _scaled_inputs(name, scale)
    dx, cs, kappa = module.dx, float(module.cs), max(float(module.kappa), 0.0)
    u = args[0]
    g = (u - np.roll(u, 1, axis=1)) / dx
    classical = -((cs * dx) ** 2 * np.abs(g) + kappa) * g
    assert np.array_equal(_outputs(bridge(*args))[0], classical + 0.0)


def check_seeded_sampling(name, bridge, scale):
    x, seeds = _scaled_inputs(name, scale)
    first = _outputs(bridge(x, seeds))[0]
    assert np.array_equal(_outputs(bridge(x, seeds.copy()))[0], first), "same seed, same draw"
    other = _outputs(bridge(x, seeds + 1000))[0]
    assert np.all(other != first), "another seed must give another draw"


CHECKS = {
    "flux_is_the_modules_own": (check_flux_is_the_modules_own, FLUX_FORM),
    "declared_boundary_fluxes": (check_declared_boundary_fluxes, COLUMN),
    "host_update_uses_the_closure_flux_and_closes": (
        check_host_update_uses_the_closure_flux_and_closes,
        FLUX_FORM,
    ),
    "shift_equivariance": (check_shift_equivariance, SHIFT_EQUIVARIANT),
    "down_gradient": (check_down_gradient, DOWN_GRADIENT),
    "residual_is_classical": (check_residual_is_classical, ["residual"]),
    "seeded_sampling": (check_seeded_sampling, ["seeded_sampler"]),
}


def _pairs(check):
    return [(name, scale) for name in CHECKS[check][1] for scale in SCALES]


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_closure_through_bridge_equals_python_bit_for_bit(tmp_path, name):
    module, inputs = CASES[name]
    path = tmp_path / f"{name}.pt"
    contract = pyclosure.export(module, path, inputs)
    with torch.no_grad():
        eager = _outputs(module.eval()(*inputs))
        scripted = _outputs(torch.jit.load(str(path))(*inputs))
    out = _outputs(Model(path)(*[x.numpy() for x in inputs]))
    assert len(out) == len(contract["outputs"]) == len(eager)
    for e, s, b in zip(eager, scripted, out, strict=True):
        assert np.array_equal(s.numpy(), b), f"{name}: bridge differs from torch.jit.load"
        assert torch.equal(e, s), f"{name}: scripted differs from eager"


@pytest.mark.parametrize(("name", "scale"), _pairs("flux_is_the_modules_own"))
def test_bridge_flux_is_the_modules_own_flux_far_outside_training(bridges, name, scale):
    check_flux_is_the_modules_own(name, bridges[name], scale)


@pytest.mark.parametrize(("name", "scale"), _pairs("declared_boundary_fluxes"))
def test_column_flux_keeps_the_surface_and_lid_fluxes_its_contract_declares(bridges, name, scale):
    check_declared_boundary_fluxes(name, bridges[name], scale)


@pytest.mark.parametrize(("name", "scale"), _pairs("host_update_uses_the_closure_flux_and_closes"))
def test_host_update_uses_the_closure_flux_and_budget_closes_against_declared_boundaries(
    bridges, name, scale
):
    check_host_update_uses_the_closure_flux_and_closes(name, bridges[name], scale)


@pytest.mark.parametrize(("name", "scale"), _pairs("shift_equivariance"))
def test_periodic_closure_commutes_with_circular_shifts_through_bridge(bridges, name, scale):
    check_shift_equivariance(name, bridges[name], scale)


@pytest.mark.parametrize(("name", "scale"), _pairs("down_gradient"))
def test_down_gradient_flux_points_down_the_gradient_through_bridge(bridges, name, scale):
    check_down_gradient(name, bridges[name], scale)


@pytest.mark.parametrize("scale", SCALES)
def test_untrained_residual_closure_is_exactly_the_classical_flux_through_bridge(bridges, scale):
    check_residual_is_classical("residual", bridges["residual"], scale)


@pytest.mark.parametrize("scale", SCALES)
def test_seeded_sample_repeats_for_its_seed_and_changes_with_the_seed(bridges, scale):
    check_seeded_sampling("seeded_sampler", bridges["seeded_sampler"], scale)


def test_down_gradient_diffusivity_non_negative_through_bridge_far_outside_training(bridges):
    bridge = bridges["down_gradient"]
    rng = np.random.default_rng(3)
    for scale in (1.0, 1e3, 1e6):
        u = rng.standard_normal((64, N)) * scale
        flux = bridge(u)
        grad = u - np.roll(u, 1, axis=1)  # left-face gradient, times dx
        assert np.all(flux * grad <= 0.0), "flux must point down the gradient (K >= 0)"


def test_contract_carries_lipschitz_bound_and_ood_threshold(tmp_path):
    module, inputs = CASES["periodic_lipschitz"]
    c = pyclosure.export(module, tmp_path / "l.pt", inputs)
    assert c["lipschitz_bound"] == module.lipschitz_bound() > 0
    module, inputs = CASES["guarded"]
    c = pyclosure.export(module, tmp_path / "g.pt", inputs)
    assert c["ood"]["output"] == "ood_score" and np.isfinite(c["ood"]["threshold"])
    assert c["outputs"][0]["meaning"]["kind"] == "flux_at_faces"


class RandomOutputs:
    """A bridge whose outputs are replaced by random numbers of the right shape and dtype
    (the same contract, so the checks read the same declared boundaries)."""

    def __init__(self, bridge, seed):
        self.bridge, self.contract, self.input_names = bridge, bridge.contract, bridge.input_names
        self.rng = np.random.default_rng(seed)

    def __call__(self, *args, out=None):
        outs = list(out) if out is not None else [o.copy() for o in _outputs(self.bridge(*args))]
        for o in outs:
            o[...] = self.rng.standard_normal(o.shape)
        return out if out is not None else (outs[0] if len(outs) == 1 else tuple(outs))


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_every_check_fails_on_a_bridge_that_returns_random_numbers(bridges, check):
    fn, _ = CHECKS[check]
    passed = []
    for seed, (name, scale) in enumerate(_pairs(check)):
        try:
            fn(name, RandomOutputs(bridges[name], seed), scale)
        except AssertionError:
            continue
        passed.append((name, scale))
    assert passed == [], f"{check} accepts random outputs for {passed}"
