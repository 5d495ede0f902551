"""``pyclosure demo``: a learned closure for forced Burgers turbulence, end to end.

Steps (everything is written into ``out``):

1. DNS (N = 4096) through the f90wrap core, coarse-grained to N = 128:
   training pairs, a held-out test trajectory and held-out forecast segments
   (``data.npz``); the training pairs also as NetCDF with CF metadata (``train.nc``);
2. a priori training of a float64 flux-form stencil closure on both targets
   ``tau`` and ``tau_fv``, streamed from ``train.nc`` (:mod:`pyclosure.stream`; validated
   on its last time chunks); each is scored with the torch twin (same held-out
   segments and long run as the coupled runs) and the better one is fine-tuned
   a posteriori through the differentiable twin; the better of the two is kept;
3. export to ``closure.pt2`` (an AOTInductor package with its contract, the
   closure every run below calls; with ``engine="native"`` a native program
   ``closure.nnp`` instead, run by the bridge's own C kernels) and to ``closure.pt``
   (TorchScript of the same weights: eager torch's arithmetic, the reference the
   replay compares with);
4. coupled runs of the Fortran program ``burgers_les`` with closures none,
   smagorinsky and nn (in-process through ``nn_closure``) from every segment's
   first state and one long run (``runs/``);
5. momentum budget of the coupled runs;
6. the Fortran nn run against the torch twin running the same package (Python's
   AOTInductor loader, or the native kernels' cffi twin), and a replay of the
   recorded nn calls;
7. ``report.md``, ``report.json``, ``report.png``.

``run`` returns 0 when every claim held, else 1 (and says which did not). The second
example, ``pyclosure demo --example column``, is :mod:`pyclosure.demo.column`; the third,
``pyclosure demo --example online`` (the Burgers LES training its closure while it runs),
is :mod:`pyclosure.demo.online`.
"""

import copy
import time
from pathlib import Path

from . import checks, data, learn, report
from .common import finish, missing_extras, require_extras, say
from .settings import ENGINES, Settings

__all__ = ["missing_extras", "run"]


def _total(score):
    """Selection score: short-term RMSE plus log-spectrum error (twin runs)."""
    return score["short_term_rmse"] + score["spectrum_error"]


def run(out="pyclosure-demo", quick=False, engine="pt2"):
    """Run the demo into ``out``; return 0 when all claims held, else 1.

    ``engine``: what the coupled runs call, ``"pt2"`` (an AOTInductor package) or
    ``"native"`` (a native program). Raises ``ClosureError`` at once, before any work,
    when the ``demo`` extra is missing."""
    import torch

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: the demo runs {' or '.join(map(repr, ENGINES))}")
    require_extras("the demo")

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = Settings.for_quick() if quick else Settings.for_full()
    s.engine = engine
    seconds = {}

    say(
        1,
        f"DNS N={s.n_dns}, {s.spinup + s.t_train + s.t_test + s.nseg * s.horizon:g} "
        f"time units, coarse-grained to N={s.n_les}",
    )
    t0 = time.perf_counter()
    d = data.generate(
        out / "data.npz",
        n_dns=s.n_dns,
        n_les=s.n_les,
        dt_les=s.dt_les,
        spinup=s.spinup,
        t_train=s.t_train,
        train_every=s.every,
        t_test=s.t_test,
        test_every=s.every,
        nseg=s.nseg,
        seg_horizon=s.horizon,
    )
    data.write_netcdf(out / "train.nc", d)
    seconds["data"] = time.perf_counter() - t0
    print(
        f"      train {d['u'].shape}, test {d['test_u'].shape}, segments "
        f"{d['seg_u'].shape} ({seconds['data']:.1f} s)"
    )

    say(2, "a priori training on both targets, each scored with the torch twin")
    t0 = time.perf_counter()
    dx = s.length / s.n_les
    targets, models = {}, {}
    for tgt in ("tau", "tau_fv"):
        model, hist = learn.a_priori(out / "train.nc", tgt, dx, s.epochs)
        score = checks.twin_scores(model, d, s)
        targets[tgt] = {
            "r2": learn.flux_r2(model, d["test_u"], d["test_" + tgt]),
            "epochs": len(hist.train),
            **score,
        }
        models[tgt] = model
        print(
            f"      {tgt:6s}: R^2 {targets[tgt]['r2']:.4f}, twin short-term RMSE "
            f"{score['short_term_rmse']:.4g}, spectrum error {score['spectrum_error']:.4g}"
        )
    best = min(targets, key=lambda t: _total(targets[t]))
    print(
        f"      a posteriori fine-tuning of the {best} closure through the twin "
        f"({s.ap_k} snapshots = {s.ap_k * s.every:g} time units unrolled)"
    )
    tuned = copy.deepcopy(models[best])
    hist = learn.a_posteriori(tuned, d, checks.config(d, d["seed"]), s.ap_k, s.ap_epochs, s.ap_windows)
    post = {
        "r2": learn.flux_r2(tuned, d["test_u"], d["test_" + best]),
        "epochs": len(hist.train),
        **checks.twin_scores(tuned, d, s),
    }
    print(
        f"      a posteriori: twin short-term RMSE {post['short_term_rmse']:.4g}, "
        f"spectrum error {post['spectrum_error']:.4g}"
    )
    name = best + " + a posteriori"
    targets[name], models[name] = post, tuned
    best = name if _total(post) < _total(targets[best]) else best
    seconds["training"] = time.perf_counter() - t0

    say(
        3,
        f"export the {best} closure to {s.package} ({s.engine_name}) and closure.pt (TorchScript reference)",
    )
    t0 = time.perf_counter()
    exported = checks.export_closures(models[best], out, d, best.split()[0], s)
    seconds["export"] = time.perf_counter() - t0
    made = (
        f"torch.export {exported['export_s']:.1f} s, AOTInductor compile {exported['compile_s']:.1f} s "
        f"({exported['engine']['cpu_isa']})"
        if s.engine == "pt2"
        else f"native program {exported['export_s']:.2f} s ({exported['engine']['arith']})"
    )
    print(f"      {made}; TorchScript {exported['reference_export_s']:.1f} s")

    say(4, "coupled Fortran runs (burgers_les): none, smagorinsky, nn")
    t0 = time.perf_counter()
    runs = checks.coupled_runs(out, d, s)
    seconds["coupled"] = time.perf_counter() - t0

    say(5, "momentum budget")
    say(6, "Fortran nn run against the torch twin, and replay of its recorded calls")
    t0 = time.perf_counter()
    torch.set_num_threads(s.threads)
    momentum, agreement = checks.budget_and_twin(out, d, s, runs)
    records = checks.replay_records(out, s)
    print(
        f"      replay of the recorded nn segment: {records['equal']}/{records['records']} records "
        f"bit for bit, budgets closed {records['budgets_closed']}/{records['records']}; closure.pt "
        f"(TorchScript) differs from the records by {records['reference']['max_rel_diff']:.2g} (relative)"
    )
    seconds["checks"] = time.perf_counter() - t0

    say(7, "report")
    results = checks.assemble(s, d, best, targets, runs, momentum, agreement, records, exported)
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    text = report.write(out, results)
    report.figure(
        out / "report.png",
        results,
        runs["spectra"],
        runs["lead"],
        runs["errors"],
        d["test_u"],
        runs["long"]["nn"]["u"],
        s.every,
    )
    return finish("pyclosure demo", out, results, text, t_start)
