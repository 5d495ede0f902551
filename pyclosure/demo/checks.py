"""The demo's runs and checks: twin scoring, export, coupled Fortran runs, budgets, claims."""

import dataclasses
import json
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import export
from . import coupled, report, twin

SNAP = 5  # LES steps per snapshot (every = 0.2 time units at dt = 0.04)


def config(d, seed, closure="none"):
    """LES configuration matching the data's physics and forcing, with ``seed``."""
    return twin.BurgersConfig(n=int(d["n_les"]), length=float(d["length"]),
                              nu=float(d["nu"]), dt=float(d["dt_les"]), seed=int(seed),
                              force_amp=float(d["force_amp"]), kmin=int(d["kmin"]),
                              kmax=int(d["kmax"]), force_tau=float(d["force_tau"]),
                              closure=closure)


def _twin_traj(cfg, u0, nsteps, closure):
    with torch.no_grad():
        _, snaps = twin.run(torch.as_tensor(u0)[None], nsteps, cfg, closure=closure,
                            every=SNAP)
    return torch.stack(snaps)[:, 0].numpy()


def twin_scores(model, d, s):
    """Short-term RMSE and long-run spectrum error of ``model`` run in the torch twin."""
    model.eval()
    les = [_twin_traj(config(d, seed), seg[0], round(s.horizon / s.dt_les), model)
           for seed, seg in zip(d["seg_seeds"], d["seg_u"])]
    long = _twin_traj(config(d, d["test_seed"]), d["test_u"][0],
                      round(s.t_long / s.dt_les), model)
    err = report.rmse_by_lead(np.array(les), d["seg_u"])
    finite = bool(np.isfinite(long).all() and np.isfinite(err).all())
    return {"short_term_rmse": float(err[1:].mean()) if finite else float("inf"),
            "spectrum_error": report.spectrum_error(long, d["test_u"]) if finite
            else float("inf")}


def export_closure(model, path, d, target):
    """Export ``model`` (float64, any number of cells) with its contract; return it."""
    example = torch.as_tensor(d["test_u"][:1])
    return export(model, path, example, variable_dims={"x": [0]},
                  meaning={"flux": {"kind": "flux_at_faces", "boundary": "periodic",
                                    "face": "left face of cell j", "dx": float(model.dx)}},
                  units={"x": "model velocity units (cell means of u)",
                         "flux": "velocity units squared (subgrid flux of u at faces)"},
                  training_data=(d["u"], d[target]),
                  extra={"target": target, "demo": "forced Burgers, DNS 4096 -> LES 128"})


def coupled_runs(out, d, s):
    """Fortran runs of all closures: forecast segments and one long run each."""
    model = (out / "closure.pt").resolve()
    nseg_steps, nlong = round(s.horizon / s.dt_les), round(s.t_long / s.dt_les)
    errors, long, finite, spectra = {}, {}, {}, {"dns": report.spectrum(d["test_u"])}
    jobs = [(c, i) for c in report.CLOSURES for i in range(s.nseg + 1)]
    segs = {c: [] for c in report.CLOSURES}
    for c, i in tqdm(jobs, desc="burgers_les runs", leave=False):
        if i < s.nseg:  # the first nn segment records its closure calls for replay
            r = coupled.run_fortran(out / "runs" / f"{c}_seg{i}",
                                    config(d, d["seg_seeds"][i], c), d["seg_u"][i, 0],
                                    nseg_steps, SNAP, model, s.threads,
                                    record_every=s.record_every if (c, i) == ("nn", 0) else None)
            segs[c].append(r)
        else:
            long[c] = coupled.run_fortran(out / "runs" / f"{c}_long",
                                          config(d, d["test_seed"], c), d["test_u"][0],
                                          nlong, SNAP, model, s.threads)
    for c in report.CLOSURES:
        finite[c] = all(r["ok"] for r in segs[c]) and long[c]["ok"]
        if finite[c]:
            errors[c] = report.rmse_by_lead(np.array([r["u"] for r in segs[c]]), d["seg_u"])
            spectra[c] = report.spectrum(long[c]["u"])
        else:
            errors[c] = np.full(d["seg_u"].shape[1], np.inf)
            spectra[c] = np.full_like(spectra["dns"], np.nan)
            bad = next(r for r in segs[c] + [long[c]] if not r["ok"])
            print(f"      {c}: a run failed (status {bad['returncode']}): "
                  f"{bad['log'].strip()[-300:]}")
    lead = np.arange(d["seg_u"].shape[1]) * s.every
    return {"errors": errors, "long": long, "finite": finite, "spectra": spectra,
            "lead": lead}


def _core_drift(d, s, closure):
    """Worst momentum drift ratio of the f90wrap core over the long run."""
    from pyclosure.burgers_core import burgers_core as core

    cfg = config(d, d["test_seed"], closure)
    core.init(cfg.n, cfg.length, cfg.nu, cfg.dt, cfg.seed, cfg.force_amp, cfg.kmin,
              cfg.kmax, cfg.force_tau)
    core.set_closure(closure, cfg.cs, cfg.scheme)
    core.set_state(d["test_u"][0])
    m0 = math.fsum(np.array(core.u).tolist()) * cfg.dx
    ratio, worst = 0.0, 0.0
    for _ in range(round(s.t_long / s.dt_les) // SNAP):
        core.step(SNAP)
        drift = math.fsum(np.array(core.u).tolist()) * cfg.dx - m0 - core.mom_forcing
        ratio = max(ratio, abs(drift) / (8.0 * coupled.EPS * core.mom_scale))
        worst = max(worst, abs(drift))
    return ratio, worst


def budget_and_twin(out, d, s, runs):
    """Momentum budget of the coupled runs and the Fortran-vs-twin comparison."""
    cfg = config(d, d["test_seed"])
    nlong = round(s.t_long / s.dt_les)
    u_twin, account = coupled.run_twin(cfg, d["test_u"][0], nlong, SNAP,
                                       coupled.jit_closure(out / "closure.pt"))
    u_f = runs["long"]["nn"]["u"]
    n = min(len(u_f), len(u_twin))
    diff = float(np.abs(u_f[:n] - u_twin[:n]).max()) if n else float("inf")
    np.save(out / "runs" / "nn_long" / "twin.npy", u_twin)
    ratios = {"nn": coupled.momentum_drift(u_f, account, cfg) if n == len(u_twin)
              else (float("inf"), float("inf"))}
    for c in ("none", "smagorinsky"):
        ratios[c] = _core_drift(d, s, c)
    momentum = {
        "worst_ratio": max(r for r, _ in ratios.values()),
        "worst_drift": max(w for _, w in ratios.values()),
        "per_closure": {c: {"ratio": r, "drift": w} for c, (r, w) in ratios.items()},
        "fortran_final_drift": {c: runs["long"][c]["drift"] for c in report.CLOSURES},
        "what": ("drift = dx*fsum(u_t) - dx*fsum(u_0) - forcing_t at every snapshot of the "
                 "long run, bound 8 eps mom_scale; nn: the burgers_les trajectory with "
                 "forcing_t and mom_scale replayed by the twin (twin.Forcing, exported "
                 "closure); none/smagorinsky: the f90wrap core's mom_forcing and mom_scale"),
    }
    agreement = {"max_abs_diff": diff, "nsteps": nlong, "tolerance": s.tolerance,
                 "bit_for_bit": diff == 0.0, "threads": s.threads,
                 "snapshots_compared": n}
    return momentum, agreement


def replay_records(out):
    """Replay the recorded nn segment through the bridge and torch; the report's summary."""
    from ..replay import replay

    rec = out / "runs" / "nn_seg0" / "records"
    rep = replay(rec, out / "closure.pt")
    (rec / "replay_report.json").write_text(json.dumps(rep, indent=1) + "\n")
    worst = max((r["budget"]["budget"]["domain_residual"] / r["budget"]["budget"]["domain_bound"]
                 for r in rep["records"] if (r.get("budget") or {}).get("budget", {}).get("domain_bound")),
                default=float("nan"))
    return {**rep["summary"], "worst_domain_residual_over_bound": worst,
            "report": str((rec / "replay_report.json").relative_to(out))}


def _claim(held, detail):
    return {"held": bool(held), "detail": detail}


def assemble(s, d, best, targets, runs, momentum, agreement, records):
    """Results dict (JSON-ready) with scores and the claims."""
    closures = {}
    for c in report.CLOSURES:
        fin = runs["finite"][c]
        closures[c] = {"short_term_rmse": float(runs["errors"][c][1:].mean()),
                       "spectrum_error": report.spectrum_error(runs["long"][c]["u"],
                                                               d["test_u"])
                       if fin else float("inf"), "finite": fin,
                       "rmse_by_lead": runs["errors"][c].tolist()}
    no, sm, nn = (closures[c] for c in report.CLOSURES)
    claims = {
        "short_term": _claim(nn["short_term_rmse"] < min(no["short_term_rmse"],
                                                         sm["short_term_rmse"]),
                             f"nn {nn['short_term_rmse']:.4g} vs none "
                             f"{no['short_term_rmse']:.4g}, smagorinsky "
                             f"{sm['short_term_rmse']:.4g}"),
        "spectrum": _claim(nn["spectrum_error"] < min(no["spectrum_error"],
                                                      sm["spectrum_error"]),
                           f"nn {nn['spectrum_error']:.4g} vs none "
                           f"{no['spectrum_error']:.4g}, smagorinsky "
                           f"{sm['spectrum_error']:.4g}"),
        "finite": _claim(all(runs["finite"].values()), f"{runs['finite']}"),
        "momentum": _claim(momentum["worst_ratio"] < 1.0,
                           f"worst drift/bound {momentum['worst_ratio']:.3g} < 1"),
        "fortran_vs_twin": _claim(agreement["max_abs_diff"] <= agreement["tolerance"],
                                  f"max |diff| {agreement['max_abs_diff']:.3g} <= "
                                  f"{agreement['tolerance']:g}"),
        "replay": _claim(records["ok"] and records["equal"] == records["records"]
                         and records["budgets_closed"] == records["records"],
                         f"{records['equal']}/{records['records']} records bit for bit through the bridge "
                         f"and torch, budgets closed {records['budgets_closed']}/{records['records']}"),
    }
    return {"settings": dataclasses.asdict(s) | {"t_long": s.t_long, "n_dns": s.n_dns},
            "target": best, "targets": targets, "closures": closures,
            "lead_times": runs["lead"].tolist(), "momentum": momentum,
            "fortran_vs_twin": agreement, "claims": claims,
            "records": records}
