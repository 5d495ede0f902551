"""Coupled runs: the Fortran program ``burgers_les`` (subprocess) and the torch twin.

``burgers_les`` reads a namelist, calls the closure in-process through
``use nn_closure`` when ``closure = 'nn'``, and writes a binary trajectory
(see examples/burgers/README.md). Every file of a run (namelist, initial
state, trajectory, log) goes into the run's folder under the demo's ``--out``.
"""

import math
import re
from pathlib import Path

import numpy as np
import torch

from . import twin
from .common import run_program

EPS = np.finfo(np.float64).eps


def read_trajectory(path):
    """``(time (nsnap,), u (nsnap, n))`` from a ``burgers_les`` output file."""
    h = np.fromfile(path, "<i8", 4)
    d = np.fromfile(path, "<f8", offset=64)
    n = int(h[1])
    d = d[: d.size // (n + 1) * (n + 1)].reshape(-1, n + 1)
    return d[:, 0], d[:, 1:]


def run_fortran(folder, cfg, u0, nsteps, every, model=None, threads=1, record_every=None):
    """Run ``burgers_les`` in ``folder`` from ``u0``; return a dict of the run.

    Parameters
    ----------
    folder : Path
        Created; receives ``burgers.nml``, ``initial.bin``, ``traj.bin``, ``log.txt``.
    cfg : twin.BurgersConfig
        Grid, physics, forcing and closure (``cfg.closure`` may be ``"nn"``).
    u0 : ndarray, shape (n,)
    nsteps, every : int
        Steps to run and snapshot interval (in steps).
    model : Path, optional
        The exported closure for ``closure = 'nn'`` (``.pt2`` package, native ``.nnp`` program
        or TorchScript ``.pt``).
    threads : int
        ``OMP_NUM_THREADS`` for libtorch inside the program.
    record_every : int, optional
        Record every n-th closure call with its stage states into ``folder/records``.

    Returns
    -------
    dict
        ``time``, ``u`` (snapshots), ``ok`` (exit status 0 and finite),
        ``drift`` (the program's momentum drift beyond forcing), ``log``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.asarray(u0, dtype="<f8").tofile(folder / "initial.bin")
    params = {
        "n": cfg.n,
        "length": cfg.length,
        "nu": cfg.nu,
        "dt": cfg.dt,
        "nsteps": nsteps,
        "every": every,
        "closure": cfg.closure,
        "cs": cfg.cs,
        "scheme": cfg.scheme,
        "model": str(model or "closure.pt2"),
        "device": "cpu",
        "seed": cfg.seed,
        "force_amp": cfg.force_amp,
        "kmin": cfg.kmin,
        "kmax": cfg.kmax,
        "force_tau": cfg.force_tau,
        "output": "traj.bin",
        "initial": "initial.bin",
    }
    if record_every:
        params.update(record_dir="records", record_every=int(record_every))
    returncode, log = run_program("burgers_les", folder, params, "burgers", threads)
    t, u = (
        read_trajectory(folder / "traj.bin")
        if (folder / "traj.bin").exists()
        else (np.zeros(0), np.zeros((0, cfg.n)))
    )
    m = re.search(r"momentum drift beyond forcing\s+(\S+)", log)
    ok = returncode == 0 and len(t) == nsteps // every + 1 and bool(np.isfinite(u).all())
    return {
        "time": t,
        "u": u,
        "ok": ok,
        "drift": float(m.group(1)) if m else float("nan"),
        "log": log,
        "returncode": returncode,
    }


def package_closure(path):
    """The exported package loaded in Python, as ``u (n,) -> tau (n,)``.

    The same file and the same kernels the Fortran run calls through the bridge: an
    AOTInductor package by Python's loader (:func:`pyclosure._aoti.load_package` is bit
    for bit with the bridge's loader), a native program (``.nnp``) by the cffi twin of
    the native kernels (the very C code of the bridge's native engine).
    """
    if str(path).endswith(".nnp"):
        from .._native_twin import Program

        program = Program(path)

        def native(u):
            return torch.from_numpy(program(u.detach().numpy().reshape(1, -1))).reshape(-1)

        return native
    from .._aoti import load_package

    package = load_package(path)

    def closure(u):
        return package(u.reshape(1, -1))[0].reshape(-1)

    return closure


def run_twin(cfg, u0, nsteps, every, closure=None):
    """Twin trajectory ``(nsnap, n)`` and a momentum account, without gradients.

    Returns
    -------
    u : ndarray, shape (nsteps // every + 1, n)
    account : dict
        At each snapshot: ``momentum`` (exact sum of the cells times dx),
        ``forcing`` (accumulated dt*dx*sum(frc), replayed by :class:`twin.Forcing`) and
        ``scale`` (accumulated magnitude of the update terms, as the core's ``mom_scale``).
    """
    forcing = twin.Forcing(cfg)
    u = torch.as_tensor(u0, dtype=torch.float64).clone()
    snaps, mom, frc_acc, scale = [u.numpy().copy()], [], [], []
    acc = 0.0
    with torch.no_grad():
        for s in range(nsteps):
            frc = forcing(s)
            forcing.mom += cfg.dt * cfg.dx * math.fsum(frc.tolist())
            acc += _stage_scale(u, frc, cfg, closure)
            u1 = twin.rk_stage(u, frc, cfg, closure)
            acc += _stage_scale(u1, frc, cfg, closure)
            w = twin.rk_stage(u1, frc, cfg, closure)
            u2 = 0.75 * u + 0.25 * w
            acc += _stage_scale(u2, frc, cfg, closure)
            w = twin.rk_stage(u2, frc, cfg, closure)
            u = u / 3.0 + 2.0 * w / 3.0
            if (s + 1) % every == 0:
                snaps.append(u.numpy().copy())
                frc_acc.append(forcing.mom)
                scale.append(acc)
    snaps = np.array(snaps)
    mom = [math.fsum(x.tolist()) * cfg.dx for x in snaps]
    return snaps, {"momentum": mom, "forcing": [0.0] + frc_acc, "scale": [0.0] + scale}


def _stage_scale(uin, frc, cfg, closure):
    """dx * sum(|u| + dt(|F(i+1)| + |F(i)|)/dx + dt|frc|), the core's ``mom_scale`` term."""
    f = twin.fluxes(uin, cfg, closure).abs()
    acc = uin.abs() + cfg.dt * (torch.roll(f, -1, dims=-1) + f) / cfg.dx + cfg.dt * frc.abs()
    return cfg.dx * float(acc.sum())


def momentum_drift(u, account, cfg):
    """Worst ``|drift| / (8 eps scale)`` of a trajectory ``u`` against a twin ``account``.

    ``drift = dx*sum(u_t) - dx*sum(u_0) - forcing_t`` in exact summation
    (``math.fsum``), with ``forcing_t`` and ``scale_t`` from :func:`run_twin`.
    Returns ``(worst_ratio, worst_abs_drift)``.
    """
    m0 = math.fsum(u[0].tolist()) * cfg.dx
    ratio, worst = 0.0, 0.0
    for t in range(1, len(u)):
        drift = math.fsum(u[t].tolist()) * cfg.dx - m0 - account["forcing"][t]
        ratio = max(ratio, abs(drift) / (8.0 * EPS * account["scale"][t]))
        worst = max(worst, abs(drift))
    return ratio, worst
