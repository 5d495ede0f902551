"""Scores, table and figure of the Burgers demo.

Scores are computed against the filtered (block-averaged) DNS, the LES variable:

* short-term error: RMSE over the cells of ``u_les - u_dns`` at each lead time,
  averaged over the forecast segments, then over lead times up to the horizon;
* spectrum error: mean over wavenumbers ``k = 1 .. n/2`` of
  ``|ln E_les(k) - ln E_dns(k)|``, with ``E(k)`` the time mean of ``|u_hat_k|^2``
  over a long run.
"""

import numpy as np

from .common import claims_table, write_report

CLOSURES = ("none", "smagorinsky", "nn")


def rmse_by_lead(les, dns):
    """RMSE against lead time, ``(nlead,)``, from ``(nseg, nlead, n)`` arrays."""
    return np.sqrt(((les - dns) ** 2).mean(-1)).mean(0)


def spectrum(u):
    """Time-mean energy spectrum ``0.5 |u_hat_k|^2 / n^2`` for ``k = 0 .. n/2``."""
    n = u.shape[-1]
    return 0.5 * (np.abs(np.fft.rfft(u, axis=-1)) ** 2).mean(0) / n**2


def spectrum_error(u, u_ref):
    """Mean absolute log-spectrum error over ``k = 1 .. n/2``."""
    e, r = spectrum(u)[1:], spectrum(u_ref)[1:]
    if not (np.isfinite(e).all() and (e > 0).all()):
        return float("inf")
    return float(np.mean(np.abs(np.log(e) - np.log(r))))


def table(results):
    """Markdown table of the scores, one row per closure."""
    rows = ["| closure | short-term RMSE | long-run log-spectrum error | finite |", "|---|---|---|---|"]
    for c in CLOSURES:
        r = results["closures"][c]
        rows.append(f"| {c} | {r['short_term_rmse']:.4g} | {r['spectrum_error']:.4g} | {r['finite']} |")
    return "\n".join(rows)


def markdown(results):
    """The whole report as markdown: settings, table, checks, claims."""
    s = results["settings"]
    mode = (
        f"mode: {'quick' if s['quick'] else 'full'}; closure target "
        f"`{results['target']}`; short-term horizon {s['horizon']} time units over "
        f"{s['nseg']} initial states; long run {s['t_long']} time units."
    )
    lines = [
        f"# pyclosure demo: forced Burgers, DNS N={s['n_dns']} -> LES N={s['n_les']}",
        "",
        mode,
        "",
        table(results),
        "",
    ]
    lines.append(
        "| training (scored in the torch twin) | flux R^2 (test) | short-term RMSE | spectrum error |"
    )
    lines.append("|---|---|---|---|")
    for tgt, r in results["targets"].items():
        lines.append(f"| {tgt} | {r['r2']:.4f} | {r['short_term_rmse']:.4g} | {r['spectrum_error']:.4g} |")
    note = (
        "The exported closure is the row with the smallest sum of the two twin scores "
        "(computed on the same held-out data as the coupled table, so the choice is "
        "not blind to it; compare every row with the baselines above)."
    )
    lines += ["", note]
    m, f = results["momentum"], results["fortran_vs_twin"]
    mom = (
        f"momentum: worst |drift| / (8 eps mom_scale) = {m['worst_ratio']:.3g} "
        f"(largest |drift| {m['worst_drift']:.3g}); {m['what']}"
    )
    agree = (
        f"Fortran vs twin: max |u_F - u_twin| = {f['max_abs_diff']:.3g} over "
        f"{f['nsteps']} steps (tolerance {f['tolerance']:g}; bit-for-bit: "
        f"{f['bit_for_bit']}; libtorch threads {f['threads']})"
    )
    r, ref = results["records"], results["records"]["reference"]
    rec = (
        f"replay of the recorded nn segment (every {results['settings']['record_every']}th closure "
        f"call, with its Runge-Kutta stage): {r['equal']}/{r['records']} records of the {r['engine']} "
        f"package bit for bit through the C bridge and through {results['settings']['python_runner']}; budgets "
        f"closed {r['budgets_closed']}/{r['budgets_checked']} (worst domain residual / bound "
        f"{r['worst_domain_residual_over_bound']:.3g}); {r['report']}"
    )
    info = (
        f"information, not a check: `{ref['model']}` (TorchScript of the same weights, eager torch's "
        f"arithmetic) run on the recorded inputs differs from the package's recorded outputs by at most "
        f"{ref['max_rel_diff']:.3g} (relative, max|diff| / max|flux|); {ref['records_equal']}/"
        f"{ref['records_run']} records equal bit for bit (the package's kernels are not eager torch's)"
    )
    lines += ["", _export_line(results["export"]), "", mom, agree, rec, info, "", "## claims", ""]
    lines += claims_table(results["claims"])
    lines += ["", f"total time {results['seconds']['total']:.1f} s"]
    return "\n".join(lines) + "\n"


def _export_line(e):
    """One line on the exported files and what they took to make."""
    cells = e["cells"]
    grids = (
        "a fixed grid"
        if not cells
        else (
            f"grids of {cells[0]} cells or more"
            if cells[1] is None
            else f"grids of {cells[0]} to {cells[1]} cells"
        )
    )
    reference = (
        f"`{e['reference']}` (TorchScript, same weights, the eager reference) {e['reference_export_s']:.1f} s"
    )
    if e.get("format") == "native":
        return (
            f"export: `{e['package']}` (native program, arithmetic contract {e['engine']['arith']}, {grids}; "
            f"every run calls it): {e['export_s']:.2f} s; {reference}"
        )
    return (
        f"export: `{e['package']}` (AOTInductor, {e['engine']['cpu_isa']}, {grids}; every run calls it): "
        f"torch.export {e['export_s']:.1f} s, compile {e['compile_s']:.1f} s (inductor cache "
        f"{e['cache_dir']}); {reference}"
    )


def write(out, results):
    """Write ``report.json`` and ``report.md`` into ``out``; return the markdown."""
    text = markdown(results)
    write_report(out, results, text)
    return text


def figure(path, results, spectra, lead, errors, dns, les, dt_snap):
    """PNG: spectra, error against lead time, space-time of DNS and nn LES."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    k = np.arange(len(spectra["dns"]))
    for name, e in spectra.items():
        ax[0, 0].loglog(k[1:], e[1:], label=name, lw=2.5 if name == "dns" else 1.2)
    ax[0, 0].set(xlabel="wavenumber k", ylabel="E(k)", title="long-run energy spectrum")
    ax[0, 0].legend()
    for name, e in errors.items():
        ax[0, 1].plot(lead, e, label=name)
    ax[0, 1].set(xlabel="lead time", ylabel="RMSE of u", title="error against lead time")
    ax[0, 1].legend()
    nt = min(len(dns), len(les))
    ext = [0, results["settings"]["length"], nt * dt_snap, 0]
    vmax = float(np.abs(dns[:nt]).max())
    for a, u, title in ((ax[1, 0], dns, "filtered DNS"), (ax[1, 1], les, "LES, nn closure")):
        im = a.imshow(u[:nt], aspect="auto", extent=ext, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        a.set(xlabel="x", ylabel="time", title=f"u(x, t): {title}")
    fig.colorbar(im, ax=ax[1, :], shrink=0.8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
