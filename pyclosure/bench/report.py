"""Tables, target checks and the JSON document of a benchmark run."""

from .drivers import LABELS, TWIN

# Fortran nn_forward against the C++ floor: the bridge's overhead targets.
RATIO_TARGETS = ((1, 1.10), (256, 1.05))  # (batch >= this, or == 1: ratio at most)
# Fortran nn_forward on the .pt2 package against it on TorchScript, mlp32 at one thread.
PT2_TARGETS = ((1, 0.8), (256, 1.0))  # (batch, ratio at most)
# Each .pt2 route, and the TorchScript route it is compared with.
PT2_PAIRS = (("c_pt2", "c"), ("fortran_pt2", "fortran"), ("python_pt2", "python"))
# Each native route, and the TorchScript route it is compared with.
NATIVE_PAIRS = (("c_native", "c"), ("fortran_native", "fortran"), ("python_native", "python"))


def _lookup(results):
    return {(r["model"], r["threads"], r["batch"], r["route"]): r for r in results}


def tables(doc):
    """Markdown tables: per model, the floor's time and GFLOP/s and every route's ratio to it."""
    by = _lookup(doc["results"])
    routes = [r for r in doc["routes"] if r != "floor"]
    gpu = doc["settings"]["device"] != "cpu"
    lines = []
    for m in doc["models"]:
        title = (
            f"{m['name']}: {m['description']}, {m['dtype']}, {m['flops_per_sample']} flop per column "
            "(the floor's time per call, and each route's time / the floor's)"
        )
        lines += ["", title, ""]
        head = ["threads", "batch", "floor us", "floor GFLOP/s"] + (["floor copy us"] if gpu else [])
        head += [LABELS[r] for r in routes]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for t in doc["settings"]["threads"]:
            for b in doc["settings"]["batches"]:
                f = by.get((m["name"], t, b, "floor"))
                if f is None:
                    continue
                cells = [str(t), str(b), f"{f['median_ns'] / 1e3:.1f}", f"{f['gflops']:.2f}"]
                if gpu:
                    cells.append(f"{f.get('copy_median_ns', float('nan')) / 1e3:.1f}")
                got = [by.get((m["name"], t, b, r)) for r in routes]
                cells += ["-" if g is None else f"{g['ratio_to_floor']:.3f}" for g in got]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + gpu_table(doc) + pt2_table(doc) + native_table(doc))


def gpu_table(doc):
    """Markdown (GPU runs): the floor's time with its host-device copies apart, the bridge's host
    route, and the device-resident route (arrays in GPU memory), which makes no copies."""
    if doc["settings"]["device"] == "cpu" or "python_device" not in doc["routes"]:
        return []
    by = _lookup(doc["results"])
    lines = [
        "",
        f"Host arrays and device-resident arrays on {doc['settings']['device']} (us per call; "
        "'saved' is the C host route's time less the device-resident route's)",
        "",
        "| model | threads | batch | floor | floor copies | floor compute | C host route | "
        "Python device-resident | saved |",
        "|" + "---|" * 9,
    ]
    for m in doc["models"]:
        for t in doc["settings"]["threads"]:
            for b in doc["settings"]["batches"]:
                f, c, d = (by.get((m["name"], t, b, r)) for r in ("floor", "c", "python_device"))
                if f is None or d is None:
                    continue
                copy = f.get("copy_median_ns", float("nan"))
                host = c["median_ns"] if c else float("nan")
                cells = [m["name"], str(t), str(b)] + [
                    f"{v / 1e3:.1f}"
                    for v in (
                        f["median_ns"],
                        copy,
                        f["median_ns"] - copy,
                        host,
                        d["median_ns"],
                        host - d["median_ns"],
                    )
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def pt2_table(doc):
    """Markdown: each .pt2 route's time / the same route's on TorchScript, per model with a package."""
    by = _lookup(doc["results"])
    pairs = [(p, t) for p, t in PT2_PAIRS if p in doc["routes"] and t in doc["routes"]]
    names = [m["name"] for m in doc["models"] if m.get("pt2")]
    if not pairs or not names:
        return []
    head = ["model", "threads", "batch"] + [f"{LABELS[p]} / TorchScript" for p, _ in pairs]
    title = "AOTInductor package (.pt2) against TorchScript: each route's time / its time on the .pt file"
    lines = ["", title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        for t in doc["settings"]["threads"]:
            for b in doc["settings"]["batches"]:
                if (name, t, b, "floor") not in by:
                    continue
                cells = [name, str(t), str(b)]
                cells += [
                    f"{by[(name, t, b, p)]['median_ns'] / by[(name, t, b, q)]['median_ns']:.3f}"
                    for p, q in pairs
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def native_table(doc):
    """Markdown: each native route's time / the floor's and / the same route's on TorchScript,
    and the C route's fractions of the core's FMA peak and L2 read stream."""
    by = _lookup(doc["results"])
    pairs = [(n, t) for n, t in NATIVE_PAIRS if n in doc["routes"] and t in doc["routes"]]
    names = [m["name"] for m in doc["models"] if m.get("native")]
    if not pairs or not names:
        return []
    limits = doc.get("limits")
    head = ["model", "threads", "batch"] + [f"{LABELS[n]} / floor" for n, _ in pairs]
    head += [f"{LABELS[n]} / TorchScript" for n, _ in pairs]
    head += ["C .nnp % FMA peak", "C .nnp weights % L2 read"] if limits else []
    title = (
        "Native engine (.nnp) through the bridge: each route's time / the floor's, and / its time on the .pt "
        "file"
        + (
            f"; machine: FMA peak {limits['peak_gflops_f32']:.1f} GFLOP/s float32, "
            f"{limits['peak_gflops_f64']:.1f} float64, L2 read {limits['stream_gbs']:.1f} GB/s "
            "(one core, CPU time); the fractions use wall time"
            + (f"; kernels: {limits['isa']}" if "isa" in limits else "")
            if limits
            else ""
        )
    )
    lines = ["", title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        for t in doc["settings"]["threads"]:
            for b in doc["settings"]["batches"]:
                if (name, t, b, "floor") not in by:
                    continue
                cells = [name, str(t), str(b)] + [
                    f"{by[(name, t, b, n)]['ratio_to_floor']:.3f}" for n, _ in pairs
                ]
                cells += [
                    f"{by[(name, t, b, n)]['median_ns'] / by[(name, t, b, q)]['median_ns']:.3f}"
                    for n, q in pairs
                ]
                c = by.get((name, t, b, "c_native"), {})
                if limits:
                    cells += [
                        f"{100 * c['fma_fraction']:.1f}" if "fma_fraction" in c else "-",
                        f"{100 * c['l2_fraction']:.1f}" if "l2_fraction" in c else "-",
                    ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def agreement_lines(doc):
    rows = [a for a in doc["agreement"] if a["must_equal"]]
    same = [a for a in rows if a["bitwise_equal"]]
    lines = [
        (
            f"outputs: {len(same)} of {len(rows)} route/config outputs are bit-for-bit equal to their "
            "reference's (same fixed input, same thread count): the floor's, for the bridge's .pt2 routes Python "
            "aoti_load_package's on the same package, for the native routes the cffi twin's on the same program"
        )
    ]
    for a in rows:
        if not a["bitwise_equal"]:
            lines.append(
                f"  differs: {a['route']} {a['model']} threads={a['threads']} batch={a['batch']}: "
                f"max |difference| {a['max_abs_diff']:.3g} from {a['reference']}"
            )
    for route, what in (("python_pt2", ".pt2 package"), (TWIN, "native program")):
        info = [a for a in doc["agreement"] if not a["must_equal"] and a["route"] == route]
        if info:
            worst = max(info, key=lambda a: a["max_abs_diff"])
            lines.append(
                f"  {what} against the TorchScript floor (other kernels, not expected bit for bit): "
                f"{sum(a['bitwise_equal'] for a in info)} of {len(info)} equal, max |difference| "
                f"{worst['max_abs_diff']:.3g} ({worst['model']} batch={worst['batch']})"
            )
    for m in doc["models"]:
        if m.get("pt2_error"):
            lines.append(f"  {m['name']}: no .pt2 routes, its package did not build: {m['pt2_error']}")
        if m.get("native_error"):
            lines.append(f"  {m['name']}: no native routes, it has no native program: {m['native_error']}")
    return lines


def allocation_lines(doc):
    rows = doc["allocations"]
    if not rows:
        return ["allocations: not measured (allocation counter not built)"]
    lines = [
        (
            "heap allocations per call (malloc/calloc/realloc/memalign counted in-process, after warm-up; "
            "heap growth over all counted calls):"
        )
    ]
    for r in rows:
        n = r["allocs_per_call"]
        nb = r["bytes_per_call"]
        lines.append(
            f"  {r['model']:8} batch={r['batch']:<6} {LABELS[r['route']]:28} "
            f"{'n/a' if n is None else f'{n:6.1f}'} allocations, "
            f"{'n/a' if nb is None else f'{nb:10.0f}'} bytes, heap growth {r['heap_growth_bytes']} bytes "
            f"over {r['calls']} calls"
        )
    return lines


def _pt2_targets(by):
    out = []
    for batch, limit in PT2_TARGETS:
        p, t = by.get(("mlp32", 1, batch, "fortran_pt2")), by.get(("mlp32", 1, batch, "fortran"))
        ratio = p["median_ns"] / t["median_ns"] if p and t else None
        out.append(
            {
                "target": f"Fortran nn_forward on .pt2 / on TorchScript <= {limit} at batch {batch} "
                "(mlp32, 1 thread)",
                "met": None if ratio is None else ratio <= limit,
                "worst": None
                if ratio is None
                else {"model": "mlp32", "threads": 1, "batch": batch, "ratio": ratio},
            }
        )
    return out


def targets(doc):
    """The issue's targets, each with met (True/False/None when not measured) and the evidence."""
    by = _lookup(doc["results"])
    out = []
    for lo, limit in RATIO_TARGETS:
        vals = [
            (k, r["ratio_to_floor"])
            for k, r in by.items()
            if k[3] == "fortran" and ((k[2] == 1) if lo == 1 else (k[2] >= lo))
        ]
        worst = max(vals, key=lambda kv: kv[1]) if vals else None
        name = f"Fortran nn_forward / floor <= {limit} at batch {'1' if lo == 1 else '>= ' + str(lo)}"
        out.append(
            {
                "target": name,
                "met": None if worst is None else worst[1] <= limit,
                "worst": None
                if worst is None
                else {"model": worst[0][0], "threads": worst[0][1], "batch": worst[0][2], "ratio": worst[1]},
            }
        )
    slower = []
    for k, r in by.items():
        e = by.get((k[0], k[1], k[2], "embedded"))
        if k[3] == "fortran" and k[2] <= 4096 and e is not None and r["median_ns"] >= e["median_ns"]:
            spread = max(r["p90_ns"] - r["p10_ns"], e["p90_ns"] - e["p10_ns"])
            slower.append(
                {
                    "model": k[0],
                    "threads": k[1],
                    "batch": k[2],
                    "by": r["median_ns"] / e["median_ns"] - 1,
                    "within_spread": r["median_ns"] - e["median_ns"] < spread / 2,
                }
            )
    has_embedded = any(k[3] == "embedded" for k in by)
    out.append(
        {
            "target": "Fortran nn_forward faster than the embedded-Python route at every batch <= 4096",
            "met": (not slower) if has_embedded else None,
            "slower_at": slower,
        }
    )
    allocs = {(a["model"], a["batch"], a["route"]): a["allocs_per_call"] for a in doc["allocations"]}
    extra = [
        (k[0], k[1], v - allocs[(k[0], k[1], "floor")])
        for k, v in allocs.items()
        if k[2] == "fortran" and v is not None and allocs.get((k[0], k[1], "floor")) is not None
    ]
    bridge = ("fortran", "c", "fortran_pt2", "c_pt2", "fortran_native", "c_native")
    growth = [a["heap_growth_bytes"] for a in doc["allocations"] if a["route"] in bridge]
    out.append(
        {
            "target": "nn_forward allocates no host memory per call beyond what libtorch does (the floor)",
            "met": None if not extra else all(e <= 0 for _, _, e in extra),
            "extra_allocs_per_call": [{"model": m, "batch": b, "extra": e} for m, b, e in extra],
            "bridge_heap_growth_bytes": growth,
        }
    )
    return out + _pt2_targets(by) + [_native_alloc_target(doc)]


def _native_alloc_target(doc):
    rows = [
        a
        for a in doc["allocations"]
        if a["route"] in ("c_native", "fortran_native") and a["allocs_per_call"] is not None
    ]
    return {
        "target": "nn_forward on a native program (.nnp) allocates nothing per call (C and Fortran)",
        "met": None if not rows else all(a["allocs_per_call"] == 0 for a in rows),
        "native_allocs_per_call": [
            {"model": a["model"], "batch": a["batch"], "route": a["route"], "allocs": a["allocs_per_call"]}
            for a in rows
        ],
    }


def target_lines(doc):
    lines = ["targets:"]
    for t in doc["targets"]:
        state = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        detail = ""
        if t.get("worst"):
            w = t["worst"]
            detail = f" (worst {w['ratio']:.3f}: {w['model']} threads={w['threads']} batch={w['batch']})"
        elif t.get("slower_at"):
            detail = (
                " (slower at "
                + ", ".join(
                    f"{x['model']} threads={x['threads']} batch={x['batch']} by {100 * x['by']:.1f} %"
                    + (", within the calls' spread" if x["within_spread"] else "")
                    for x in t["slower_at"]
                )
                + ")"
            )
        elif t.get("native_allocs_per_call"):
            most = max(t["native_allocs_per_call"], key=lambda x: x["allocs"])
            detail = f" (most: {most['allocs']:.1f} per call, {most['model']} {most['route']} batch={most['batch']})"
        elif t.get("extra_allocs_per_call"):
            e = ", ".join(f"{x['extra']:+.1f}" for x in t["extra_allocs_per_call"])
            detail = f" (extra allocations per call vs floor: {e})"
        lines.append(f"  {state:12} {t['target']}{detail}")
    return lines


def text(doc):
    """The whole report as printed on screen."""
    m = doc["machine"]
    head = [
        (
            f"pyclosure bench: {m['cpu']}, {m['cores']} cores, device {doc['settings']['device']}, "
            f"torch {doc['torch_version']}, pyclosure {doc['pyclosure_version']}; "
            f"up to {doc['settings']['rounds']} interleaved rounds, median of all timed calls"
        )
    ]
    loads = [r["load_average"] for r in doc["results"]]
    if loads and max(loads) > m["cores"] + 1:  # + 1: the benchmark's own driver
        head.append(
            f"warning: the machine was busy while measuring (1-minute load average up to {max(loads):.1f} "
            f"on {m['cores']} cores): other work shares the cores, so the numbers are indicative only"
        )
    for r, why in doc["skipped_routes"].items():
        head.append(f"route {LABELS[r]} skipped: {why}")
    head.append("bind-once form: nn_closure has none (every nn_forward call describes its arrays anew)")
    return "\n".join(
        head + [tables(doc), ""] + agreement_lines(doc) + allocation_lines(doc) + target_lines(doc)
    )
