"""Claims, report and figure of the online Burgers example.

The error of a window is the RMS of ``u_les - filtered DNS`` over the window's LES steps,
relative to the RMS of the filtered DNS; the LES restarts from the filtered DNS at the
start of every window, so it measures the closure that ran in that window (weight
version ``v`` ran window ``v + 1``; version 0, the untrained closure, ran the first).
Since the flow itself makes some windows harder than others, the error is also given
relative to the same window run without a closure. "Start" is the first window (the
untrained closure); "early" and "late" are the first and last quarter of the windows. The
error falls when both it and its ratio to no closure are lower in the late windows than at
the start (with the replay buffer most of the learning is done within the first quarter).
The loss falls when the mean loss of the last quarter of the steps is below that of the
first ``START_STEPS`` steps (the untrained closure's first time unit).
"""

import json
from pathlib import Path

import numpy as np

from ..common import claims_table

START_STEPS = 25


def _quarters(x):
    q = max(1, len(x) // 4)
    return float(np.mean(x[:q])), float(np.mean(x[-q:]))


def assemble(s, online, fixed, held_out, offline_epochs):
    """The results dict: settings, in-run errors, held-out scores, claims."""
    early, late = _quarters(online["error_nn"])
    none_early, none_late = _quarters(online["error_none"])
    ratio_early, ratio_late = _quarters(online["error_nn"] / online["error_none"])
    _, offline_late = _quarters(fixed["error_nn"])
    steps = online["step_loss"]
    loss_start, loss_late = float(np.mean(steps[:START_STEPS])), _quarters(steps)[1]
    start, ratio_start = float(online["error_nn"][0]), float(online["error_nn"][0] / online["error_none"][0])
    finite = bool(np.isfinite(online["error_nn"]).all() and np.isfinite(steps).all())
    results = {
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "offline_epochs": offline_epochs,
        "in_run": {
            "error_start": start,
            "error_early": early,
            "error_late": late,
            "error_last_window": float(online["error_nn"][-1]),
            "none_start": float(online["error_none"][0]),
            "none_early": none_early,
            "none_late": none_late,
            "ratio_to_none_start": ratio_start,
            "ratio_to_none_early": ratio_early,
            "ratio_to_none_late": ratio_late,
            "loss_start": loss_start,
            "loss_late": loss_late,
            "offline_late": offline_late,
            "offline_ratio_to_none_late": _quarters(fixed["error_nn"] / fixed["error_none"])[1],
            "windows": len(online["error_nn"]),
            "versions_synced": int(online["version"][-1]) + 1,
        },
        "held_out": held_out,
    }
    results["claims"] = {
        "error_falls": {
            "held": finite and late < start and ratio_late < ratio_start,
            "detail": f"error against the filtered DNS {start:.4g} (first window, untrained) -> "
            f"{late:.4g} (mean of the last quarter of the windows); relative to no closure "
            f"{ratio_start:.3f} -> {ratio_early:.3f} (first quarter) -> {ratio_late:.3f}",
        },
        "loss_falls": {
            "held": finite and loss_late < loss_start,
            "detail": f"training loss (relative MSE of the flux) {loss_start:.4g} (first "
            f"{START_STEPS} steps) -> {loss_late:.4g} (last quarter of the steps)",
        },
    }
    return results


def markdown(r):
    s, i, h = r["settings"], r["in_run"], r["held_out"]
    lines = [
        f"# Online learning of the Burgers closure (DNS N={s['n_dns']} companion, LES N={s['n_les']})",
        "",
        f"mode: {'quick' if s['quick'] else 'full'}; {i['windows']} windows of {s['window']:g} time units "
        f"after a {s['spinup']:g}-unit spin-up; one nn_train_step per LES step (dt={s['dt_les']:g}) on the "
        f"new snapshot and {s['batch'] - 1} from a replay buffer of the last {s['buffer']} (the spec's "
        f"prepare), nn_train_sync after every window ({i['versions_synced']} weight versions); Adam, "
        f"lr={s['lr']:g}. The loss is the relative MSE of the flux over the step's batch.",
        "",
        "## In the run (error against the filtered DNS, relative RMS over each window)",
        "",
        "| | first window (untrained) | first quarter of windows | last quarter |",
        "|---|---|---|---|",
        f"| online closure | {i['error_start']:.4g} | {i['error_early']:.4g} | {i['error_late']:.4g} |",
        f"| no closure (same windows) | {i['none_start']:.4g} | {i['none_early']:.4g} | {i['none_late']:.4g} |",
        f"| online / no closure | {i['ratio_to_none_start']:.4g} | {i['ratio_to_none_early']:.4g} "
        f"| {i['ratio_to_none_late']:.4g} |",
        f"| offline-trained closure (same windows, not trained further) | | | {i['offline_late']:.4g} |",
        f"| offline / no closure | | | {i['offline_ratio_to_none_late']:.4g} |",
        f"| training loss (relative MSE of the flux) | {i['loss_start']:.4g} (first steps) | "
        f"| {i['loss_late']:.4g} |",
        "",
        "## Held-out forecast segments (torch twin, the demo's short-term RMSE and spectrum error)",
        "",
        "| closure | short-term RMSE | spectrum error |",
        "|---|---|---|",
    ]
    for name, v in h.items():
        lines.append(f"| {name} | {v['short_term_rmse']:.4g} | {v['spectrum_error']:.4g} |")
    lines += [
        "",
        f"The offline closure is the same network trained a priori for {r['offline_epochs']} epochs on "
        f"{s['t_train']:g} time units of DNS pairs (another forcing seed; the same target, `tau`).",
        "",
        _verdict(r),
        "",
        "## Claims",
        "",
        *claims_table(r["claims"]),
    ]
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r.get("seconds", {}).items())]
    return "\n".join(lines) + "\n"


def _verdict(r):
    """One sentence: what the online closure reaches against the offline-trained one."""
    i, h = r["in_run"], r["held_out"]
    where = "below" if i["error_late"] < i["offline_late"] else "above"
    held = "below" if h["online"]["short_term_rmse"] < h["offline"]["short_term_rmse"] else "above"
    return (
        f"Against the offline-trained closure: over the last quarter of the windows the online closure's "
        f"error is {i['error_late']:.4g}, {where} the offline closure's {i['offline_late']:.4g} on the same "
        f"windows; on the held-out segments its short-term RMSE is {h['online']['short_term_rmse']:.4g}, "
        f"{held} the offline closure's {h['offline']['short_term_rmse']:.4g} (untrained: "
        f"{h['untrained']['short_term_rmse']:.4g})."
    )


def write(out, results):
    """Write report.md and report.json into ``out``; return the markdown."""
    text = markdown(results)
    Path(out, "report.md").write_text(text)
    Path(out, "report.json").write_text(json.dumps(results, indent=1))
    return text


def figure(path, online, fixed):
    """Loss and error over model time (report.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(3, 1, figsize=(7, 8), sharex=True)
    a.semilogy(online["step_time"], online["step_loss"], ",", color="C0", alpha=0.3, label="each step")
    a.semilogy(online["time"], online["loss"], "o-", ms=3, color="C0", label="mean over the window")
    a.legend(fontsize=8)
    a.set_ylabel("training loss\n(relative MSE of the flux)")
    a.set_title("Burgers LES learning its closure online from a DNS companion")
    b.plot(
        online["time"], online["error_nn"], "o-", ms=3, label="online closure (starts untrained)", color="C0"
    )
    b.plot(fixed["time"], fixed["error_nn"], "s-", ms=3, label="offline-trained closure", color="C2")
    b.plot(online["time"], online["error_none"], "^-", ms=3, label="no closure", color="C7")
    b.set_ylabel("error against filtered DNS\n(relative RMS over the window)")
    b.legend(fontsize=8)
    c.plot(online["time"], online["error_nn"] / online["error_none"], "o-", ms=3, color="C0", label="online")
    c.plot(
        fixed["time"],
        fixed["error_nn"] / fixed["error_none"],
        "s-",
        ms=3,
        color="C2",
        label="offline-trained",
    )
    c.axhline(1.0, color="C7", lw=0.8)
    c.set_ylabel("error relative to\nno closure (same window)")
    c.set_xlabel("model time at the end of the window")
    c.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
