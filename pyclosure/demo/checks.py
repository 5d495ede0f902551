"""The demo's runs and checks: twin scoring, export, coupled Fortran runs, budgets, replay, claims."""

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import export
from .._pt2 import cache_dir
from . import coupled, report, twin
from .common import claim, replay_into

SNAP = 5  # LES steps per snapshot (every = 0.2 time units at dt = 0.04)


def config(d, seed, closure="none"):
    """LES configuration matching the data's physics and forcing, with ``seed``."""
    return twin.BurgersConfig(
        n=int(d["n_les"]),
        length=float(d["length"]),
        nu=float(d["nu"]),
        dt=float(d["dt_les"]),
        seed=int(seed),
        force_amp=float(d["force_amp"]),
        kmin=int(d["kmin"]),
        kmax=int(d["kmax"]),
        force_tau=float(d["force_tau"]),
        closure=closure,
    )


def _twin_traj(cfg, u0, nsteps, closure):
    with torch.no_grad():
        _, snaps = twin.run(torch.as_tensor(u0)[None], nsteps, cfg, closure=closure, every=SNAP)
    return torch.stack(snaps)[:, 0].numpy()


def twin_scores(model, d, s):
    """Short-term RMSE and long-run spectrum error of ``model`` run in the torch twin."""
    model.eval()
    les = [
        _twin_traj(config(d, seed), seg[0], round(s.horizon / s.dt_les), model)
        for seed, seg in zip(d["seg_seeds"], d["seg_u"])
    ]
    long = _twin_traj(config(d, d["test_seed"]), d["test_u"][0], round(s.t_long / s.dt_les), model)
    err = report.rmse_by_lead(np.array(les), d["seg_u"])
    finite = bool(np.isfinite(long).all() and np.isfinite(err).all())
    return {
        "short_term_rmse": float(err[1:].mean()) if finite else float("inf"),
        "spectrum_error": report.spectrum_error(long, d["test_u"]) if finite else float("inf"),
    }


def export_closure(model, path, d, target, timings=None):
    """Export ``model`` (float64, any number of cells) with its contract to ``path``; return the contract.

    The suffix picks the format: ``.pt2`` an AOTInductor package, ``.pt`` TorchScript.
    ``timings`` is filled as :func:`pyclosure.export` fills it.
    """
    example = torch.as_tensor(d["test_u"][:1])
    return export(
        model,
        path,
        example,
        variable_dims={"x": [0]},
        meaning={
            "flux": {
                "kind": "flux_at_faces",
                "boundary": "periodic",
                "face": "left face of cell j",
                "dx": float(model.dx),
            }
        },
        units={
            "x": "model velocity units (cell means of u)",
            "flux": "velocity units squared (subgrid flux of u at faces)",
        },
        training_data=(d["u"], d[target]),
        extra={"target": target, "demo": "forced Burgers, DNS 4096 -> LES 128"},
        timings=timings,
    )


def export_closures(model, out, d, target, s):
    """``s.package`` (``closure.pt2`` or ``closure.nnp``: the file every run uses) and ``closure.pt``
    (TorchScript, the eager reference).

    Returns the report's ``export`` entry: seconds of the export (and of the
    AOTInductor compile), the package's engine and accepted grid sizes, and the
    TorchScript export's seconds; both files hold the same weights (checked).
    """
    package, reference = {}, {}
    contract = export_closure(model, out / s.package, d, target, package)
    ref_contract = export_closure(model, out / "closure.pt", d, target, reference)
    if ref_contract["weights_sha256"] != contract["weights_sha256"]:
        raise RuntimeError(f"closure.pt and {s.package} hold different weights")
    cells = contract["inputs"][0].get("ranges", [[1, None]])[0]
    return {
        "package": s.package,
        "format": contract["format"],
        "export_s": package["export_s"],
        "compile_s": package.get("compile_s"),
        "engine": contract["engine"],
        "cells": cells,
        "weights_sha256": contract["weights_sha256"],
        "cache_dir": cache_dir() if s.engine == "pt2" else None,
        "reference": "closure.pt",
        "reference_export_s": reference["export_s"],
    }


def coupled_runs(out, d, s):
    """Fortran runs of all closures: forecast segments and one long run each."""
    model = (out / s.package).resolve()
    nseg_steps, nlong = round(s.horizon / s.dt_les), round(s.t_long / s.dt_les)
    errors, long, finite, spectra = {}, {}, {}, {"dns": report.spectrum(d["test_u"])}
    jobs = [(c, i) for c in report.CLOSURES for i in range(s.nseg + 1)]
    segs = {c: [] for c in report.CLOSURES}
    for c, i in tqdm(jobs, desc="burgers_les runs", leave=False):
        if i < s.nseg:  # the first nn segment records its closure calls for replay
            r = coupled.run_fortran(
                out / "runs" / f"{c}_seg{i}",
                config(d, d["seg_seeds"][i], c),
                d["seg_u"][i, 0],
                nseg_steps,
                SNAP,
                model,
                s.threads,
                record_every=s.record_every if (c, i) == ("nn", 0) else None,
            )
            segs[c].append(r)
        else:
            long[c] = coupled.run_fortran(
                out / "runs" / f"{c}_long",
                config(d, d["test_seed"], c),
                d["test_u"][0],
                nlong,
                SNAP,
                model,
                s.threads,
            )
    for c in report.CLOSURES:
        finite[c] = all(r["ok"] for r in segs[c]) and long[c]["ok"]
        if finite[c]:
            errors[c] = report.rmse_by_lead(np.array([r["u"] for r in segs[c]]), d["seg_u"])
            spectra[c] = report.spectrum(long[c]["u"])
        else:
            errors[c] = np.full(d["seg_u"].shape[1], np.inf)
            spectra[c] = np.full_like(spectra["dns"], np.nan)
            bad = next(r for r in segs[c] + [long[c]] if not r["ok"])
            print(f"      {c}: a run failed (status {bad['returncode']}): {bad['log'].strip()[-300:]}")
    lead = np.arange(d["seg_u"].shape[1]) * s.every
    return {"errors": errors, "long": long, "finite": finite, "spectra": spectra, "lead": lead}


def coupled_momentum(folder):
    """Momentum budget of the coupled run in ``folder``, from the run's own output.

    The states are the run's trajectory (``traj.bin``, written by ``burgers_les``);
    the forcing put in and the rounding scale are the run's momentum account
    (``momentum_account.json`` beside it, see :func:`budget_and_twin`). Returns
    ``(worst |drift| / (8 eps scale), worst |drift|)`` over the snapshots, both
    infinite when the trajectory and the account do not cover the same snapshots.
    """
    folder = Path(folder)
    _, u = coupled.read_trajectory(folder / "traj.bin")
    account = json.loads((folder / "momentum_account.json").read_text())
    if len(u) != len(account["momentum"]):
        return float("inf"), float("inf")
    return coupled.momentum_drift(u, account, types.SimpleNamespace(dx=account["dx"]))


def budget_and_twin(out, d, s, runs):
    """Momentum budget of each long coupled run, and the Fortran-vs-twin comparison.

    For each closure the torch twin replays the long run (same initial state,
    forcing and closure) to give its momentum account: the forcing's momentum
    (state-independent, the core's own generator) and the rounding scale of the
    update terms. The budget itself is taken from the coupled run's trajectory.
    """
    nlong = round(s.t_long / s.dt_les)
    net = coupled.package_closure(out / s.package)
    per_closure, twin_diff = {}, {}
    for c in report.CLOSURES:
        cfg = config(d, d["test_seed"], c)
        folder = out / "runs" / f"{c}_long"
        u_twin, account = coupled.run_twin(cfg, d["test_u"][0], nlong, SNAP, net if c == "nn" else None)
        (folder / "momentum_account.json").write_text(json.dumps({**account, "dx": cfg.dx}) + "\n")
        u_f = runs["long"][c]["u"]
        n = min(len(u_f), len(u_twin))
        twin_diff[c] = (float(np.abs(u_f[:n] - u_twin[:n]).max()) if n else float("inf"), n)
        ratio, worst = coupled_momentum(folder)
        per_closure[c] = {
            "ratio": ratio,
            "drift": worst,
            "trajectory": f"runs/{c}_long/traj.bin",
            "twin_max_abs_diff": twin_diff[c][0],
        }
        if c == "nn":
            np.save(folder / "twin.npy", u_twin)
    momentum = {
        "worst_ratio": max(r["ratio"] for r in per_closure.values()),
        "worst_drift": max(r["drift"] for r in per_closure.values()),
        "per_closure": per_closure,
        "fortran_final_drift": {c: runs["long"][c]["drift"] for c in report.CLOSURES},
        "what": (
            "drift = dx*fsum(u_t) - dx*fsum(u_0) - forcing_t at every snapshot of each long coupled "
            "run's own trajectory (runs/<closure>_long/traj.bin, written by burgers_les), bound 8 eps "
            "mom_scale; forcing_t and mom_scale from the torch twin's replay of the same run "
            "(runs/<closure>_long/momentum_account.json). A check of the host's flux-form update and "
            "of the coupling: the closure's face fluxes cancel in the sum whatever finite values they "
            "take, so it cannot fail because of what the learned closure returns"
        ),
    }
    diff, n = twin_diff["nn"]
    agreement = {
        "max_abs_diff": diff,
        "nsteps": nlong,
        "tolerance": s.tolerance,
        "bit_for_bit": diff == 0.0,
        "threads": s.threads,
        "snapshots_compared": n,
    }
    return momentum, agreement


def replay_records(out, s):
    """Replay the recorded nn segment through the bridge and the package's Python runner (Python's
    AOTInductor loader, or the native kernels' cffi twin); its summary.

    ``closure.pt`` (TorchScript of the same weights: eager torch's arithmetic) is
    run on the recorded inputs as well; its largest relative difference from the
    recorded outputs is information, not a check (neither inductor's nor the native
    kernels are eager torch's).
    """
    rec = out / "runs" / "nn_seg0" / "records"
    rep = replay_into(rec, out / s.package, reference=out / "closure.pt")
    worst = max(
        (
            r["budget"]["budget"]["domain_residual"] / r["budget"]["budget"]["domain_bound"]
            for r in rep["records"]
            if (r.get("budget") or {}).get("budget", {}).get("domain_bound")
        ),
        default=float("nan"),
    )
    refs = [r["reference"] for r in rep["records"] if "max_rel_diff" in (r.get("reference") or {})]
    reference = {
        "model": "closure.pt",
        "records_run": len(refs),
        "records_equal": sum(bool(r["equal"]) for r in refs),
        "max_rel_diff": max((r["max_rel_diff"] for r in refs), default=float("nan")),
    }
    return {
        **rep["summary"],
        "engine": rep["engine"],
        "recorded_engines": sorted({r["recorded_engine"] for r in rep["records"] if "recorded_engine" in r}),
        "worst_domain_residual_over_bound": worst,
        "reference": reference,
        "report": str((rec / "replay_report.json").relative_to(out)),
    }


def _momentum_detail(momentum):
    ratios = ", ".join(f"{c} {r['ratio']:.3g}" for c, r in momentum["per_closure"].items())
    return (
        f"each long coupled run's own trajectory keeps momentum to the forcing's within rounding: "
        f"drift/bound {ratios} (< 1); checks the host's flux-form update, which conserves whatever "
        f"finite fluxes the closure returns"
    )


def assemble(s, d, best, targets, runs, momentum, agreement, records, exported):
    """Results dict (JSON-ready) with scores and the claims."""
    closures = {}
    for c in report.CLOSURES:
        fin = runs["finite"][c]
        closures[c] = {
            "short_term_rmse": float(runs["errors"][c][1:].mean()),
            "spectrum_error": report.spectrum_error(runs["long"][c]["u"], d["test_u"])
            if fin
            else float("inf"),
            "finite": fin,
            "rmse_by_lead": runs["errors"][c].tolist(),
        }
    no, sm, nn = (closures[c] for c in report.CLOSURES)
    claims = {
        "short_term": claim(
            nn["short_term_rmse"] < min(no["short_term_rmse"], sm["short_term_rmse"]),
            f"nn {nn['short_term_rmse']:.4g} vs none "
            f"{no['short_term_rmse']:.4g}, smagorinsky "
            f"{sm['short_term_rmse']:.4g}",
        ),
        "spectrum": claim(
            nn["spectrum_error"] < min(no["spectrum_error"], sm["spectrum_error"]),
            f"nn {nn['spectrum_error']:.4g} vs none "
            f"{no['spectrum_error']:.4g}, smagorinsky "
            f"{sm['spectrum_error']:.4g}",
        ),
        "finite": claim(all(runs["finite"].values()), f"{runs['finite']}"),
        "momentum": claim(momentum["worst_ratio"] < 1.0, _momentum_detail(momentum)),
        "fortran_vs_twin": claim(
            agreement["max_abs_diff"] <= agreement["tolerance"],
            f"max |diff| {agreement['max_abs_diff']:.3g} <= {agreement['tolerance']:g}",
        ),
        "replay": claim(
            records["ok"]
            and records["equal"] == records["records"]
            and records["budgets_closed"] == records["records"]
            and records["engine"] == s.engine_name
            and records["recorded_engines"] == [s.engine_name],
            f"{records['equal']}/{records['records']} records of the {records['engine']} "
            f"package bit for bit through the bridge and {s.python_runner}, "
            f"budgets closed {records['budgets_closed']}/{records['records']}",
        ),
    }
    return {
        "settings": dataclasses.asdict(s)
        | {"t_long": s.t_long, "n_dns": s.n_dns, "package": s.package, "python_runner": s.python_runner},
        "target": best,
        "targets": targets,
        "closures": closures,
        "lead_times": runs["lead"].tolist(),
        "momentum": momentum,
        "fortran_vs_twin": agreement,
        "claims": claims,
        "records": records,
        "export": exported,
    }
