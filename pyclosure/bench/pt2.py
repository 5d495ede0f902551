"""The benchmark's AOTInductor packages (``.pt2``), compiled once and cached.

Compiling a package takes 30-70 s, so :func:`package` keeps each one in a cache
folder under a key made of everything the compiled code depends on: the module's
class and layers, its weights (SHA-256), the example's dtype and shape, torch's
version and the compile options. A later run with the same key copies the cached
package instead of compiling.

The package is built as the bridge accepts it: ``torch.export`` with a dynamic
batch dimension (1 and up), compiled for x86-64-v3 with the pyclosure contract in
its metadata. With ``pyclosure.export(..., format="pt2")`` available, that is used.
"""

import hashlib
import inspect
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import torch

from ..export import export, weights_sha256

ISA = "x86-64-v3"
FEATURES = ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi", "bmi2"]
INDUCTOR = {"cpp.march": ISA, "cpp.simdlen": 256, "cpp.dynamic_threads": True}


def default_cache():
    """``$PYCLOSURE_BENCH_CACHE``, else ``$XDG_CACHE_HOME/pyclosure/bench`` (``~/.cache/...``)."""
    if os.environ.get("PYCLOSURE_BENCH_CACHE"):
        return Path(os.environ["PYCLOSURE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyclosure" / "bench"


def unsupported_reason():
    """Why this machine cannot build or run the benchmark's packages, or None."""
    if platform.machine() != "x86_64":
        return f"the benchmark's packages are compiled for x86-64-v3; this machine is {platform.machine()}"
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    missing = [f for f in ("avx2", "fma", "bmi2", "f16c") if f" {f}" not in flags]
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which the benchmark's x86-64-v3 packages need"
    return None


def _native_export():
    return "format" in inspect.signature(export).parameters


def _key(module, example):
    h = hashlib.sha256()
    parts = [type(module).__name__, repr(module), weights_sha256(module), str(example.dtype),
             str(tuple(example.shape[1:])), torch.__version__, json.dumps(INDUCTOR, sort_keys=True),
             ISA, "native" if _native_export() else "snippet"]
    h.update("|".join(parts).encode())
    return h.hexdigest()[:24]


def _compile(module, path, example):
    """Write the package for ``module`` to ``path`` (what the bridge accepts)."""
    if _native_export():
        export(module, path, example, format="pt2")
        return
    from torch._inductor import aoti_compile_and_package

    with tempfile.TemporaryDirectory() as tmp:  # the TorchScript export only gives the contract
        contract = export(module, f"{tmp}/contract.pt", example, input_names=["x"])
    contract["format"] = "pt2"
    contract["batch_range"] = [1, None]
    contract["inputs"][0]["ranges"] = [None] * len(contract["inputs"][0]["shape"])
    contract["engine"] = {"name": "aotinductor", "machine": "x86_64", "cpu_isa": ISA, "cpu_features": FEATURES}
    batch = torch.export.Dim("batch", min=1)
    ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
    configs = {"aot_inductor.metadata": {"pyclosure_contract": json.dumps(contract)}, **INDUCTOR}
    aoti_compile_and_package(ep, package_path=str(path), inductor_configs=configs)


def package(module, example, path, cache=None, progress=print):
    """Put the ``.pt2`` of ``module`` at ``path``: from the cache, else compiled (and cached).

    Parameters
    ----------
    module : torch.nn.Module
        The benchmark closure, in eval mode.
    example : torch.Tensor
        An input ``(batch, nin)`` of the right dtype (batch > 1).
    path : str or os.PathLike
        Where the package goes.
    cache : str or os.PathLike, optional
        The cache folder (default :func:`default_cache`); ``""`` compiles without caching.

    Returns
    -------
    bool
        True when the package came from the cache.
    """
    folder = default_cache() if cache is None else (Path(cache) if cache else None)
    cached = folder / f"{_key(module, example)}.pt2" if folder else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, path)
        return True
    progress(f"  compiling {Path(path).name} with AOTInductor (30-70 s; cached afterwards)")
    _compile(module, path, example)
    if cached is not None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, cached)  # atomic: a parallel run never reads half a package
    return False
