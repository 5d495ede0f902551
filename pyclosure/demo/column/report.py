"""Numbers, claims, the text report and the figure of the column example."""

import numpy as np

from ..common import claim, claims_table, replay_into, write_report
from . import data, learn

DAY = 86400.0


def replay_records(rec, model):
    """Replay the recorded calls of the native run (bridge and cffi twin, bit for bit, and the
    energy budget of every recorded column); its summary, with the worst residual over its bound."""
    rep = replay_into(rec, model)
    budgets = [r["budget"]["budget"] for r in rep["records"] if (r.get("budget") or {}).get("budget")]
    worst = max(
        (b["domain_departure"] / b["domain_bound"] for b in budgets if b.get("domain_bound")), default=0.0
    )
    columns = sum(
        int(np.load(r["file"], allow_pickle=False)["in.x"].shape[-1])
        for r in rep["records"]
        if r["status"] != "partial"
    )
    return {
        **rep["summary"],
        "columns": columns,
        "worst_departure_over_bound": worst,
        "cells_exact": sum(b["cells_exact"] for b in budgets),
        "cells": sum(b["cells"] for b in budgets),
    }


def states(run, rh0, p_int):
    """Inputs x (snapshots * columns, 2 nlev + 1) of a run's snapshots."""
    t = run["t"].reshape(-1, run["t"].shape[-1])
    ts = np.tile(run["ts"], run["t"].shape[0])
    return np.concatenate([t, data.humidity(t, rh0, p_int), ts[:, None]], axis=1)


def heating_error(model, x, s, p_int, dx):
    """RMSE and max |error| (K day-1) of the emulator's heating rates against the scheme's on states x,
    and the RMS of the scheme's heating rates."""
    nlev = s.nlev
    ref = learn.heating(data.fluxes(x[:, :nlev], x[:, nlev : 2 * nlev], x[:, 2 * nlev], s.nband, p_int), dx)
    err = learn.heating(learn.predict(model, x), dx) - ref
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "max": float(np.abs(err).max()),
        "rms_heating": float(np.sqrt(np.mean(ref**2))),
        "baseline": 0.0,
    }


def profile_difference(a, b):
    """RMS and max |difference| (K) of two runs' final states."""
    d = a["t"][-1] - b["t"][-1]
    return {"rms": float(np.sqrt(np.mean(d**2))), "max": float(np.abs(d).max())}


def drift(run):
    """Change over the last quarter of a run: max |t(end) - t(3/4)| (K)."""
    n = run["t"].shape[0]
    return float(np.abs(run["t"][-1] - run["t"][(3 * (n - 1)) // 4]).max())


#: Each emulator run and the scheme run of the same columns.
VERSUS = {"nn": "scheme", "guarded": "scheme", "nn_warm": "scheme_warm", "guarded_warm": "scheme_warm"}
RUN = {
    "nn": "emulator (native)",
    "guarded": "guarded emulator, ood=fallback (TorchScript)",
    "nn_warm": "warmer, moister: emulator (native)",
    "guarded_warm": "warmer, moister: guarded emulator, ood=fallback (TorchScript)",
}


def assemble(s, d, model, coupled, replayed, cost, exported, hist):
    """All numbers and the claims, JSON-ready."""
    p_int, dx = d["p_int"], d["dx"]
    sch, nn = coupled["scheme"], coupled["nn"]
    heat_scheme = heating_error(model, states(sch, s.rh0, p_int), s, p_int, dx)
    heat_nn = heating_error(model, states(nn, s.rh0, p_int), s, p_int, dx)
    steady = profile_difference(nn, sch)
    drifts = {k: drift(v) for k, v in coupled.items() if v["ok"]}
    versus = {
        k: profile_difference(coupled[k], coupled[ref])
        for k, ref in VERSUS.items()
        if coupled[k]["ok"] and coupled[ref]["ok"]
    }
    gw, gc = coupled["guarded_warm"]["stats"], coupled["guarded"]["stats"]
    native = cost.get("nnp", {})
    faster = {n: c["nn"] < c["scheme"] for n, c in native.items() if n >= 8}
    claims = {
        "native_faster_than_scheme_from_nproma_8": claim(
            faster and all(faster.values()),
            ", ".join(f"nproma {n}: {native[n]['scheme'] / native[n]['nn']:.1f}x" for n in sorted(native)),
        ),
        "coupled_runs_finite": claim(
            all(v["ok"] for v in coupled.values()),
            ", ".join(k for k, v in coupled.items() if not v["ok"]) or "all finite",
        ),
        "steady_state_close_to_scheme": claim(
            nn["ok"] and steady["rms"] < 1.0 and steady["max"] < 3.0,
            f"final state of the emulator run against the scheme run: RMS {steady['rms']:.3f} K, max "
            f"{steady['max']:.3f} K (limits 1 K, 3 K)",
        ),
        "energy_budget_closes_in_every_recorded_column": claim(
            replayed["ok"]
            and replayed["budgets_checked"] > 0
            and replayed["budgets_closed"] == replayed["budgets_checked"] == replayed["records"],
            f"{replayed['budgets_closed']}/{replayed['budgets_checked']} records ({replayed['columns']} columns), "
            f"{replayed['equal']} bit for bit; worst domain departure {replayed['worst_departure_over_bound']:.2g}"
            " of its rounding bound",
        ),
        "flagged_columns_get_the_scheme_fluxes": claim(
            gw.get("ood_columns", 0) > 0
            and gw.get("fallback_columns")
            == gw.get("host_fallbacks")
            == gw.get("host_fallbacks_exact")
            == gw.get("ood_columns"),
            f"perturbed run: {gw.get('ood_columns')} of {gw.get('columns')} columns flagged, "
            f"{gw.get('fallback_columns')} fell back, {gw.get('host_fallbacks_exact')} equal to the scheme's "
            f"fluxes bit for bit; control run: {gc.get('ood_columns')} of {gc.get('columns')} flagged",
        ),
    }
    return {
        "settings": s.asdict(),
        "samples": int(d["x"].shape[0]),
        "epochs": len(hist.train),
        "heating_scheme_states": heat_scheme,
        "heating_nn_states": heat_nn,
        "steady": steady,
        "drift": drifts,
        "versus_scheme": versus,
        "guard": {"control": gc, "warm": gw},
        "replay": replayed,
        "cost": {e: {str(k): v for k, v in c.items()} for e, c in cost.items()},
        "export_s": exported,
        "claims": claims,
    }


ENGINE = {"nnp": "native .nnp", "pt": "TorchScript .pt", "pt2": "AOTInductor .pt2"}


def cost_table(results):
    """Markdown rows: seconds per block of the scheme and of each engine, and the speed-up."""
    rows = [
        "| nproma | scheme (s/block) | "
        + " | ".join(f"{ENGINE[e]} (s/block, speed-up)" for e in results["cost"])
        + " |",
        "|---|---|" + "---|" * len(results["cost"]),
    ]
    first = next(iter(results["cost"].values()))
    for n in first:
        cells = [f"{c[n]['nn']:.3g} ({c[n]['scheme'] / c[n]['nn']:.2f}x)" for c in results["cost"].values()]
        rows.append(f"| {n} | {first[n]['scheme']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def slower_than_scheme(cost):
    """One sentence per engine: the nproma at which it is slower than the scheme, if any."""
    parts = []
    for e, c in cost.items():
        slow = [n for n in c if c[n]["nn"] >= c[n]["scheme"]]
        parts.append(
            f"{ENGINE[e]}: "
            + (
                f"slower than the scheme at nproma {', '.join(map(str, slow))}"
                if slow
                else "faster than the scheme at every nproma"
            )
        )
    return "; ".join(parts) + "."


def write(out, results):
    """Write report.json and report.md; return the markdown."""
    h1, h2, r = results["heating_scheme_states"], results["heating_nn_states"], results["replay"]
    w, g = results["versus_scheme"], results["guard"]
    lines = [
        "# Column example: longwave scheme and its flux-form emulator",
        "",
        f"{results['samples']} training states, {results['epochs']} epochs. Heating rates in K/day; the "
        "baseline (the scheme against itself) is 0 for every error below.",
        "",
        "| quantity | emulator | baseline (no emulator error) |",
        "|---|---|---|",
        f"| heating-rate RMSE on the scheme run's states | {h1['rmse']:.4f} (max {h1['max']:.3f}) | 0 "
        f"(RMS heating {h1['rms_heating']:.3f}) |",
        f"| heating-rate RMSE on the emulator run's states | {h2['rmse']:.4f} (max {h2['max']:.3f}) | 0 |",
        f"| drift over the last quarter of the run, max (K) | {results['drift'].get('nn', float('nan')):.2e} | "
        f"{results['drift'].get('scheme', float('nan')):.2e} (the scheme run's own) |",
    ]
    for k, v in w.items():
        lines.append(
            f"| final state of the run '{RUN[k]}' against the scheme's, RMS / max (K) | {v['rms']:.4f} / "
            f"{v['max']:.4f} | 0 / 0 |"
        )
    lines += [
        "",
        f"Energy budget on replay: {r['budgets_closed']}/{r['budgets_checked']} records closed "
        f"({r['columns']} columns, every cell of the update bit for bit: {r['cells_exact']}/{r['cells']}); "
        f"worst column departure {r['worst_departure_over_bound']:.2g} of its rounding bound; "
        f"{r['equal']}/{r['records']} records replay bit for bit.",
        "",
        f"Guard (ood=fallback): control run {g['control'].get('ood_columns')} of "
        f"{g['control'].get('columns')} columns flagged; warmer, moister run "
        f"{g['warm'].get('ood_columns')} of {g['warm'].get('columns')} flagged, "
        f"{g['warm'].get('fallback_columns')} fell back to the scheme, "
        f"{g['warm'].get('host_fallbacks_exact')} with its fluxes bit for bit.",
        "",
        "Cost per block of nproma columns (one thread, median of interleaved rounds; speed-up = scheme / "
        "emulator, below 1 means slower than the scheme):",
        "",
        cost_table(results),
        "",
        slower_than_scheme(results["cost"]),
        "",
    ]
    lines += claims_table(results["claims"])
    text = "\n".join(lines) + "\n"
    write_report(out, results, text)
    return text


def figure(path, results, coupled):
    """report.png: steady profiles, heating-rate error, cost per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    sch, nn = coupled["scheme"], coupled["nn"]
    lev = np.arange(1, sch["t"].shape[-1] + 1)
    for j, c in ((0, "C0"), (sch["t"].shape[1] - 1, "C3")):
        ax[0].plot(sch["t"][-1, j], lev, c, label=f"scheme, ts {sch['ts'][j]:.0f} K")
        ax[0].plot(nn["t"][-1, j], lev, c + "--", label="emulator (native)")
    ax[0].invert_yaxis()
    ax[0].set(xlabel="temperature (K)", ylabel="layer (1 = top)", title="steady state")
    ax[0].legend(fontsize=8)
    diff = nn["t"][-1] - sch["t"][-1]
    ax[1].plot(np.sqrt(np.mean(diff**2, axis=0)), lev, label="emulator - scheme, RMS over columns")
    if "guarded_warm" in results["versus_scheme"]:
        dw = coupled["nn_warm"]["t"][-1] - coupled["scheme_warm"]["t"][-1]
        dg = coupled["guarded_warm"]["t"][-1] - coupled["scheme_warm"]["t"][-1]
        ax[1].plot(np.sqrt(np.mean(dw**2, axis=0)), lev, label="perturbed: plain emulator")
        ax[1].plot(np.sqrt(np.mean(dg**2, axis=0)), lev, label="perturbed: guarded, fallback")
    ax[1].invert_yaxis()
    ax[1].set(xlabel="K", title="final-state difference from the scheme run")
    ax[1].legend(fontsize=8)
    for e, c in results["cost"].items():
        n = sorted(c, key=int)
        ax[2].loglog([int(k) for k in n], [c[k]["nn"] for k in n], "o-", label=ENGINE[e])
    first = next(iter(results["cost"].values()))
    n = sorted(first, key=int)
    ax[2].loglog([int(k) for k in n], [first[k]["scheme"] for k in n], "ks-", label="Fortran scheme")
    ax[2].set(xlabel="nproma", ylabel="seconds per block", title="cost per block (1 thread)")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
