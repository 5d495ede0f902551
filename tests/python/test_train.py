"""A priori and a posteriori training recover known answers on a toy advection-diffusion."""

import json
import math

import pytest
import torch

from pyclosure.fluxes import periodic_tendency
from pyclosure.models import DownGradientClosure
from pyclosure.train import fit, fit_a_posteriori, load_checkpoint, unroll

N, C, NU = 32, 1.0, 0.1
DX = 2 * math.pi / N
DT = 0.5 * DX / C  # CFL 0.5
# First-order upwind adds numerical diffusion C*DX/2*(1 - CFL); the best closure for the
# coarse solver therefore has K = NU - C*DX/4 = 0.0509, not the a priori NU = 0.1.
K_BEST = NU - C * DX / 4


def exact_trajectories(n, steps, seed):
    """Exact solutions of u_t + C u_x = NU u_xx from 4 random Fourier modes, (n, steps, N)."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(1, 5, dtype=torch.float64)
    a = torch.randn(n, 4, generator=g, dtype=torch.float64) / k
    phase = 2 * math.pi * torch.rand(n, 4, generator=g, dtype=torch.float64)
    x = torch.arange(N, dtype=torch.float64) * DX
    t = torch.arange(steps, dtype=torch.float64) * DT
    decay = torch.exp(-NU * k[None, :] ** 2 * t[:, None])
    arg = k[None, None, :, None] * (x - C * t[:, None, None])[None] + phase[:, None, :, None]
    return (a[:, None, :, None] * decay[None, :, :, None] * torch.cos(arg)).sum(2).float()


def coarse_step(u, closure):
    """Forward Euler, upwind advection, diffusion left to the closure's face fluxes."""
    advection = -C * (u - torch.roll(u, 1, -1)) / DX
    return u + DT * (advection + periodic_tendency(closure(u), torch.tensor(DX)))


def down_gradient_flux(u):
    return -NU * (u - torch.roll(u, 1, -1)) / DX


TRAIN = exact_trajectories(32, 41, seed=0)
TEST = exact_trajectories(16, 41, seed=1)


def rollout_rmse(closure):
    with torch.no_grad():
        return float((unroll(coarse_step, closure, TEST[:, 0], 40) - TEST[:, 1:]).pow(2).mean().sqrt())


@pytest.fixture(scope="module")
def a_priori():
    torch.manual_seed(0)
    model = DownGradientClosure(hidden=8, dx=DX, k_scale=0.1)
    u = TRAIN.reshape(-1, N)
    fit(model, u, down_gradient_flux(u), epochs=60, batch_size=128, lr=1e-2, progress=False)
    return model


def test_a_priori_training_recovers_known_diffusivity_within_one_percent(a_priori):
    u = TEST.reshape(-1, N)
    with torch.no_grad():
        k = a_priori.diffusivity(u)
        flux = a_priori(u)
    assert float((k - NU).abs().max()) < 0.01 * NU  # measured: 0.6%
    target = down_gradient_flux(u)
    assert float((flux - target).norm() / target.norm()) < 0.01


def test_a_posteriori_training_lowers_unrolled_error_of_a_priori_model(a_priori):
    model = DownGradientClosure(hidden=8, dx=DX, k_scale=0.1)
    model.load_state_dict(a_priori.state_dict())
    before = rollout_rmse(model)
    fit_a_posteriori(model, coarse_step, TRAIN, k=10, epochs=8, batch_size=32, lr=3e-3, progress=False)
    after = rollout_rmse(model)
    assert after < 0.5 * before, (before, after)  # measured: 0.096 -> ~0.02
    with torch.no_grad():
        k_mean = float(a_priori.diffusivity(TEST[:, 0]).mean()), float(model.diffusivity(TEST[:, 0]).mean())
    assert abs(k_mean[1] - K_BEST) < abs(k_mean[0] - K_BEST)


def _short_fit(tmp_path, name, **kw):
    torch.manual_seed(3)
    model = DownGradientClosure(hidden=4, dx=DX)
    u = TRAIN[:8].reshape(-1, N)
    hist = fit(
        model,
        u,
        down_gradient_flux(u),
        epochs=5,
        batch_size=32,
        lr=1e-2,
        progress=False,
        checkpoint_path=tmp_path / f"{name}.pt",
        **kw,
    )
    return model, hist


def test_same_seed_gives_identical_weights(tmp_path):
    a, _ = _short_fit(tmp_path, "a", seed=7)
    b, _ = _short_fit(tmp_path, "b", seed=7)
    c, _ = _short_fit(tmp_path, "c", seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[key], sb[key]) for key in sa)
    assert not all(torch.equal(sa[key], sc[key]) for key in sa)


def test_checkpoint_loads_with_weights_only_and_history_is_json(tmp_path):
    model, hist = _short_fit(tmp_path, "ckpt")
    fresh = load_checkpoint(DownGradientClosure(hidden=4, dx=DX), tmp_path / "ckpt.pt")
    x = TEST[:2, 0]
    assert torch.equal(fresh(x), model(x))
    saved = json.loads((tmp_path / "ckpt.history.json").read_text())
    assert saved["train"] == hist.train and len(saved["val"]) == 5
    assert saved["best_epoch"] == hist.best_epoch


@pytest.mark.parametrize("patience", [0, 3])
def test_early_stopping_tolerates_patience_epochs_without_improvement_and_stops_at_the_next(
    tmp_path, patience
):
    # lr = 0: the loss never improves after epoch 0, so epochs 1 .. patience are
    # tolerated and epoch patience + 1 is the last one run (fit's docstring).
    model = DownGradientClosure(hidden=4, dx=DX)
    u = TRAIN[:4].reshape(-1, N)
    hist = fit(
        model,
        u,
        down_gradient_flux(u),
        epochs=100,
        lr=0.0,
        patience=patience,
        progress=False,
        history_path=tmp_path / "h.json",
    )
    assert hist.stopped_early and hist.best_epoch == 0
    assert len(hist.train) == len(hist.val) == patience + 2
