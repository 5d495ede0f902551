"""Time-aware training: blocked validation by default, val_data, early stopping that fires."""

import numpy as np
import pytest
import torch
from torch import nn

from pyclosure.data import ForwardDifferenceWarning, subgrid_tendency
from pyclosure.train import fit, split_indices


def test_split_is_a_contiguous_block_at_the_end_by_default():
    train, val = split_indices(10, 0.2)
    assert train.tolist() == list(range(8)) and val.tolist() == [8, 9]
    train, val = split_indices(10, 0.2, "random", seed=1)
    assert sorted(train.tolist() + val.tolist()) == list(range(10)) and val.tolist() != [8, 9]
    with pytest.raises(ValueError, match="split must be one of"):
        split_indices(10, 0.2, "shuffled")


def _series():
    """A time series whose input is time itself: a network can interpolate it, not extrapolate."""
    t = torch.linspace(-1, 1, 600, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(6 * t) + 0.5 * torch.sin(15 * t)
    return t, y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)).double()


def test_blocked_split_lets_early_stopping_fire_where_a_random_split_leaks():
    t, y = _series()
    blocked = fit(_net(), t, y, epochs=40, lr=1e-2, patience=10, progress=False)
    leaky = fit(_net(), t, y, epochs=40, lr=1e-2, patience=10, split="random", progress=False)
    # epochs count from 0: the last one run is best_epoch + patience + 1
    assert blocked.stopped_early and len(blocked.train) == blocked.best_epoch + 10 + 2 < 40
    # neighbours of every validation sample were trained on: its loss falls with the training loss
    assert not leaky.stopped_early and leaky.best_val < 0.1 * blocked.best_val


def test_val_data_is_what_validation_measures():
    t, y = _series()
    net = _net()
    vt, vy = t[::7] + 0.001, y[::7] + 5.0  # far off: a validation loss near 25 proves it is used
    hist = fit(net, t, y, epochs=3, val_data=(vt, vy), progress=False)
    with torch.no_grad():
        expect = float(((net(vt) - vy) ** 2).mean())
    assert hist.val[hist.best_epoch] == pytest.approx(expect, rel=1e-9) and expect > 10
    with pytest.raises(ValueError, match="val_data has 2 input"):
        fit(net, t, y, epochs=1, val_data=((vt, vt), vy), progress=False)


def test_centred_tendency_targets_are_second_order_and_forward_ones_warn():
    dt = 0.01
    time = np.arange(200) * dt
    traj = np.stack([np.sin(time), np.cos(2 * time)], axis=1)  # (T, 2)
    true = np.stack([np.cos(time), -2 * np.sin(2 * time)], axis=1)
    zero = np.zeros_like
    states, centred = subgrid_tendency(traj, dt, zero)
    assert states.shape == (198, 2) and np.abs(centred - true[1:-1]).max() < 4 * dt**2 / 6 * 2
    with pytest.warns(ForwardDifferenceWarning, match="time-stepping error"):
        _, forward = subgrid_tendency(traj, dt, zero, difference="forward")
    assert np.abs(forward - true[:-1]).max() > 10 * np.abs(centred - true[1:-1]).max()

    # "step": exactly what, added as dt * U after the host's step, reproduces the trajectory
    def step(x):
        return x + dt * np.cos(x)

    s, u = subgrid_tendency(traj, dt, difference="step", step=step)
    np.testing.assert_allclose(step(s) + dt * u, traj[1:], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="needs step="):
        subgrid_tendency(traj, dt, zero, difference="step")
