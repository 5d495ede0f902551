"""The benchmark's closures, exported with fixed weights, and their flop counts.

* ``mlp32``, ``mlp64``: a column closure of the usual size, 30 inputs, two hidden
  layers of 128 with tanh, 31 outputs (:func:`pyclosure.models.mlp`), float32 and float64;
* ``burgers``: the demo's kind of Burgers closure, a
  :class:`pyclosure.models.PeriodicFluxClosure` (stencil 6, hidden 32, depth 2,
  tanh) in float64 on 128 cells: ``u (batch, 128) -> flux (batch, 128)``.

Each model is exported as TorchScript (``.pt``), for the AOTInductor routes as a
``.pt2`` package (:mod:`.pt2`, compiled once and cached) and, for the native routes,
as a native program (``.nnp``, written in well under a second).

Weights are seeded random (their values do not change the cost). Flops count the
multiply-adds of the linear and convolution layers (2 per multiply-add) and ignore
activations, padding and normalisation.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from ..export import export
from ..models import PeriodicFluxClosure, mlp
from . import pt2

NAMES = ("mlp32", "mlp64", "burgers")


@dataclass(frozen=True)
class BenchModel:
    """One exported benchmark closure: ``x (batch, nin) -> y (batch, nout)``."""

    name: str
    path: str
    dtype: str
    nin: int
    nout: int
    flops_per_sample: int
    description: str
    pt2_path: str = None  # its AOTInductor package, None when not built
    pt2_cached: bool = False  # the package came from the cache
    pt2_error: str = None  # why the package could not be built
    native_path: str = None  # its native program, None when not written
    native_error: str = None  # why the module has no native program
    weight_bytes: int = 0  # bytes of its parameters (what one call must read at least)


def _module(name):
    torch.manual_seed(1234)
    if name in ("mlp32", "mlp64"):
        dtype = torch.float32 if name == "mlp32" else torch.float64
        return mlp(30, 31, hidden=128, depth=2, act="tanh").to(dtype), 30, dtype, "MLP 30-128-128-31 tanh"
    if name == "burgers":
        module = PeriodicFluxClosure(1, stencil=6, hidden=32, depth=2, act="tanh", dx=100.0 / 128)
        return module.double(), 128, torch.float64, "Burgers flux closure, 128 cells, stencil 6, hidden 32"
    raise ValueError(f"unknown benchmark model {name!r}; choose from {', '.join(NAMES)}")


def flops_per_sample(module, example):
    """2 x multiply-adds of the Linear and Conv1d layers per sample of ``example``."""
    macs = []

    def count(layer, _inputs, output):
        if isinstance(layer, torch.nn.Linear):
            macs.append(output.numel() * layer.in_features)
        elif isinstance(layer, torch.nn.Conv1d):
            macs.append(output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0])

    hooks = [
        m.register_forward_hook(count)
        for m in module.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
    ]
    with torch.no_grad():
        module(example)
    for h in hooks:
        h.remove()
    return 2 * sum(macs) // example.shape[0]


def _native(module, example, path, progress):
    """Write the native program of ``module`` at ``path``; (path, None) or (None, why not)."""
    try:
        export(module, path, example)
        return path, None
    except Exception as exc:  # noqa: BLE001 (an ineligible module raises NotNativeError; the check others)
        error = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
        progress(f"  {Path(path).stem}: no native program ({error})")
        return None, error


def build(name, folder, with_pt2=False, cache=None, progress=print, with_native=False):
    """Export benchmark model ``name`` into ``folder``; return its :class:`BenchModel`.

    ``with_pt2`` also puts its AOTInductor package there (from ``cache``, see
    :func:`.pt2.package`); if that fails, the model has no package and says why.
    ``with_native`` also writes its native program (``.nnp``), or says why it has none.
    """
    module, nin, dtype, description = _module(name)
    module.eval()
    example = torch.zeros(4, nin, dtype=dtype)
    y = module(example)
    path = f"{folder}/{name}.pt"
    export(module, path, example)
    pt2_path, cached, error = None, False, None
    if with_pt2:
        try:
            cached = pt2.package(module, example, f"{folder}/{name}.pt2", cache, progress)
            pt2_path = f"{folder}/{name}.pt2"
        except Exception as exc:  # noqa: BLE001 (torch.export and inductor raise many kinds)
            error = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
            progress(f"  {name}: no AOTInductor package ({error})")
    native_path, native_error = (
        _native(module, example, f"{folder}/{name}.nnp", progress) if with_native else (None, None)
    )
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    return BenchModel(
        name,
        path,
        str(dtype).replace("torch.", ""),
        nin,
        y.shape[1],
        flops_per_sample(module, example),
        description,
        pt2_path,
        cached,
        error,
        native_path,
        native_error,
        weight_bytes,
    )
