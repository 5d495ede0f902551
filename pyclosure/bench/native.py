"""The native kernels against the libtorch floor, one thread, interleaved rounds.

    pyclosure bench --kernels [--models mlp32 mlp64] [--batches 1 4 16 64 256 4096] [--rounds 7] [--json PATH]
                              [--isa auto | --isa avx2 avx512 ...]
    python -m pyclosure.bench.native [--batches ...] [--rounds 7] [--isa ...] [--out PATH]   (outside the source tree)

For each benchmark closure (:mod:`pyclosure.bench.models`: ``mlp32``, ``mlp64``,
``burgers``) the TorchScript file runs in ``bench_floor floor`` (libtorch called directly,
the least any bridge over libtorch does) and the same module, written as a native program,
in ``bench_native``. For each batch size both first dump their output for the fixed input
(compared: the native engine is not bit for bit with torch, so the largest difference is
reported), then ``rounds`` rounds follow, each one block of calls per driver in alternating
order; a round's ratio is native median / floor median, and the reported ratio is the median
over rounds (so slow drift of a shared machine cancels). With several instruction sets
(``--isa``; default ``auto``, the widest this CPU runs) each runs in its own ``bench_native``
and takes its turn in every round; each row names the kernels that ran. In the same run
``bench_native`` measures the core's FMA peak and its read bandwidth from an L2-sized buffer,
with AVX2's 32-byte vectors and, where the CPU runs it, AVX-512's 64-byte ones (the machine's
limit is the faster); the report gives the native kernels' fraction of each (FLOP rate over
the peak; weight bytes per call over the time a stream of that size takes). Limits and rates
use the driver thread's CPU time (on a shared machine a long call's wall time includes other
processes' time slices); the ratios compare wall times, measured alike in both drivers.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .. import _pt2
from .._native import export_native
from .._native_twin import ISAS, available_isas
from . import drivers, models

BATCHES = (1, 4, 16, 64, 256, 4096)


class NativeDriver(drivers.Driver):
    """``bench_native`` speaking the drivers' protocol (cbridge/bench/README.md)."""

    def __init__(self, model, threads, folder, isa="auto"):
        program = drivers.package_dir() / "bin" / "bench_native"
        if not program.exists():
            raise drivers.BenchError("bench_native is not built")
        if isa not in ISAS:
            raise drivers.BenchError(f"instruction set {isa!r}: one of {', '.join(ISAS)}")
        self.route, self.model, self.threads, self._isa = "native", model, threads, isa
        self.isa = None  # the kernels that run, once ready
        self.log_path = Path(folder) / f"native-{isa}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in close())
        args = ["native", model.path, model.dtype, model.nin, model.nout, threads, "cpu", folder]
        self.proc = subprocess.Popen(
            [str(program), *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )

    def ready(self):
        """Wait for the ready line, choose the instruction set asked for; note the one that runs."""
        line = super().ready()
        number = line["isa"] if self._isa == "auto" else self.ask("isa", ISAS[self._isa])["isa"]
        self.isa = {v: k for k, v in ISAS.items()}[number]
        return {**line, "isa": self.isa}


def machine_limits(model, folder):
    """The core's FMA peak and L2 read bandwidth, measured by ``bench_native`` on one thread.

    ``model`` is a :class:`~pyclosure.bench.models.BenchModel` whose ``native_path`` the
    driver loads (it needs a program to start). Returns a dict (``peak_gflops_f32``,
    ``peak_gflops_f64``, ``stream_gbs``: the widest vectors' (AVX-512 where the CPU runs it);
    ``peak_avx2_gflops_f32`` .. ``peak_avx512_gflops_f64``, ``stream_avx2_gbs``,
    ``stream_avx512_gbs``: each width's; ``bytes``; ``isa``: the native kernels ``auto``
    runs), or None where ``bench_native`` is not built or the CPU lacks AVX2 and FMA (which
    the measurement uses).
    """
    if not (drivers.package_dir() / "bin" / "bench_native").exists():
        return None
    if platform.machine() != "x86_64" or not {"avx2", "fma"} <= set(_pt2.host_cpu_features()):
        return None
    native = NativeDriver(models.BenchModel(**{**model.__dict__, "path": model.native_path}), 1, folder)
    try:
        native.ready()
        return _limits(native)
    finally:
        native.close()


def _limits(native):
    return {
        **native.ask("peak", 0, 0, 100_000_000),
        **native.ask("stream", 262_144, 0, 20_000),
        "isa": available_isas()[-1],
    }


def _describe(limits):
    def peaks(key):
        wide = f" (AVX2 {limits[f'peak_avx2_{key}']:.1f})" if "peak_avx512_gflops_f32" in limits else ""
        return f"{limits[f'peak_{key}']:.1f}{wide}"

    wide = f" (AVX2 {limits['stream_avx2_gbs']:.1f})" if "stream_avx512_gbs" in limits else ""
    return (
        f"machine: FMA peak {peaks('gflops_f32')} GFLOP/s float32, {peaks('gflops_f64')} float64; "
        f"L2 read {limits['stream_gbs']:.1f}{wide} GB/s; kernels auto: {limits['isa']}"
    )


def _native_model(bench_model, folder):
    """The benchmark module written as a native program; a BenchModel pointing at it."""
    module, nin, dtype, _ = models._module(bench_model.name)
    module.eval()
    path = Path(folder) / f"{bench_model.name}.nnp"
    export_native(module, path, torch.zeros(4, nin, dtype=dtype))
    weights = sum(p.numel() for p in module.parameters()) * (4 if dtype == torch.float32 else 8)
    return models.BenchModel(**{**bench_model.__dict__, "path": str(path)}), weights


def _read_dump(path, size, dtype):
    """A driver's dump; bench_floor answers before its stream is closed, so wait for the bytes."""
    for _ in range(200):
        data = np.fromfile(path, dtype=dtype)
        if data.size == size:
            return data
        time.sleep(0.01)
    raise drivers.BenchError(f"{path}: {data.size} values, expected {size}")


def _agreement(floor, native, model, batch, folder):
    paths = [Path(d.ask("dump", batch)["dump"]) for d in (floor, native)]
    a, b = (_read_dump(p, batch * model.nout, model.dtype) for p in paths)
    for p in paths:
        p.unlink()
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def _rounds(floor, natives, batch, rounds, block_seconds):
    """Rounds of one block per driver, in alternating order; per native driver (by ISA) its
    ratios to the floor and its medians (wall and CPU time per call)."""
    probe = min(floor.ask("time", batch, 2, 3)["t"]) * 1e-9
    calls = int(min(max(block_seconds / probe, 3), 3000))
    order = [("floor", floor), *natives.items()]
    ratios = {isa: [] for isa in natives}
    medians = {name: [] for name, _ in order} | {isa + "_cpu": [] for isa in natives}
    for k in range(rounds):
        got = {}
        for name, d in order if k % 2 == 0 else order[::-1]:
            answer = d.ask("time", batch, max(2, calls // 10), calls)
            got[name] = statistics.median(answer["t"])
            medians[name].append(got[name])
            if "cpu_per_call" in answer:
                medians[name + "_cpu"].append(answer["cpu_per_call"])
        for isa in natives:
            ratios[isa].append(got[isa] / got["floor"])
    return ratios, {k: statistics.median(v) for k, v in medians.items()}


def _row(model, batch, isa, ratios, floor_ns, native_ns, native_cpu_ns, weight_bytes, limits, diff):
    """One result row: the ratios to the floor, and the rates (over CPU time) against the limits."""
    gflops = model.flops_per_sample * batch / native_cpu_ns
    peak = limits["peak_gflops_f32" if model.dtype == "float32" else "peak_gflops_f64"]
    return {
        "model": model.name,
        "batch": batch,
        "isa": isa,
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "floor_ns": floor_ns,
        "native_ns": native_ns,
        "native_cpu_ns": native_cpu_ns,
        "native_gflops": gflops,
        "fma_fraction": gflops / peak,
        "weights_gbs": weight_bytes / native_cpu_ns,
        "l2_fraction": weight_bytes / native_cpu_ns / limits["stream_gbs"],
        "max_rel_diff": diff,
    }


def measure(
    names=models.NAMES,
    batches=BATCHES,
    rounds=7,
    block_seconds=0.05,
    folder=None,
    progress=print,
    isas=("auto",),
):
    """Run the comparison with the native kernels of each of ``isas`` (names of
    ``pyclosure._native_twin.ISAS``); return a list of result rows and the machine's limits."""
    folder = Path(folder or tempfile.mkdtemp(prefix="pyclosure-native-bench-"))
    rows, limits = [], None
    for name in names:
        torch_model = models.build(name, folder)
        native_model, weight_bytes = _native_model(torch_model, folder)
        floor = drivers.Driver("floor", torch_model, 1, "cpu", folder)
        natives = {}
        try:
            for isa in dict.fromkeys(isas):
                natives[isa] = NativeDriver(native_model, 1, folder, isa)
            floor.ready()
            for native in natives.values():
                native.ready()
            if limits is None:
                limits = _limits(next(iter(natives.values())))
                progress(_describe(limits))
            for batch in batches:
                diffs = {isa: _agreement(floor, d, torch_model, batch, folder) for isa, d in natives.items()}
                ratios, med = _rounds(floor, natives, batch, rounds, block_seconds)
                for isa, native in natives.items():
                    row = _row(
                        torch_model,
                        batch,
                        native.isa,
                        ratios[isa],
                        med["floor"],
                        med[isa],
                        med[isa + "_cpu"],
                        weight_bytes,
                        limits,
                        diffs[isa],
                    )
                    rows.append(row)
                    progress(
                        f"{name:8s} batch {batch:5d} {native.isa:6s}: native/floor {row['ratio']:.3f} "
                        f"[{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]  "
                        f"native {med[isa] / 1e3:9.2f} us floor {med['floor'] / 1e3:9.2f} us  "
                        f"{row['native_gflops']:6.2f} GFLOP/s = {100 * row['fma_fraction']:4.1f}% FMA "
                        f"peak, weights at {100 * row['l2_fraction']:5.1f}% of L2 read; "
                        f"max |diff| {diffs[isa]:.2g} of max |y|"
                    )
        finally:
            floor.close()
            for native in natives.values():
                native.close()
    return rows, limits


def run(
    names=models.NAMES,
    batches=BATCHES,
    rounds=7,
    block_seconds=0.05,
    json_path=None,
    progress=print,
    isas=("auto",),
):
    """:func:`measure` on one torch thread, with the load average before and after; the
    rows, limits and load averages also go to ``json_path`` when given."""
    torch.set_num_threads(1)
    load = [os.getloadavg()[0]]
    progress(f"load average {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    rows, limits = measure(names, batches, rounds, block_seconds, progress=progress, isas=isas)
    load.append(os.getloadavg()[0])
    progress(f"load average {load[1]:.2f} (1 min) at the end")
    if json_path:
        Path(json_path).write_text(
            json.dumps({"limits": limits, "rows": rows, "load_average": load}, indent=1)
        )
    return rows, limits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(models.NAMES))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block-seconds", type=float, default=0.05)
    parser.add_argument(
        "--isa",
        nargs="+",
        default=["auto"],
        choices=list(ISAS),
        help="the native kernels to time, each in every round (default: auto, the widest)",
    )
    parser.add_argument("--out", help="write the rows and limits as JSON here")
    args = parser.parse_args(argv)
    run(args.models, args.batches, args.rounds, args.block_seconds, args.out, isas=args.isa)


if __name__ == "__main__":
    main()
