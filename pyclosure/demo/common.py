"""What the Burgers demo and the column example share: the ``demo`` extra, the step lines,
runs of the examples' Fortran programs on a namelist, claims and their table, the replay of
the recorded calls, and the closing report."""

import importlib
import importlib.resources
import json
import os
import subprocess
import time
from pathlib import Path

#: What the demos need beyond pyclosure's own dependencies (the ``demo`` extra): module -> package.
EXTRAS = {
    "matplotlib": "matplotlib",
    "f90wrap": "f90wrap==0.3.0",
    "xarray": "xarray",
    "h5netcdf": "h5netcdf",
    "h5py": "h5py",
    "dask": "dask",
}
#: Steps of each demo run, as ``say`` numbers them.
STEPS = 7


def missing_extras():
    """The packages of the ``demo`` extra that this environment lacks or cannot import (pip requirement
    strings)."""
    missing = []
    for module, pkg in EXTRAS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(pkg)
    return missing


def require_extras(what):
    """Raise ``ClosureError`` naming what to install when the ``demo`` extra is incomplete (before any
    work: ``what`` names the run)."""
    from ..errors import ClosureError

    missing = missing_extras()
    if missing:
        raise ClosureError(
            f"{what} needs {', '.join(missing)} (the 'demo' extra), not installed in this "
            "environment; install it with: pip install " + " ".join(repr(m) for m in missing)
        )


def say(i, text, steps=STEPS):
    """The line that starts step ``i`` of ``steps``."""
    print(f"[{i}/{steps}] {text}", flush=True)


def program(name):
    """Path of the installed Fortran program ``name`` (``burgers_les``, ``column_scm``)."""
    path = Path(str(importlib.resources.files("pyclosure"))) / "bin" / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: build pyclosure with the demo (meson option demo, on by default)"
        )
    return path


def _nml_value(v):
    if isinstance(v, bool):
        return ".true." if v else ".false."
    if isinstance(v, (list, tuple)):
        return ", ".join(_nml_value(x) for x in v)
    if isinstance(v, str):
        return f"'{v}'"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_namelist(path, params, group):
    """Write ``&group`` with ``params`` (a dict of namelist variables) to ``path``."""
    body = ",\n".join(f"  {k} = {_nml_value(v)}" for k, v in params.items())
    Path(path).write_text(f"&{group}\n{body}\n/\n")


def run_program(name, folder, params, group, threads=1):
    """Run the installed program ``name`` in ``folder`` on ``params``, written there as namelist
    ``&group`` to ``GROUP.nml``, with ``threads`` OpenMP and MKL threads; its output is kept in
    ``log.txt``. Returns (exit status, output)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_namelist(folder / f"{group}.nml", params, group)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(
        [str(program(name)), f"{group}.nml"], cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    log = proc.stdout + proc.stderr
    (folder / "log.txt").write_text(log)
    return proc.returncode, log


def claim(held, detail):
    """One claim of a report: whether it held, and the numbers that say so."""
    return {"held": bool(held), "detail": detail}


def claims_table(claims):
    """Markdown lines: one row per claim, whether it held and its detail (a ``|`` in it escaped)."""
    rows = [(k, "yes" if c["held"] else "NO", c["detail"].replace("|", "\\|")) for k, c in claims.items()]
    return ["| claim | held | detail |", "|---|---|---|"] + [f"| {k} | {h} | {d} |" for k, h, d in rows]


def replay_into(records, model, **kw):
    """Replay the recorded calls under ``records`` through ``model`` (:func:`pyclosure.replay.replay`
    with ``kw``), write ``replay_report.json`` beside them; the report."""
    from ..replay import replay

    rep = replay(records, model, **kw)
    (Path(records) / "replay_report.json").write_text(json.dumps(rep, indent=1) + "\n")
    return rep


def write_report(out, results, text):
    """Write ``report.json`` (the results) and ``report.md`` (``text``) into ``out``."""
    Path(out, "report.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    Path(out, "report.md").write_text(text)


def finish(command, out, results, text, t_start):
    """Print the report and every claim that did not hold; 0 when all held, else 1."""
    print()
    print(text)
    failed = [k for k, c in results["claims"].items() if not c["held"]]
    for k in failed:
        print(f"CLAIM DID NOT HOLD: {k}: {results['claims'][k]['detail']}")
    print(
        f"{command}: {'all claims held' if not failed else 'FAILED'}; wrote {out}; "
        f"total {time.perf_counter() - t_start:.1f} s"
    )
    return 0 if not failed else 1
