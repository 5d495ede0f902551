"""The certified Lipschitz bound is a true upper bound, and constrained layers keep it."""

import pytest
import torch
from torch.autograd.functional import jacobian

from pyclosure.lipschitz import LipschitzConv1d, LipschitzLinear, certified_bound
from pyclosure.models import (
    ColumnFluxClosure,
    InsulatedColumnFluxClosure,
    PeriodicFluxClosure,
    mlp,
)
from pyclosure.normalize import Normalizer

N = 12


def _grow_weights(module, steps=30):
    """A few optimiser steps that inflate weights, so a Lipschitz cap must act."""
    opt = torch.optim.Adam(module.parameters(), lr=0.05)  # bounded steps: finite weights
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(8, N, dtype=torch.float64)
        y = module(x) if not isinstance(module, ColumnFluxClosure) else module(x, x[:, 0])
        (-(y.diff(dim=-1) ** 2).mean()).backward()  # reward steep outputs
        opt.step()
    return module


def _max_jacobian_norm(fn, n_in, samples):
    """Largest spectral norm of the per-sample Jacobian over the given inputs."""
    worst = 0.0
    for x in samples:
        jac = jacobian(fn, x.reshape(n_in)).reshape(-1, n_in)
        worst = max(worst, float(torch.linalg.matrix_norm(jac, ord=2)))
    return worst


def _samples(n_in, scale_sets=(0.1, 1.0, 10.0)):
    g = torch.Generator().manual_seed(0)
    return [s * torch.randn(n_in, generator=g, dtype=torch.float64)
            for s in scale_sets for _ in range(8)]


def _periodic(**kw):
    norm_in = Normalizer(torch.tensor([0.5]), torch.tensor([0.3]))
    norm_out = Normalizer(torch.tensor([0.0]), torch.tensor([2.0]))
    return PeriodicFluxClosure(hidden=16, input_normalizer=norm_in,
                               output_normalizer=norm_out, **kw).double()


CASES = {
    "periodic": lambda: _periodic(),
    "periodic_relu_wide_stencil": lambda: _periodic(stencil=8, act="relu"),
    "periodic_constrained": lambda: _grow_weights(_periodic(lipschitz=1.5)),
    "periodic_silu_trained": lambda: _grow_weights(_periodic(act="silu")),
    "column_replicate": lambda: _grow_weights(ColumnFluxClosure(stencil=6, hidden=16).double()),
    "column_zeros": lambda: ColumnFluxClosure(stencil=4, hidden=16, padding="zeros").double(),
    "column_mlp_constrained": lambda: _grow_weights(
        ColumnFluxClosure(N, variant="mlp", hidden=16, lipschitz=2.0).double()),
    "insulated_column": lambda: InsulatedColumnFluxClosure(hidden=16, act="gelu").double(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_certified_bound_is_at_least_the_measured_jacobian_norm(name):
    torch.manual_seed(0)
    module = CASES[name]()
    if isinstance(module, ColumnFluxClosure) and not isinstance(
            module, InsulatedColumnFluxClosure):
        n_in = N + 1

        def fn(v):
            return module(v[:N].unsqueeze(0), v[N:].unsqueeze(0))
    else:
        n_in = N

        def fn(v):
            return module(v.unsqueeze(0))
    measured = _max_jacobian_norm(fn, n_in, _samples(n_in))
    bound = certified_bound(module)
    assert bound >= measured, (bound, measured)
    assert bound < 1e4 * max(measured, 1e-3)  # finite and not absurdly loose


@pytest.mark.parametrize("target", [0.5, 1.0, 3.0])
def test_lipschitz_network_keeps_certified_bound_below_target_after_training(target):
    torch.manual_seed(1)
    net = mlp(N, N, hidden=32, depth=3, act="silu", lipschitz=target).double()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(40):
        opt.zero_grad()
        x = torch.randn(16, N, dtype=torch.float64)
        (-(net(x) - net(x + 1e-2)).pow(2).mean()).backward()
        opt.step()
    assert certified_bound(net) <= target * (1 + 1e-9)


def test_conv_bound_holds_on_longer_periodic_domains():
    torch.manual_seed(2)
    module = _grow_weights(_periodic(stencil=4))
    bound = certified_bound(module)
    for n in (4, 7, 32):
        x = torch.randn(n, dtype=torch.float64)
        jac = jacobian(lambda v: module(v.unsqueeze(0)), x).reshape(n, n)
        assert bound >= float(torch.linalg.matrix_norm(jac, ord=2))


def test_lipschitz_layers_are_deterministic_and_scriptable():
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for layer, x in [(LipschitzLinear(5, 3, 0.7), torch.randn(4, 5)),
                         (LipschitzConv1d(2, 3, 3, 0.7), torch.randn(4, 2, 9))]:
            scripted = torch.jit.script(layer)
            assert torch.equal(scripted(x), layer(x)) and torch.equal(layer(x), layer(x))
