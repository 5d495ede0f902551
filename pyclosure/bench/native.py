"""The native kernels against the libtorch floor, one thread, interleaved rounds.

    python -m pyclosure.bench.native [--batches 1 4 16 64 256 4096] [--rounds 7] [--out DIR]

For each benchmark closure (:mod:`pyclosure.bench.models`: ``mlp32``, ``mlp64``,
``burgers``) the TorchScript file runs in ``bench_floor floor`` (libtorch called directly,
the least any bridge over libtorch does) and the same module, written as a native program,
in ``bench_native``. For each batch size both first dump their output for the fixed input
(compared: the native engine is not bit for bit with torch, so the largest difference is
reported), then ``rounds`` rounds follow, each one block of calls per driver in alternating
order; a round's ratio is native median / floor median, and the reported ratio is the median
over rounds (so slow drift of a shared machine cancels). In the same run ``bench_native``
measures the core's FMA peak and its read bandwidth from an L2-sized buffer; the report
gives the native kernels' fraction of each (FLOP rate over the peak; weight bytes per call
over the time a stream of that size takes). Limits and rates use the driver thread's CPU
time (on a shared machine a long call's wall time includes other processes' time slices);
the ratios compare wall times, measured alike in both drivers.
"""

import argparse
import json
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
from . import drivers, models

BATCHES = (1, 4, 16, 64, 256, 4096)


class NativeDriver(drivers.Driver):
    """``bench_native`` speaking the drivers' protocol (examples/bench/README.md)."""

    def __init__(self, model, threads, folder):
        program = drivers.package_dir() / "bin" / "bench_native"
        if not program.exists():
            raise drivers.BenchError("bench_native is not built")
        self.route, self.model, self.threads = "native", model, threads
        self.log_path = Path(folder) / "native.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in close())
        args = ["native", model.path, model.dtype, model.nin, model.nout, threads, "cpu", folder]
        self.proc = subprocess.Popen([str(program), *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)


def machine_limits(model, folder):
    """The core's FMA peak and L2 read bandwidth, measured by ``bench_native`` on one thread.

    ``model`` is a :class:`~pyclosure.bench.models.BenchModel` whose ``native_path`` the
    driver loads (it needs a program to start). Returns a dict (``peak_gflops_f32``,
    ``peak_gflops_f64``, ``stream_gbs``, ``bytes``), or None where ``bench_native`` is not
    built or the CPU lacks AVX2 and FMA (which the measurement uses).
    """
    if not (drivers.package_dir() / "bin" / "bench_native").exists():
        return None
    if platform.machine() != "x86_64" or not {"avx2", "fma"} <= set(_pt2.host_cpu_features()):
        return None
    native = NativeDriver(models.BenchModel(**{**model.__dict__, "path": model.native_path}), 1, folder)
    try:
        native.ready()
        return {**native.ask("peak", 0, 0, 100_000_000), **native.ask("stream", 262_144, 0, 20_000)}
    finally:
        native.close()


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


def _rounds(floor, native, batch, rounds, block_seconds):
    probe = min(floor.ask("time", batch, 2, 3)["t"]) * 1e-9
    calls = int(min(max(block_seconds / probe, 3), 3000))
    ratios, medians = [], {"floor": [], "native": [], "native_cpu": []}
    for k in range(rounds):
        pair = [("floor", floor), ("native", native)]
        got = {}
        for name, d in pair if k % 2 == 0 else pair[::-1]:
            answer = d.ask("time", batch, max(2, calls // 10), calls)
            got[name] = statistics.median(answer["t"])
            medians[name].append(got[name])
            if "cpu_per_call" in answer:
                medians[name + "_cpu"].append(answer["cpu_per_call"])
        ratios.append(got["native"] / got["floor"])
    return ratios, {k: statistics.median(v) for k, v in medians.items()}


def measure(names=models.NAMES, batches=BATCHES, rounds=7, block_seconds=0.05, folder=None, progress=print):
    """Run the comparison; return a list of result rows and the machine's limits."""
    folder = Path(folder or tempfile.mkdtemp(prefix="pyclosure-native-bench-"))
    rows, limits = [], None
    for name in names:
        torch_model = models.build(name, folder)
        native_model, weight_bytes = _native_model(torch_model, folder)
        floor = drivers.Driver("floor", torch_model, 1, "cpu", folder)
        native = NativeDriver(native_model, 1, folder)
        try:
            floor.ready()
            native.ready()
            if limits is None:
                limits = {**native.ask("peak", 0, 0, 100_000_000), **native.ask("stream", 262_144, 0, 20_000)}
                progress(f"machine: FMA peak {limits['peak_gflops_f32']:.1f} GFLOP/s float32, "
                         f"{limits['peak_gflops_f64']:.1f} float64; L2 read {limits['stream_gbs']:.1f} GB/s")
            for batch in batches:
                diff = _agreement(floor, native, torch_model, batch, folder)
                ratios, med = _rounds(floor, native, batch, rounds, block_seconds)
                gflops = torch_model.flops_per_sample * batch / med["native_cpu"]
                peak = limits["peak_gflops_f32" if torch_model.dtype == "float32" else "peak_gflops_f64"]
                row = {"model": name, "batch": batch, "ratio": statistics.median(ratios),
                       "ratio_min": min(ratios), "ratio_max": max(ratios), "floor_ns": med["floor"],
                       "native_ns": med["native"], "native_cpu_ns": med["native_cpu"],
                       "native_gflops": gflops,
                       "fma_fraction": gflops / peak, "weights_gbs": weight_bytes / med["native_cpu"],
                       "l2_fraction": weight_bytes / med["native_cpu"] / limits["stream_gbs"],
                       "max_rel_diff": diff}
                rows.append(row)
                progress(f"{name:8s} batch {batch:5d}: native/floor {row['ratio']:.3f} "
                         f"[{row['ratio_min']:.3f}, {row['ratio_max']:.3f}]  "
                         f"native {med['native'] / 1e3:9.2f} us floor {med['floor'] / 1e3:9.2f} us  "
                         f"{gflops:6.2f} GFLOP/s = {100 * row['fma_fraction']:4.1f}% FMA peak, "
                         f"weights at {100 * row['l2_fraction']:5.1f}% of L2 read; "
                         f"max |diff| {diff:.2g} of max |y|")
        finally:
            floor.close()
            native.close()
    return rows, limits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(models.NAMES))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--block-seconds", type=float, default=0.05)
    parser.add_argument("--out", help="write the rows and limits as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows, limits = measure(args.models, args.batches, args.rounds, args.block_seconds)
    if args.out:
        Path(args.out).write_text(json.dumps({"limits": limits, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
