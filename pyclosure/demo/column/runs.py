"""Runs of the Fortran single-column model ``column_scm`` (subprocess) and what they print.

Every run is a folder with ``column.nml``, the program's log and its output ``traj.bin``
(see ``examples/column/column_scm.f90`` for the format).
"""

import re
from pathlib import Path

import numpy as np

from ..common import run_program


def read_trajectory(path):
    """``(time (nsnap,), ts (ncol,), t (nsnap, ncol, nlev))`` from a ``column_scm`` output file."""
    h = np.fromfile(path, "<i8", 6)
    nlev, ncol = int(h[1]), int(h[2])
    d = np.fromfile(path, "<f8", offset=48)
    rec = 1 + ncol + nlev * ncol
    d = d[: d.size // rec * rec].reshape(-1, rec)
    return d[:, 0], d[0, 1 : 1 + ncol], d[:, 1 + ncol :].reshape(-1, ncol, nlev)


def _params(s, **kw):
    lo, hi = s.ts_range
    p = {
        "nlev": s.nlev,
        "ncol": s.ncol,
        "nproma": s.nproma,
        "nband": s.nband,
        "nsteps": s.nsteps,
        "every": s.every,
        "threads": 1,
        "dt": float(s.dt),
        "chs": float(s.chs),
        "rh0": float(s.rh0),
        "ts_min": float(lo),
        "ts_max": float(hi),
        "output": "traj.bin",
    }
    p.update(kw)
    return p


def stats_of(log):
    """The emulator's statistics from the ``column_scm: stats`` line (empty without one)."""
    m = re.search(r"column_scm: stats (.*)", log)
    return {} if not m else {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def run(folder, s, radiation="scheme", model=None, ood="off", record_every=None, **overrides):
    """Run ``column_scm`` in ``folder``; return a dict (time, ts, t, ok, stats, log, returncode)."""
    folder = Path(folder)
    kw = {"radiation": radiation, "ood": ood}
    if model is not None:
        kw["model"] = str(Path(model).resolve())
    if record_every:
        kw.update(record_dir="records", record_every=int(record_every))
    params = _params(s, **kw)
    params.update(overrides)
    rc, log = run_program("column_scm", folder, params, "column")
    if (folder / "traj.bin").exists():
        time, ts, t = read_trajectory(folder / "traj.bin")
    else:
        time, ts, t = np.zeros(0), np.zeros(0), np.zeros((0, 0, s.nlev))
    ok = rc == 0 and len(time) == params["nsteps"] // params["every"] + 1 and bool(np.isfinite(t).all())
    return {"time": time, "ts": ts, "t": t, "ok": ok, "stats": stats_of(log), "log": log, "returncode": rc}


def bench(folder, s, model):
    """Median seconds per block of the scheme and of ``model`` at each of ``s.bench_nproma``, in one
    process with interleaved rounds, one thread: ``{nproma: {"scheme": s, "nn": s}}``."""
    params = _params(
        s,
        radiation="nn",
        model=str(Path(model).resolve()),
        ncol=s.bench_ncol,
        bench_rounds=s.bench_rounds,
        bench_nproma=list(s.bench_nproma),
        nsteps=0,
    )
    rc, log = run_program("column_scm", folder, params, "column")
    if rc != 0:
        raise RuntimeError(f"column_scm bench of {model} failed (exit {rc}):\n{log}")
    out = {}
    for m in re.finditer(r"bench nproma=(\d+) scheme_s=\s*(\S+) nn_s=\s*(\S+)", log):
        out[int(m.group(1))] = {"scheme": float(m.group(2)), "nn": float(m.group(3))}
    return out
