"""Two-scale Lorenz '96 (Lorenz 1996): the truth, and the coarse model a closure completes.

Truth: K slow variables X_k, each coupled to J fast ones Y_{j,k} (periodic),

    dX_k/dt = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}
    dY_j/dt = -c b Y_{j+1} (Y_{j+2} - Y_{j-1}) - c Y_j + (h c / b) X_{k(j)}

with the parameters of Arnold, Moroz and Palmer (2013): K = 8, J = 32, F = 20, h = 1,
b = c = 10. The coarse model keeps X only; the closure supplies the coupling term per
point, from the features (X_{k-1}, X_k, X_{k+1}): the host passes x(3, K), the closure
returns u(1, K). Everything here is numpy, batched over independent trajectories.
"""

from __future__ import annotations

import numpy as np

K, J, F, H, B, C = 8, 32, 20.0, 1.0, 10.0, 10.0


def slow_rhs(x):
    """The coarse model's resolved tendency of X (..., K): advection, damping, forcing."""
    return -np.roll(x, 1, -1) * (np.roll(x, 2, -1) - np.roll(x, -1, -1)) - x + F


def _truth_rhs(x, y):
    """Tendencies of X (..., K) and Y (..., K * J)."""
    coupling = (H * C / B) * y.reshape(*y.shape[:-1], K, J).sum(-1)
    dx = slow_rhs(x) - coupling
    dy = (
        -C * B * np.roll(y, -1, -1) * (np.roll(y, -2, -1) - np.roll(y, 1, -1))
        - C * y
        + (H * C / B) * np.repeat(x, J, axis=-1)
    )
    return dx, dy


def truth(n_traj: int, t_spin: float, t_run: float, every: float, seed: int = 0, dt: float = 0.001):
    """Truth trajectories of X sampled every ``every``: (T, n_traj, K), T = t_run / every + 1."""
    rng = np.random.default_rng(seed)
    x = F * 0.5 + rng.standard_normal((n_traj, K))
    y = 0.1 * rng.standard_normal((n_traj, K * J))
    per = round(every / dt)
    out = []
    for n in range(round((t_spin + t_run) / dt) + 1):
        if n * dt >= t_spin - 1e-12 and (n - round(t_spin / dt)) % per == 0:
            out.append(x.copy())
        k1 = _truth_rhs(x, y)
        k2 = _truth_rhs(x + 0.5 * dt * k1[0], y + 0.5 * dt * k1[1])
        k3 = _truth_rhs(x + 0.5 * dt * k2[0], y + 0.5 * dt * k2[1])
        k4 = _truth_rhs(x + dt * k3[0], y + dt * k3[1])
        x = x + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        y = y + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return np.stack(out[: round(t_run / every) + 1])


def features(x):
    """(..., K) -> (..., K, 3): (X_{k-1}, X_k, X_{k+1}) per point, the closure's input."""
    return np.stack([np.roll(x, 1, -1), x, np.roll(x, -1, -1)], axis=-1)


def coarse_step(x, dt, closure_u):
    """One RK4 step of the coarse model; ``closure_u(x)`` -> (..., K) closure tendency."""

    def rhs(v):
        return slow_rhs(v) + closure_u(v)

    k1 = rhs(x)
    k2 = rhs(x + 0.5 * dt * k1)
    k3 = rhs(x + 0.5 * dt * k2)
    k4 = rhs(x + dt * k3)
    return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
