"""``pyclosure demo --example column``: emulate a Fortran radiation scheme in a column model.

Steps (everything is written into ``out``):

1. training states from scheme-driven runs of the host physics and the scheme's fluxes,
   through the f90wrap module of the Fortran code (``data.npz``);
2. training of a float64 flux-form emulator (an MLP predicting the net flux at the
   nlev + 1 interfaces) and of a Mahalanobis guard on its inputs;
3. exports: ``column.nnp`` (native engine), ``column.pt`` (TorchScript), ``column.pt2``
   (AOTInductor) of the same weights, and ``column_guarded.pt`` (emulator + OOD score);
4. coupled Fortran runs (``column_scm``, blocks of nproma columns): the scheme, the native
   emulator (its calls recorded), and the guarded emulator with ``ood=fallback`` on the
   control columns and on warmer, moister ones (with scheme and plain-emulator runs of those);
5. replay of the recorded calls: bit for bit through the bridge and the cffi twin, and the
   energy budget of every recorded column;
6. cost per block of the scheme and of the emulator on each engine at each nproma;
7. ``report.md``, ``report.json``, ``report.png``.

``run`` returns 0 when every claim held, else 1 (and says which did not).
"""

import time
from pathlib import Path

from ..common import finish, require_extras, say
from . import data, learn, report, runs
from .settings import Settings

__all__ = ["Settings", "run"]


def _coupled(out, s):
    """The coupled runs of step 4: {name: run dict}."""
    lo, hi = s.ts_range
    warm = {"ts_min": lo + s.perturb_dts, "ts_max": hi + s.perturb_dts, "rh0": s.perturb_rh0}
    r = {}
    r["scheme"] = runs.run(out / "runs" / "scheme", s)
    r["nn"] = runs.run(out / "runs" / "nn", s, "nn", out / "column.nnp", record_every=s.record_every)
    r["guarded"] = runs.run(out / "runs" / "guarded", s, "nn", out / "column_guarded.pt", ood="fallback")
    r["scheme_warm"] = runs.run(out / "runs" / "scheme_warm", s, **warm)
    r["nn_warm"] = runs.run(out / "runs" / "nn_warm", s, "nn", out / "column.nnp", **warm)
    r["guarded_warm"] = runs.run(
        out / "runs" / "guarded_warm", s, "nn", out / "column_guarded.pt", ood="fallback", **warm
    )
    for name, v in r.items():
        print(
            f"      {name:13s} {'finite' if v['ok'] else 'FAILED'}"
            + (f"  {v['stats']}" if v["stats"] else "")
        )
        if not v["ok"]:
            print(v["log"][-2000:])
    return r


def run(out="pyclosure-demo-column", quick=False, pt2=True):
    """Run the column example into ``out``; return 0 when all claims held, else 1.

    ``pt2=False`` skips the AOTInductor export and its cost row (a compile of 20-70 s).
    Raises ``ClosureError`` at once, before any work, when the ``demo`` extra is missing."""
    import torch

    from ...bridge import set_num_threads

    require_extras("the column example")

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = Settings.for_quick(pt2=pt2) if quick else Settings.for_full()
    if not pt2:
        s.engines = tuple(e for e in s.engines if e != "pt2")
    seconds = {}
    set_num_threads(1)  # the bridge in this process (replay)
    torch.set_num_threads(1)  # training: on shared cores a second thread spins more than it helps

    say(
        1,
        f"training data from the Fortran scheme (f90wrap): {len(s.train_rh0)} humidities x "
        f"{s.train_columns} columns x {s.train_steps} steps",
    )
    t0 = time.perf_counter()
    d = data.generate(out / "data.npz", s)
    seconds["data"] = time.perf_counter() - t0
    print(f"      {d['x'].shape[0]} states ({seconds['data']:.1f} s)")

    say(
        2,
        f"training the flux-form emulator (MLP {d['x'].shape[1]}-{s.hidden}-{s.hidden}-{s.nlev + 1}) "
        "and its guard",
    )
    t0 = time.perf_counter()
    model, hist = learn.train(d["x"], d["flux"], s)
    guarded = learn.guard(model, d["x"], s.guard_quantile)
    seconds["training"] = time.perf_counter() - t0
    print(
        f"      {len(hist.train)} epochs, best validation loss {min(hist.val):.3g}; guard threshold "
        f"{guarded.guard.threshold:.3g} ({seconds['training']:.1f} s)"
    )

    say(3, f"exports: {', '.join('column.' + e for e in s.engines)}, column_guarded.pt")
    exported = learn.export_all(model, guarded, d["x"], out, s.engines)
    seconds["export"] = sum(exported.values())
    print("      " + ", ".join(f"{k} {v:.1f} s" for k, v in exported.items()))

    say(
        4,
        f"coupled Fortran runs: {s.ncol} columns in blocks of {s.nproma}, {s.nsteps} steps of "
        f"{s.dt / 3600:g} h",
    )
    t0 = time.perf_counter()
    coupled = _coupled(out, s)
    seconds["coupled"] = time.perf_counter() - t0

    say(5, "replay of the recorded emulator calls: bits and energy budgets")
    t0 = time.perf_counter()
    replayed = report.replay_records(out / "runs" / "nn" / "records", out / "column.nnp")
    seconds["replay"] = time.perf_counter() - t0
    print(
        f"      {replayed['equal']}/{replayed['records']} records bit for bit, budgets closed "
        f"{replayed['budgets_closed']}/{replayed['budgets_checked']} ({replayed['columns']} columns)"
    )

    say(6, f"cost per block at nproma {', '.join(map(str, s.bench_nproma))} (one thread)")
    t0 = time.perf_counter()
    cost = {e: runs.bench(out / "bench" / e, s, out / f"column.{e}") for e in s.engines}
    seconds["bench"] = time.perf_counter() - t0

    say(7, "report")
    results = report.assemble(s, d, model, coupled, replayed, cost, exported, hist)
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    text = report.write(out, results)
    report.figure(out / "report.png", results, coupled)
    return finish("pyclosure demo --example column", out, results, text, t_start)
