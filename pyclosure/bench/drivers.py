"""The benchmark's driver processes: one per route, model and thread count.

Each driver loads one model, sets its thread count, prints a ready line and then
answers commands on stdin (``time|dump|alloc BATCH WARMUP CALLS``, ``quit``) with
one JSON line each (see ``cbridge/bench/floor.cpp``). Idle drivers wait in a
blocking read, so only the driver being asked runs.
"""

import importlib.resources
import json
import os
import site
import subprocess
import sys
from pathlib import Path

from ..errors import ClosureError

ROUTES = (
    "floor",
    "c",
    "fortran",
    "python",
    "embedded",
    "c_pt2",
    "fortran_pt2",
    "python_pt2",
    "c_native",
    "fortran_native",
    "python_native",
    "python_device",
)
# The routes that run the model's AOTInductor package (.pt2) instead of its TorchScript file.
PT2_ROUTES = ("c_pt2", "fortran_pt2", "python_pt2")
# The routes that run the model's native program (.nnp) through the bridge.
NATIVE_ROUTES = ("c_native", "fortran_native", "python_native")
# The routes whose arrays stay in the GPU's memory (run with --device cuda:N only).
DEVICE_ROUTES = ("python_device",)
# Not a driver: the native program run in this process by the cffi twin
# (pyclosure._native_twin, the same C kernels without the bridge).
TWIN = "twin"
# Whose output each route must give bit for bit: the bridge's .pt2 routes must give
# what Python's torch._inductor.aoti_load_package gives; the native routes what the
# cffi twin gives; the others the floor's.
REFERENCE = {"c_pt2": "python_pt2", "fortran_pt2": "python_pt2", **{r: TWIN for r in NATIVE_ROUTES}}

LABELS = {
    "floor": "C++ libtorch (floor)",
    "c": "C nnc_model_forward",
    "fortran": "Fortran nn_forward",
    "python": "Python torch",
    "embedded": "Fortran to embedded Python",
    "c_pt2": "C nnc_model_forward .pt2",
    "fortran_pt2": "Fortran nn_forward .pt2",
    "python_pt2": "Python aoti_load_package .pt2",
    "c_native": "C nnc_model_forward .nnp",
    "fortran_native": "Fortran nn_forward .nnp",
    "python_native": "Python bridge.Model .nnp",
    "python_device": "Python bridge.Model, arrays on the GPU",
    TWIN: "cffi twin .nnp",
}

_PROGRAMS = {
    "floor": "bench_floor",
    "c": "bench_floor",
    "fortran": "bench_fortran",
    "embedded": "bench_embedded",
    "c_pt2": "bench_floor",
    "fortran_pt2": "bench_fortran",
    "c_native": "bench_floor",
    "fortran_native": "bench_fortran",
}


class BenchError(ClosureError):
    """A benchmark driver failed or could not start."""


def package_dir():
    return Path(str(importlib.resources.files("pyclosure")))


def command(route):
    """The driver command of ``route`` (without its arguments), or None if it is not built."""
    if route in ("python", "python_pt2", "python_native", "python_device"):
        return [sys.executable, "-m", "pyclosure.bench.torch_route"]
    program = package_dir() / "bin" / _PROGRAMS[route]
    return [str(program)] if program.exists() else None


def missing_reason(route):
    """Why ``route`` cannot run here, or None."""
    if command(route) is not None:
        return None
    if route == "embedded":
        return "bench_embedded is not built (the build found no libpython to embed)"
    return f"{_PROGRAMS[route]} is not built"


def alloc_counter():
    """Path of the preloadable allocation counter library, or None."""
    lib = package_dir() / "lib" / "libbench_alloc_counter.so"
    return str(lib) if lib.exists() else None


# glibc's malloc adapts its mmap and trim thresholds to each process's history, so
# the same call can page-fault on fresh memory every time in one driver and not in
# another (up to 20 % apart at large batches). Fixed thresholds make every driver's
# heap behave alike: blocks up to 32 MiB are reused, larger ones always mmapped.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"


def _environment(route, threads, preload, tunables):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if tunables:
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), tunables]))
    if route == "embedded":
        # The embedded interpreter imports what this one imports (see embed_source.py).
        env["PYCLOSURE_BENCH_SYSPATH"] = os.pathsep.join(sys.path)
        folders = [*site.getsitepackages(), site.getusersitepackages()]
        env["PYCLOSURE_BENCH_SITE"] = os.pathsep.join(f for f in folders if os.path.isdir(f))
        env["PYTHONHOME"] = f"{sys.base_prefix}{os.pathsep}{sys.base_exec_prefix}"
    if preload:
        env["LD_PRELOAD"] = " ".join(filter(None, [preload, env.get("LD_PRELOAD")]))
    return env


class Driver:
    """A running driver process for one route, model and thread count.

    Parameters
    ----------
    route : str
        One of :data:`ROUTES`.
    model : pyclosure.bench.models.BenchModel
        The exported model it runs.
    threads : int
        Intra-op thread count of the process.
    device : str
        ``"cpu"`` or ``"cuda:N"``.
    folder : pathlib.Path
        Receives the driver's output dumps and its stderr log.
    preload : str, optional
        A library to preload (the allocation counter).
    tunables : str, optional
        glibc malloc tunables for the process (default :data:`MALLOC_TUNABLES`; "" for none).
    """

    def __init__(self, route, model, threads, device, folder, preload=None, tunables=MALLOC_TUNABLES):
        self.route, self.model, self.threads = route, model, threads
        cmd = command(route)
        if cmd is None:
            raise BenchError(f"route {route}: {missing_reason(route)}")
        path = (
            model.pt2_path
            if route in PT2_ROUTES
            else model.native_path
            if route in NATIVE_ROUTES
            else model.path
        )
        args = [route, path, model.dtype, model.nin, model.nout, threads, device, folder]
        self.log_path = Path(folder) / f"{route}{'-alloc' if preload else ''}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in close())
        # The Python driver runs from the folder holding this pyclosure, so that "-m" imports this one
        # (with its compiled parts), not a source tree in the current directory.
        cwd = package_dir().parent if cmd[0] == sys.executable else None
        self.proc = subprocess.Popen(
            [*cmd, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            cwd=cwd,
            env=_environment(route, threads, preload, tunables),
        )

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            self._log.flush()
            err = self.log_path.read_text().strip()[-2000:]
            raise BenchError(
                f"driver {self.route} ({self.model.name}, {self.threads} thread(s)) stopped "
                f"with exit code {self.proc.returncode}: {err or 'no message'}"
            )
        return json.loads(line)

    def ready(self):
        """Wait for the driver's ready line; return it."""
        return self._read()

    def ask(self, op, batch, warmup=0, calls=0):
        """Send one command and return the driver's answer (a dict)."""
        try:
            self.proc.stdin.write(f"{op} {batch} {warmup} {calls}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # _read reports the driver's own message
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start(routes, model, threads, device, folder, preload=None, tunables=MALLOC_TUNABLES):
    """Start one driver per route (all at once) and wait until each is ready."""
    drivers = {}
    try:
        for r in routes:
            drivers[r] = Driver(r, model, threads, device, folder, preload, tunables)
        for d in drivers.values():
            d.ready()
    except BaseException:
        stop(drivers)
        raise
    return drivers


def stop(drivers):
    for d in drivers.values():
        d.close()
