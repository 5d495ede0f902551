"""Training data for the Burgers closure: DNS through the Fortran core, coarse-grained.

The DNS (default N = 4096, dx = L/4096) runs through ``pyclosure._burgers``
(the f90wrap module of burgers_core). Snapshots are coarse-grained to the LES
grid (default N = 128, so r = 32 fine cells per coarse cell) by :mod:`pyclosure.data`:

* ``u``: block average of the fine cells of each coarse cell (the coarse
  finite-volume state, exactly the LES variable);
* ``tau``: subgrid momentum flux at the coarse faces,
  ``0.5 * (filter(u^2) - filter(u)^2)`` with a box filter of width
  Delta = coarse dx CENTRED ON THE FACE: for the left face of coarse cell I
  (0-based) the mean over fine cells ``r*I - r/2 .. r*I + r/2 - 1`` (periodic);
* ``tau_fv``: the flux defect ``F_fine(face r*I) - F_coarse(u)(face I)``, fine
  total flux (resolved + viscous) minus the coarse scheme's flux of the block
  averages. With it the coarse update reproduces the block-averaged DNS
  tendency exactly (discretisation-consistent target).

The train set comes from one DNS run (seed ``seed``) after a spin-up; the
held-out test trajectory from a second run with forcing seed ``seed + 1``,
started at t = 0 from the last training state. An LES started from
``test_u[0]`` with ``seed + 1`` gets the same forcing (cell means of the same
modes, redrawn at the same times), so it can be compared with ``test_u``.

Run: ``python -m pyclosure.demo.data [out.npz]`` (about 20 s on 2 cores).
"""

import sys
import time

import numpy as np
import torch

from .. import data
from . import twin


def _core():
    from pyclosure.burgers_core import burgers_core

    return burgers_core


def flux_defect(u, r, cfg_fine, cfg_coarse):
    """Fine total flux at the coarse faces minus the coarse flux of the block average."""
    ff = twin.fluxes(torch.from_numpy(u), cfg_fine, "none").numpy()[..., ::r]
    fc = twin.fluxes(torch.from_numpy(data.coarsen(u, r)), cfg_coarse, "none").numpy()
    return ff - fc


def _sample(core, nsnap, every):
    snaps, times = [], []
    for _ in range(nsnap):
        core.step(every)
        snaps.append(np.array(core.u))
        times.append(core.time)
    return np.array(snaps), np.array(times)


def forecast_segments(core, start, nseg, horizon, every, seed0, dt, params, r):
    """Held-out forecast segments: ``(nseg, nsnap + 1, n_les)`` coarse states.

    Segment ``i`` restarts the DNS clock (``init``) from the end state of the
    previous one (the first from ``start``) with forcing seed ``seed0 + i``, so
    an LES started at step 0 from its first state with that seed sees the same
    forcing at the same times.
    """
    segs = []
    for i in range(nseg):
        core.init(params[0], params[1], params[2], dt, seed0 + i, *params[3:])
        core.set_closure("none", 0.0, "central")
        core.set_state(start)
        fine, _ = _sample(core, round(horizon / every), round(every / dt))
        segs.append(data.coarsen(np.concatenate([start[None], fine]), r))
        start = fine[-1]
    return np.array(segs)


def generate(
    path=None,
    n_dns=4096,
    n_les=128,
    dt=0.005,
    dt_les=0.04,
    spinup=200.0,
    t_train=1000.0,
    train_every=0.5,
    t_test=200.0,
    test_every=0.2,
    seed=1,
    force_amp=0.1,
    kmin=1,
    kmax=3,
    force_tau=1.0,
    nu=0.02,
    length=100.0,
    nseg=0,
    seg_horizon=10.0,
):
    """Run the DNS, coarse-grain, optionally write ``path`` (.npz); return the dict.

    Returns ``u``, ``tau``, ``tau_fv`` (train, each ``(nsamples, n_les)``),
    ``time``, ``test_u``, ``test_tau``, ``test_tau_fv``, ``test_time`` and the
    run parameters (``n_dns``, ``n_les``, ``dt``, ``dt_les``, ``seed``, ``test_seed``, ...).
    With ``nseg > 0`` also ``seg_u`` (see :func:`forecast_segments`: held-out
    segments of ``seg_horizon`` time units every ``test_every`` continuing the
    test run, seeds ``seed + 2 + i`` in ``seg_seeds``).
    """
    core = _core()
    r = n_dns // n_les
    cfg_f = twin.BurgersConfig(n=n_dns, length=length, nu=nu, dt=dt)
    cfg_c = twin.BurgersConfig(n=n_les, length=length, nu=nu, dt=dt_les)
    t0 = time.perf_counter()
    core.init(n_dns, length, nu, dt, seed, force_amp, kmin, kmax, force_tau)
    core.set_closure("none", 0.0, "central")
    core.step(round(spinup / dt))
    ev = round(train_every / dt)
    fine, times = _sample(core, round(t_train / train_every), ev)
    core.init(n_dns, length, nu, dt, seed + 1, force_amp, kmin, kmax, force_tau)
    core.set_closure("none", 0.0, "central")
    core.set_state(fine[-1])
    ev = round(test_every / dt)
    test_fine, test_times = _sample(core, round(t_test / test_every), ev)
    test_fine = np.concatenate([fine[-1:], test_fine])
    test_times = np.concatenate([[0.0], test_times])
    params = (n_dns, length, nu, force_amp, kmin, kmax, force_tau)
    seg_u = forecast_segments(core, test_fine[-1], nseg, seg_horizon, test_every, seed + 2, dt, params, r)
    t_dns = time.perf_counter() - t0
    u, tau = data.subgrid_flux(fine, r, filter="face_box")
    test_u, test_tau = data.subgrid_flux(test_fine, r, filter="face_box")
    out = {
        "u": u,
        "tau": tau,
        "tau_fv": flux_defect(fine, r, cfg_f, cfg_c),
        "time": times,
        "test_u": test_u,
        "test_tau": test_tau,
        "test_tau_fv": flux_defect(test_fine, r, cfg_f, cfg_c),
        "test_time": test_times,
        "n_dns": n_dns,
        "n_les": n_les,
        "dt": dt,
        "dt_les": dt_les,
        "nu": nu,
        "length": length,
        "seed": seed,
        "test_seed": seed + 1,
        "force_amp": force_amp,
        "kmin": kmin,
        "kmax": kmax,
        "force_tau": force_tau,
        "dns_seconds": t_dns,
        "seg_u": seg_u,
        "seg_seeds": np.arange(nseg) + seed + 2,
        "train_every": train_every,
        "test_every": test_every,
        "spinup": spinup,
        "total_seconds": time.perf_counter() - t0,
    }
    if path is not None:
        np.savez(path, **out)
    return out


def write_netcdf(path, d):
    """The coarse-grained training pairs of ``d`` as NetCDF with CF metadata: ``u``, ``tau`` and
    ``tau_fv`` over ``(time, x)``, in time chunks of 250 snapshots, with ``units`` (``"1"``: the
    model is nondimensional), ``long_name`` and the run's parameters as global attributes."""
    import xarray as xr

    n = d["u"].shape[-1]
    dims = ("time", "x")
    var = {
        "u": "coarse-grained velocity (cell means)",
        "tau": "subgrid flux of u at left cell faces (filtered)",
        "tau_fv": "subgrid flux of u at left cell faces (finite-volume defect)",
    }
    ds = xr.Dataset(
        {k: (dims, d[k], {"units": "1", "long_name": v}) for k, v in var.items()},
        coords={
            "time": ("time", d["time"], {"units": "1", "long_name": "model time"}),
            "x": (
                "x",
                (np.arange(n) + 0.5) * d["length"] / n,
                {"units": "1", "long_name": "cell centre", "axis": "X"},
            ),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "forced Burgers DNS coarse-grained for closure training",
            "source": f"pyclosure demo: DNS N={d['n_dns']} block-averaged to N={d['n_les']}",
            "nu": float(d["nu"]),
            "seed": int(d["seed"]),
        },
    )
    enc = {k: {"chunksizes": (min(250, len(d["time"])), n)} for k in var}
    ds.to_netcdf(path, engine="h5netcdf", encoding=enc)
    return path


def main(argv):
    path = argv[0] if argv else "burgers_data.npz"
    d = generate(path)
    print(
        f"wrote {path}: train {d['u'].shape}, test {d['test_u'].shape}; "
        f"DNS {d['dns_seconds']:.1f} s, total {d['total_seconds']:.1f} s; "
        f"u_rms {d['u'].std():.3f}, tau_rms {d['tau'].std():.4f}, "
        f"tau_fv_rms {d['tau_fv'].std():.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
