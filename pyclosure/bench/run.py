"""The measurements: interleaved timing rounds, output agreement, allocation counts.

For each model and thread count one driver per route is started. For each batch
size the routes first dump their output for the same fixed input (compared byte for
byte with the floor's, for the bridge's ``.pt2`` routes with Python's
``aoti_load_package``'s, for the native routes with the cffi twin's on the same
program); then ``rounds`` rounds follow, and in each round every
route runs one block of calls (warm-up, then ``calls`` timed calls), in an order
that rotates from round to round, so that drift of a shared machine hits every
route alike. A route's time is the median of all its timed calls.
"""

import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import drivers


@dataclass
class Settings:
    """What one ``pyclosure bench`` run measures, and how long it tries."""

    models: tuple = ("mlp32", "mlp64", "burgers")
    batches: tuple = (1, 4, 16, 64, 256, 4096, 32768)
    threads: tuple = (1, 2)
    routes: tuple = drivers.ROUTES
    device: str = "cpu"
    rounds: int = 9  # at most; at least 3 when a configuration would exceed config_seconds
    block_seconds: float = 0.1  # timed work per route per block (the floor's time sets the count)
    config_seconds: float = 30.0  # rough budget of one model/threads/batch configuration
    max_calls: int = 2000
    malloc_tunables: str = drivers.MALLOC_TUNABLES  # "" runs the drivers with glibc's defaults
    alloc_models: tuple = ("mlp32", "mlp64", "burgers")
    alloc_batches: tuple = (1, 16)
    alloc_calls: int = 500
    pt2_models: tuple = ("mlp32", "mlp64", "burgers")  # also exported as .pt2 for the AOTInductor routes
    pt2_cache: str = None  # folder of compiled packages (None: pt2.default_cache(); "": no cache)
    native_models: tuple = ("mlp32", "mlp64", "burgers")  # also written as .nnp for the native routes
    quick: bool = False

    @classmethod
    def for_quick(cls, **kw):
        base = {
            "models": ("mlp32", "burgers"),
            "batches": (1, 256),
            "threads": (1,),
            "rounds": 3,
            "block_seconds": 0.03,
            "config_seconds": 4.0,
            "max_calls": 300,
            "alloc_models": ("mlp32",),
            "alloc_calls": 100,
            "pt2_models": ("mlp32",),
            "native_models": ("mlp32", "burgers"),
            "quick": True,
        }
        return cls(**{**base, **kw})

    def asdict(self):
        return asdict(self)


@dataclass
class Measurements:
    """Everything measured; :mod:`.report` turns it into tables and JSON."""

    results: list = field(default_factory=list)
    agreement: list = field(default_factory=list)
    allocations: list = field(default_factory=list)
    limits: dict = None  # the core's FMA peak and L2 read bandwidth (native.machine_limits), if measured


@dataclass
class Plan:
    """Rounds, and warm-up and timed calls per block, of one configuration."""

    rounds: int
    warmup: int
    calls: int


def _plan(floor, batch, nroutes, settings):
    """About ``block_seconds`` of the floor's time per block; fewer rounds (>= 3) for long calls."""
    probe = floor.ask("time", batch, 1, 2)["t"]
    per_call = max(min(probe), 1) * 1e-9
    calls = int(min(max(settings.block_seconds / per_call, 1), settings.max_calls))
    warmup = 0 if per_call > 0.05 else max(2, min(calls // 10, 50))  # a long call warms itself up
    fit = int(settings.config_seconds / (nroutes * (calls + warmup) * per_call))
    return Plan(min(settings.rounds, max(3, fit)), warmup, calls)


def model_routes(model, routes):
    """The routes that run ``model``: the .pt2 ones only when it has a package, the
    native ones only when it has a native program."""
    return [
        r
        for r in routes
        if (model.pt2_path or r not in drivers.PT2_ROUTES)
        and (model.native_path or r not in drivers.NATIVE_ROUTES)
    ]


def _twin_output(model, batch):
    """The cffi twin's output for the drivers' fixed input (the native kernels, no bridge)."""
    from .._native_twin import Program
    from .torch_route import fixed_input

    return Program(model.native_path)(fixed_input(batch, model.nin, model.dtype)).ravel()


def _compare(model, folder, routes, batch):
    """Each route's dumped output against its reference's (deleted afterwards).

    A route must give its reference's output bit for bit when both run the same
    file (``must_equal``); the .pt2 package and the native program against the
    TorchScript floor run other kernels, and are given for information (rows
    ``python_pt2`` and ``twin``).
    """
    paths = {r: Path(folder) / f"{r}-{batch}.bin" for r in routes}
    out = {r: np.fromfile(p, dtype=model.dtype) for r, p in paths.items()}
    if any(r in drivers.NATIVE_ROUTES for r in routes):
        out[drivers.TWIN] = _twin_output(model, batch)
    rows = []
    for r in routes + ([drivers.TWIN] if drivers.TWIN in out else []):
        ref_route = drivers.REFERENCE.get(r, "floor")
        ref_route = ref_route if ref_route in out else "floor"
        got, ref = out[r], out[ref_route]
        equal = got.shape == ref.shape and got.tobytes() == ref.tobytes()
        diff = float(np.max(np.abs(got - ref))) if got.shape == ref.shape and got.size else float("inf")
        rows.append(
            {
                "route": r,
                "batch": batch,
                "reference": ref_route,
                "bitwise_equal": equal,
                "must_equal": _same_file(r, ref_route),
                "max_abs_diff": 0.0 if equal else diff,
                "values": int(ref.size),
            }
        )
    for p in paths.values():
        p.unlink()
    return rows


def _same_file(route, ref_route):
    """Whether ``route`` and ``ref_route`` run the same model file (and so must agree bit for bit)."""

    def kind(r):
        return (
            "pt2"
            if r in drivers.PT2_ROUTES
            else "nnp"
            if r in drivers.NATIVE_ROUTES + (drivers.TWIN,)
            else "pt"
        )

    return kind(route) == kind(ref_route)


def _time_batch(active, batch, plan):
    """Interleaved rounds over the routes; per-call times (and copy times) per route."""
    names = list(active)
    times = {r: [] for r in names}
    copies = {r: [] for r in names}
    for k in range(plan.rounds):
        order = names[k % len(names) :] + names[: k % len(names)]
        for r in order:
            answer = active[r].ask("time", batch, plan.warmup, plan.calls)
            times[r] += answer["t"]
            copies[r] += answer.get("copy", [])
    return times, copies


def _summary(model, threads, batch, route, t, copy, plan):
    t = sorted(t)
    q = np.quantile(np.array(t, dtype=float), [0.1, 0.9])
    median = statistics.median(t)
    row = {
        "model": model.name,
        "dtype": model.dtype,
        "threads": threads,
        "batch": batch,
        "route": route,
        "calls": len(t),
        "rounds": plan.rounds,
        "median_ns": median,
        "p10_ns": float(q[0]),
        "p90_ns": float(q[1]),
        "gflops": model.flops_per_sample * batch / median,
    }
    if copy:
        row["copy_median_ns"] = statistics.median(copy)
    return row


def _physical_fractions(row, model, limits):
    """A native route's FLOP rate over the core's FMA peak, and its weights' read rate over
    the L2 stream, both from the median wall time (so on a busy machine an underestimate)."""
    peak = limits["peak_gflops_f32" if model.dtype == "float32" else "peak_gflops_f64"]
    row["fma_fraction"] = row["gflops"] / peak
    row["l2_fraction"] = model.weight_bytes / row["median_ns"] / limits["stream_gbs"]


def measure_group(model, threads, settings, folder, routes, out, progress=print):
    """All batch sizes of one model at one thread count: timings and agreement."""
    routes = model_routes(model, routes)
    active = drivers.start(routes, model, threads, settings.device, folder, tunables=settings.malloc_tunables)
    try:
        for batch in settings.batches:
            for d in active.values():
                d.ask("dump", batch)
            agree = _compare(model, folder, routes, batch)
            out.agreement += [{"model": model.name, "threads": threads, **a} for a in agree]
            plan = _plan(active["floor"], batch, len(routes), settings)
            load = os.getloadavg()[0]
            times, copies = _time_batch(active, batch, plan)
            load = max(load, os.getloadavg()[0])
            rows = [_summary(model, threads, batch, r, times[r], copies[r], plan) for r in routes]
            floor = rows[routes.index("floor")]
            for row in rows:
                row["ratio_to_floor"] = row["median_ns"] / floor["median_ns"]
                row["p10_ratio_to_floor"] = row["p10_ns"] / floor["p10_ns"]  # less sensitive to other work
                row["load_average"] = round(load, 2)
                if out.limits and row["route"] in drivers.NATIVE_ROUTES:
                    _physical_fractions(row, model, out.limits)
            out.results += rows
            progress(
                f"  {model.name} threads={threads} batch={batch}: "
                + ", ".join(f"{r['route']} {r['median_ns'] / 1e3:.1f} us" for r in rows)
            )
    finally:
        drivers.stop(active)


def count_allocations(model, settings, folder, routes, out, progress=print):
    """Heap allocations per call of each route (allocation counter preloaded), one thread.

    Each route first makes ``alloc_calls`` calls, then ``alloc_calls`` counted calls:
    allocations and bytes asked for per call, and the growth of the heap in use
    over the counted calls (steady state: 0, or a few bytes of glibc bookkeeping).
    """
    lib = drivers.alloc_counter()
    if lib is None:
        progress("  allocation counter not built: skipping the allocation check")
        return
    active = drivers.start(
        model_routes(model, routes),
        model,
        1,
        settings.device,
        folder,
        preload=lib,
        tunables=settings.malloc_tunables,
    )
    try:
        for batch in settings.alloc_batches:
            for r, d in active.items():
                a = d.ask("alloc", batch, settings.alloc_calls, settings.alloc_calls)
                n = a["calls"]
                out.allocations.append(
                    {
                        "model": model.name,
                        "threads": 1,
                        "batch": batch,
                        "route": r,
                        "calls": n,
                        "allocs_per_call": a["allocs"] / n if a["allocs"] >= 0 else None,
                        "bytes_per_call": a["bytes"] / n if a["bytes"] >= 0 else None,
                        "heap_growth_bytes": a["heap_growth"],
                    }
                )
    finally:
        drivers.stop(active)
