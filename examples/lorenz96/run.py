"""Lorenz '96 closures end to end: pointwise tendency, AR(1) red noise, a posteriori tuning.

1. Truth runs of the two-scale model; subgrid tendency targets of the coarse model by a
   centred difference (`pyclosure.data.subgrid_tendency`); the forward difference is
   computed too, to show what it costs.
2. A `PointwiseClosure` (x(3, K) -> u(1, K)) fitted with a blocked (time) validation split
   and exported with `meaning: tendency` and its Lipschitz bound.
3. A `RedNoiseClosure` (AR(1) noise, phi and sigma fitted to the residuals) and the same
   noise white (phi = 0); ensemble forecasts through the C bridge compare each ensemble's
   spread with its mean's error.
4. `fit_a_posteriori` through 10 unrolled RK4 steps, and the coupled forecast error
   before and after.

Prints a report and ends with "lorenz96: OK" when the spread of the red-noise ensemble is
within a factor 2 of its error and white noise's is at least 3x too small; otherwise it says
which did not hold and exits 1.

Usage: python run.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import l96
import numpy as np
import torch

import pyclosure
from pyclosure.bridge import Model
from pyclosure.data import subgrid_tendency
from pyclosure.normalize import Normalizer
from pyclosure.pointwise import PointwiseClosure
from pyclosure.stateful import RedNoiseClosure
from pyclosure.train import fit, fit_a_posteriori

DT = 0.005


def targets(traj, difference):
    states, tend = subgrid_tendency(traj, DT, l96.slow_rhs, difference)
    return states, l96.features(states), tend


def closure_fn(module):
    def u(x):
        with torch.no_grad():
            f = torch.from_numpy(l96.features(x).reshape(-1, 3))
            return module(f).numpy().reshape(x.shape)

    return u


def forecast_rmse(module, ics, truth_paths, steps):
    """Deterministic coupled forecasts (numpy RK4): RMSE over ICs, points and lead times."""
    x, err = ics.copy(), []
    for n in range(steps):
        x = l96.coarse_step(x, DT, closure_fn(module))
        err.append(np.mean((x - truth_paths[n + 1]) ** 2))
    return float(np.sqrt(np.mean(err)))


def ensemble(path, ics, truth_paths, steps, members):
    """Ensemble forecasts through the bridge; (spread, error of the mean), time averaged."""
    model = Model(path)
    n_ic = ics.shape[0]
    x = np.repeat(ics[:, None, :], members, axis=1)  # (ic, member, K)
    state = np.zeros((n_ic * members * l96.K, 2))
    spread2, err2 = [], []
    for n in range(steps):
        stage_k, xs = [], x
        for s, c in enumerate((0.0, 0.5, 0.5, 1.0)):
            if s:
                xs = x + c * DT * stage_k[-1]
            u, nxt = model(l96.features(xs).reshape(-1, 3), state)
            stage_k.append(l96.slow_rhs(xs) + u.reshape(xs.shape))
        x = x + DT / 6 * (stage_k[0] + 2 * stage_k[1] + 2 * stage_k[2] + stage_k[3])
        state = nxt
        spread2.append(np.mean(x.var(axis=1, ddof=1)))
        err2.append(np.mean((x.mean(axis=1) - truth_paths[n + 1]) ** 2))
    return float(np.sqrt(np.mean(spread2))), float(np.sqrt(np.mean(err2)))


def unrolled_step(module):
    def step(x, closure):
        def rhs(v):
            f = torch.stack([torch.roll(v, 1, -1), v, torch.roll(v, -1, -1)], dim=-1)
            u = closure(f.reshape(-1, 3)).reshape(v.shape)
            adv = -torch.roll(v, 1, -1) * (torch.roll(v, 2, -1) - torch.roll(v, -1, -1))
            return adv - v + l96.F + u

        k1 = rhs(x)
        k2 = rhs(x + 0.5 * DT * k1)
        k3 = rhs(x + 0.5 * DT * k2)
        k4 = rhs(x + DT * k3)
        return x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="lorenz96-out")
    p.add_argument("--quick", action="store_true", help="less data, fewer epochs and forecasts")
    a = p.parse_args(argv)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t_train, n_ic, members, epochs = (6.0, 6, 16, 8) if a.quick else (12.0, 12, 20, 20)
    steps = 200  # one model time unit
    start = time.perf_counter()
    train = l96.truth(8, 5.0, t_train, DT, seed=1)  # (T, 8, K)
    test = l96.truth(n_ic, 5.0, 1.0 + 2 * DT, DT, seed=2)  # (T, n_ic, K)
    print(f"truth: {train.shape[0]} x {train.shape[1]} training states, {time.perf_counter() - start:.1f} s")

    _, feats, tend = targets(train, "centred")
    x = torch.from_numpy(feats.reshape(-1, 3))
    y = torch.from_numpy(tend.reshape(-1, 1))
    closure = PointwiseClosure(
        3,
        1,
        hidden=32,
        input_normalizer=Normalizer.fit(x, per="feature"),
        output_normalizer=Normalizer.fit(y, per="feature"),
    ).double()
    hist = fit(closure, x, y, epochs=epochs, batch_size=512, patience=4, progress=False)
    print(
        f"a priori fit (blocked split): best validation MSE {hist.best_val:.4f} at epoch {hist.best_epoch}, "
        f"stopped early: {hist.stopped_early}"
    )
    contract = pyclosure.export(
        closure, out / "closure.pt", example_inputs=(x[:8],), units={"x": "1", "tendency": "1 per time unit"}
    )
    print(
        f"contract: tendency meaning {contract['outputs'][0]['meaning']}, "
        f"Lipschitz bound {contract['lipschitz_bound']:.3g}"
    )

    with torch.no_grad():
        resid = (y - closure(x)).numpy().reshape(tend.shape + (1,))  # (T, traj, K, 1), time first
    red = RedNoiseClosure.from_residuals(closure, resid, seed=7)
    white = RedNoiseClosure(closure, 0.0, red.sigma, seed=7)
    print(f"AR(1) fit: phi {float(red.phi):.4f} per step of {DT}, sigma {float(red.sigma):.3f}")
    example = (x[:8], torch.zeros(8, 2, dtype=torch.float64))
    for name, module in (("closure_ar1.pt", red), ("closure_white.pt", white)):
        pyclosure.export(module, out / name, example_inputs=example)

    ics, paths = test[0], test
    det_rmse = forecast_rmse(closure, ics, paths, steps)
    results = {}
    for name in ("closure_ar1.pt", "closure_white.pt"):
        results[name] = ensemble(out / name, ics, paths, steps, members)
    print(f"forecast over 1 time unit from {n_ic} initial states, {members} members:")
    print(f"  deterministic closure: error {det_rmse:.3f}")
    for name, (spread, err) in results.items():
        print(f"  {name:<18} spread {spread:.3f}  error of mean {err:.3f}  spread/error {spread / err:.2f}")

    _, fwd_feats, fwd_tend = targets(train, "forward") if not a.quick else (None, None, None)
    if fwd_feats is not None:
        fwd = PointwiseClosure(
            3,
            1,
            hidden=32,
            input_normalizer=Normalizer.fit(x, per="feature"),
            output_normalizer=Normalizer.fit(y, per="feature"),
        ).double()
        fit(
            fwd,
            torch.from_numpy(fwd_feats.reshape(-1, 3)),
            torch.from_numpy(fwd_tend.reshape(-1, 1)),
            epochs=epochs,
            batch_size=512,
            patience=4,
            progress=False,
        )
        print(
            f"forward-difference targets: coupled error {forecast_rmse(fwd, ics, paths, steps):.3f} "
            f"(centred: {det_rmse:.3f})"
        )

    traj = torch.from_numpy(np.ascontiguousarray(train[::1, :4].transpose(1, 0, 2)))[:, :400]
    post = fit_a_posteriori(
        closure,
        unrolled_step(closure),
        traj,
        k=10,
        epochs=2 if a.quick else 4,
        batch_size=32,
        lr=2e-4,
        patience=2,
        progress=False,
    )
    after = forecast_rmse(closure, ics, paths, steps)
    print(
        f"a posteriori (k = 10 RK4 steps, {len(post.train)} epochs): coupled error {det_rmse:.3f} -> {after:.3f}"
    )

    ratios = {n: s / e for n, (s, e) in results.items()}
    failed = []
    if not 0.5 <= ratios["closure_ar1.pt"] <= 2.0:
        failed.append(f"red-noise spread/error {ratios['closure_ar1.pt']:.2f} is not within a factor 2")
    if ratios["closure_white.pt"] > 1 / 3:
        failed.append(f"white-noise spread/error {ratios['closure_white.pt']:.2f} is not 3x too small")
    print(f"total {time.perf_counter() - start:.1f} s")
    if failed:
        print("lorenz96: NOT MET: " + "; ".join(failed))
        return 1
    print("lorenz96: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
