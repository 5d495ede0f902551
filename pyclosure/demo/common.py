"""What the Burgers demo and the column example share: the ``demo`` extra, the step lines,
claims and their table, the replay of the recorded calls, and the closing report."""

import importlib
import json
import time
from pathlib import Path

#: What the demos need beyond pyclosure's own dependencies (the ``demo`` extra): module -> package.
EXTRAS = {"matplotlib": "matplotlib", "f90wrap": "f90wrap==0.3.0", "xarray": "xarray", "h5netcdf": "h5netcdf",
          "h5py": "h5py", "dask": "dask"}
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
        raise ClosureError(f"{what} needs {', '.join(missing)} (the 'demo' extra), not installed in this "
                           "environment; install it with: pip install " + " ".join(repr(m) for m in missing))


def say(i, text):
    """The line that starts step ``i``."""
    print(f"[{i}/{STEPS}] {text}", flush=True)


def claim(held, detail):
    """One claim of a report: whether it held, and the numbers that say so."""
    return {"held": bool(held), "detail": detail}


def claims_table(claims):
    """Markdown lines: one row per claim, whether it held and its detail."""
    return (["| claim | held | detail |", "|---|---|---|"]
            + [f"| {k} | {'yes' if c['held'] else 'NO'} | {c['detail']} |" for k, c in claims.items()])


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
    print(f"{command}: {'all claims held' if not failed else 'FAILED'}; wrote {out}; "
          f"total {time.perf_counter() - t_start:.1f} s")
    return 0 if not failed else 1
