"""``pyclosure bench``: what calling a closure from Fortran through the bridge costs.

Routes, each a separate driver process (see :mod:`.drivers`):

* ``floor``: C++ calling libtorch directly on preallocated buffers, the least any
  libtorch bridge can do; every other route is given as a ratio to it;
* ``c``: C calling ``nnc_model_forward`` (descriptors filled once);
* ``fortran``: Fortran calling ``nn_forward(model, x, y, stat=, errmsg=)``;
* ``python``: Python calling the TorchScript module with torch;
* ``embedded``: Fortran calling an embedded Python interpreter (cffi embedding)
  that runs the module with torch, as forpy or call_py_fort users do;
* ``c_pt2``, ``fortran_pt2``, ``python_pt2``: the C, Fortran and Python routes on
  the model's AOTInductor package (``.pt2``, :mod:`.pt2`) instead of TorchScript,
  Python through ``torch._inductor.aoti_load_package``;
* ``c_native``, ``fortran_native``, ``python_native``: the C and Fortran routes, and
  Python through :class:`pyclosure.bridge.Model`, on the model's native program
  (``.nnp``, the bridge's native engine, no libtorch in the call), each checked bit for
  bit against the cffi twin (:mod:`pyclosure._native_twin`) on the same program; the
  report also gives their FLOP rate over the core's FMA peak and their weights' read
  rate over its L2 stream, measured in the same run (:func:`.native.machine_limits`).

Models (:mod:`.models`), measurements (:mod:`.run`), tables and JSON (:mod:`.report`).
"""

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from .. import __version__
from ..errors import DeviceUnavailableError
from . import drivers, models, native, pt2, report
from .run import Measurements, Settings, count_allocations, measure_group

__all__ = ["Settings", "check_device", "run"]


def check_device(device):
    """Refuse a device this machine cannot run, with the reason."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise DeviceUnavailableError(f"unknown device '{device}': use cpu or cuda:N")
    if not torch.cuda.is_available():
        why = (
            "this torch was built without CUDA"
            if torch.version.cuda is None
            else "torch finds no CUDA device"
        )
        raise DeviceUnavailableError(
            f"--device {device}: CUDA is not available here ({why}; torch {torch.__version__}). "
            "The GPU mode needs a CUDA build of torch and the bridge built against it."
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pt2_skip_reason(settings):
    """Why no model gets a .pt2 package in this run, or None."""
    if settings.device != "cpu":
        return "the benchmark's packages are compiled for the CPU"
    if not set(settings.pt2_models) & set(settings.models):
        return "no model chosen for it (pt2_models)"
    return pt2.unsupported_reason()


def _native_skip_reason(settings):
    """Why no model gets a native program in this run, or None."""
    if settings.device != "cpu":
        return "the native engine runs on the CPU only"
    if not set(settings.native_models) & set(settings.models):
        return "no model chosen for it (native_models)"
    return None


def _skipped(settings):
    skipped = {r: drivers.missing_reason(r) for r in settings.routes if drivers.missing_reason(r)}
    if settings.device == "cpu":
        skipped.update(
            {
                r: "arrays on the GPU: only with --device cuda:N"
                for r in drivers.DEVICE_ROUTES
                if r in settings.routes and r not in skipped
            }
        )
    for kind, why in (
        (drivers.PT2_ROUTES, _pt2_skip_reason(settings)),
        (drivers.NATIVE_ROUTES, _native_skip_reason(settings)),
    ):
        if why:
            skipped.update({r: why for r in kind if r in settings.routes and r not in skipped})
    return skipped


def _measure(settings, folder, progress):
    skipped = _skipped(settings)
    routes = [r for r in settings.routes if r not in skipped]
    if "floor" not in routes:
        raise drivers.BenchError("the floor route (bench_floor) is needed: every ratio is taken to it")
    with_pt2 = any(r in routes for r in drivers.PT2_ROUTES)
    with_native = any(r in routes for r in drivers.NATIVE_ROUTES)
    built = [
        models.build(
            n,
            folder,
            with_pt2 and n in settings.pt2_models,
            settings.pt2_cache,
            progress,
            with_native and n in settings.native_models,
        )
        for n in settings.models
    ]
    out = Measurements()
    first = next((m for m in built if m.native_path), None)
    if first is not None:
        out.limits = native.machine_limits(first, folder)
    for m in built:
        for t in settings.threads:
            sub = Path(folder) / f"{m.name}-{t}t"
            sub.mkdir()
            measure_group(m, t, settings, sub, routes, out, progress)
        if settings.device == "cpu" and m.name in settings.alloc_models:
            sub = Path(folder) / f"{m.name}-alloc"
            sub.mkdir()
            count_allocations(m, settings, sub, routes, out, progress)
    return built, routes, skipped, out


def run(settings, json_path=None, keep=None, progress=print):
    """Measure, print the report, write the JSON; return the document (a dict).

    Parameters
    ----------
    settings : Settings
        What to measure (``Settings()`` full, ``Settings.for_quick()`` short).
    json_path : str, optional
        Where to write the JSON document.
    keep : str, optional
        A folder for the exported models and driver logs (default: a temporary one).
    """
    check_device(settings.device)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pyclosure-bench-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        built, routes, skipped, out = _measure(settings, folder.resolve(), progress)
    doc = {
        "schema": "pyclosure.bench/1",
        "pyclosure_version": __version__,
        "torch_version": torch.__version__,
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
        "settings": settings.asdict(),
        "routes": routes,
        "route_labels": {r: drivers.LABELS[r] for r in routes},
        "skipped_routes": skipped,
        "bind_once_form": None,
        "models": [
            {k: v for k, v in vars(m).items() if k not in ("path", "pt2_path", "native_path")}
            | {"pt2": bool(m.pt2_path), "native": bool(m.native_path)}
            for m in built
        ],
        "limits": out.limits,
        "results": out.results,
        "agreement": out.agreement,
        "allocations": out.allocations,
    }
    doc["targets"] = report.targets(doc)
    doc["elapsed_s"] = round(time.monotonic() - start, 1)
    progress(report.text(doc))
    if json_path:
        Path(json_path).write_text(json.dumps(doc, indent=1) + "\n")
    return doc
