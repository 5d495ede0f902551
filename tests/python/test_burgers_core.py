"""Tests of the Burgers example core (examples/burgers) through its f90wrap module.

They build nothing: they need pyclosure._burgers (built by the pyclosure meson
build) and skip with a reason when it is missing. The torch twin is imported
from pyclosure.demo.twin (the installed package).
"""

import math

import numpy as np
import pytest
import torch

from pyclosure.burgers_core import burgers_core as core  # built with the package (examples/burgers)
from pyclosure.demo import twin

EPS = np.finfo(np.float64).eps


def start(cfg, u0=None):
    """Initialise the Fortran core from a twin config; return the initial state."""
    core.init(cfg.n, cfg.length, cfg.nu, cfg.dt, cfg.seed, cfg.force_amp, cfg.kmin, cfg.kmax, cfg.force_tau)
    assert core.set_closure(cfg.closure, cfg.cs, cfg.scheme) == 0
    if u0 is None:
        x = (np.arange(cfg.n) + 0.5) * cfg.dx
        u0 = np.sin(2 * np.pi * x / cfg.length) + 0.3 * np.cos(6 * np.pi * x / cfg.length)
    core.set_state(u0)
    return np.array(u0, dtype=np.float64)


def test_generator_matches_twin():
    cfg = twin.BurgersConfig(seed=12345)
    start(cfg)
    r = np.zeros(1000)
    core.init(cfg.n, cfg.length, cfg.nu, cfg.dt, cfg.seed, 0.0, 1, 0, 1.0)
    core.rng_fill(r)
    g = twin.Xorshift64(cfg.seed)
    assert np.array_equal(r, [g.uniform() for _ in range(1000)])
    assert 0.0 <= r.min() and r.max() < 1.0 and abs(r.mean() - 0.5) < 0.03


@pytest.mark.parametrize("closure", ["none", "smagorinsky"])
@pytest.mark.parametrize("scheme", ["central", "rusanov"])
def test_twin_reproduces_fortran_bit_for_bit(closure, scheme):
    # Same operations in the same order, IEEE float64, no FMA contraction on
    # either side: the twin is expected to match exactly, not to a tolerance.
    cfg = twin.BurgersConfig(
        n=128, dt=0.04, force_amp=0.3, kmin=0, kmax=3, closure=closure, scheme=scheme, cs=0.3
    )
    u0 = start(cfg)
    core.step(200)
    uf = np.array(core.u)
    forcing = twin.Forcing(cfg)
    ut = twin.run(torch.tensor(u0), 200, cfg, forcing).numpy()
    assert np.abs(uf - ut).max() == 0.0
    assert np.array_equal(np.array(core.frc), forcing.frc.numpy())


@pytest.mark.parametrize("n, dt, closure", [(128, 0.04, "smagorinsky"), (1024, 0.01, "none")])
def test_momentum_changes_only_by_forcing(n, dt, closure):
    # kmin = 0 forces the mean too, so the forcing really changes the momentum.
    cfg = twin.BurgersConfig(n=n, dt=dt, force_amp=0.3, kmin=0, kmax=3, closure=closure)
    u0 = start(cfg)
    m0 = math.fsum(u0) * cfg.dx
    worst = 0.0
    for _ in range(50):
        core.step(20)
        drift = math.fsum(np.array(core.u)) * cfg.dx - m0 - core.mom_forcing
        # each cell update rounds ~5 times per stage, each error below eps
        # times the magnitude of the terms accumulated in mom_scale
        bound = 8.0 * EPS * core.mom_scale
        worst = max(worst, abs(drift) / bound)
    assert abs(core.mom_forcing) > 1e3 * EPS * core.mom_scale  # forcing did act
    assert worst < 1.0


def test_dns_stays_finite_and_bounded():
    cfg = twin.BurgersConfig(n=4096, dt=0.005, force_amp=0.1)
    start(cfg, np.zeros(4096))
    core.step(20000)  # 100 time units
    u = np.array(core.u)
    assert np.all(np.isfinite(u))
    assert 0.05 < u.std() < 5.0
    assert np.abs(u).max() * cfg.dt / cfg.dx < 1.0  # CFL held


def _mean_energy(closure, amp, u0, spinup, nblocks):
    cfg = twin.BurgersConfig(n=128, dt=0.04, force_amp=amp, closure=closure, cs=0.5)
    start(cfg, u0)
    core.step(spinup)
    e = []
    for _ in range(nblocks):
        core.step(25)
        e.append(core.energy())
    return np.mean(e)


def test_smagorinsky_dissipates_energy_relative_to_none():
    # Forced, statistically steady LES (N = 128, 100 time units of spin-up,
    # 100 time units of averaging): measured E_smag/E_none = 0.91 here.
    zero = np.zeros(128)
    e = {c: _mean_energy(c, 0.1, zero, 2500, 100) for c in ["none", "smagorinsky"]}
    assert e["smagorinsky"] < 0.97 * e["none"]
    # Unforced decay of the same sine wave over 50 time units.
    x = (np.arange(128) + 0.5) * (100.0 / 128)
    u0 = 2.0 * np.sin(2 * np.pi * x / 100.0) + np.sin(6 * np.pi * x / 100.0)
    e = {c: _mean_energy(c, 0.0, u0, 1225, 1) for c in ["none", "smagorinsky"]}
    assert e["smagorinsky"] < 0.97 * e["none"]
