"""Training data for the column emulator, from the Fortran scheme itself through f90wrap.

The states come from scheme-driven runs of the same host physics the Fortran model uses
(``column_core.advance``), at several relative humidities and surface temperatures, with a
smooth random perturbation added to a copy of each state; the targets are the scheme's
net downward fluxes (``column_rad.lw_fluxes``) of every state. Arrays are numpy
``(samples, nlev)`` (C order), which is the Fortran ``(nlev, samples)`` the scheme takes.
"""

import numpy as np


def physics():
    """The f90wrap module of ``column_rad`` and ``column_core`` (``pyclosure.column_physics``)."""
    from ... import column_physics

    return column_physics


def grid(nlev):
    """Interface pressures (Pa, top first) and layer heat capacities cp dp / g (J m-2 K-1)."""
    core = physics().column_core
    p_int = np.zeros(nlev + 1, order="F")
    core.grid(nlev, p_int)
    dx = np.zeros(nlev, order="F")
    core.layer_heat_capacity(nlev, p_int, dx)
    return p_int, dx


def fluxes(t, q, ts, nband, p_int):
    """The scheme's net downward fluxes (samples, nlev + 1) of states t, q (samples, nlev), ts (samples,)."""
    n, nlev = t.shape
    out = np.zeros((n, nlev + 1))
    physics().column_rad.lw_fluxes(nlev, n, nband, p_int, _f(t), _f(q), np.ascontiguousarray(ts), out.T)
    return out


def humidity(t, rh0, p_int):
    """Specific humidity (samples, nlev) of temperatures t at relative humidity rh0, as the host sets it."""
    n, nlev = t.shape
    q = np.zeros((n, nlev))
    physics().column_core.humidity(nlev, n, p_int, rh0, _f(t), q.T)
    return q


def run(ts, rh0, s, p_int, nsteps, every):
    """A scheme-driven run from the host's first guess, surface temperatures ts: states every ``every`` steps.

    Returns ``(t, q)``, each (snapshots, columns, nlev), snapshot 0 the initial state."""
    core, rad = physics().column_core, physics().column_rad
    ncol, nlev = len(ts), s.nlev
    ts = np.ascontiguousarray(ts, dtype=np.float64)
    t = np.zeros((ncol, nlev))
    core.initial_state(nlev, ncol, p_int, ts, t.T)
    q = humidity(t, rh0, p_int)
    f = np.zeros((ncol, nlev + 1))
    ts_out, qs_out = [t.copy()], [q.copy()]
    for step in range(1, nsteps + 1):
        rad.lw_fluxes(nlev, ncol, s.nband, p_int, t.T, q.T, ts, f.T)
        core.advance(nlev, ncol, s.dt, s.chs, rh0, p_int, f.T, ts, t.T, q.T)
        if step % every == 0:
            ts_out.append(t.copy())
            qs_out.append(q.copy())
    return np.stack(ts_out), np.stack(qs_out)


def _f(a):
    """A (samples, nlev) C-order array as the Fortran (nlev, samples) view."""
    return np.ascontiguousarray(a, dtype=np.float64).T


def _smooth_noise(rng, n, nlev, amplitude):
    """Smooth random profiles (n, nlev): a few sine modes with random phases."""
    z = np.linspace(0.0, 1.0, nlev)
    out = np.zeros((n, nlev))
    for k in (1, 2, 3):
        out += (rng.normal(size=(n, 1)) / k) * np.sin(np.pi * k * z + rng.uniform(0, 2 * np.pi, (n, 1)))
    return amplitude * out / np.sqrt(np.sum(1.0 / np.arange(1, 4) ** 2))


def generate(path, s, seed=0):
    """Training states and the scheme's fluxes, saved to ``path`` (npz) and returned as a dict.

    Keys: x (samples, 2 nlev + 1) = [t, q, ts], flux (samples, nlev + 1), p_int, dx."""
    rng = np.random.default_rng(seed)
    p_int, dx = grid(s.nlev)
    lo, hi = s.ts_range
    xs = []
    for rh0 in s.train_rh0:
        ts = rng.uniform(lo - 3.0, hi + 3.0, s.train_columns)
        t, _ = run(ts, rh0, s, p_int, s.train_steps, s.train_every)
        t = t.reshape(-1, s.nlev)
        tsr = np.tile(ts, t.shape[0] // len(ts))
        jittered = t + _smooth_noise(rng, t.shape[0], s.nlev, s.jitter)
        for tt in (t, jittered):
            xs.append(np.concatenate([tt, humidity(tt, rh0, p_int), tsr[:, None]], axis=1))
    x = np.concatenate(xs)
    nlev = s.nlev
    flux = fluxes(x[:, :nlev], x[:, nlev : 2 * nlev], x[:, 2 * nlev], s.nband, p_int)
    d = {"x": x, "flux": flux, "p_int": p_int, "dx": dx}
    np.savez(path, **d)
    return d
