"""The benchmark's AOTInductor packages (``.pt2``), compiled once and cached.

Each package is written by ``pyclosure.export(..., format="pt2")`` with its defaults
(x86-64-v3 on x86_64). Compiling takes 30-70 s, so :func:`package` keeps each one in
a cache folder under a key made of everything the compiled code depends on: the
module's class and layers, its weights (SHA-256), the example's dtype and per-sample
shape, torch's version and the CPU level. A later run with the same key copies the
cached package instead of compiling.
"""

import hashlib
import os
import platform
import shutil
from pathlib import Path

import torch

from .. import _pt2
from ..export import export, weights_sha256


def default_cache():
    """``$PYCLOSURE_BENCH_CACHE``, else ``$XDG_CACHE_HOME/pyclosure/bench`` (``~/.cache/...``)."""
    if os.environ.get("PYCLOSURE_BENCH_CACHE"):
        return Path(os.environ["PYCLOSURE_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pyclosure" / "bench"


def unsupported_reason():
    """Why this machine cannot run the packages the benchmark builds, or None."""
    if platform.machine() != "x86_64":
        return None  # packages are built for this machine itself
    _, needed = _pt2.CPU_ISAS[_pt2.DEFAULT_CPU_ISA]
    missing = sorted(set(needed) - set(_pt2.host_cpu_features()))
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which {_pt2.DEFAULT_CPU_ISA} packages need"
    return None


def _key(module, example):
    parts = [
        type(module).__name__,
        repr(module),
        weights_sha256(module),
        str(example.dtype),
        str(tuple(example.shape[1:])),
        torch.__version__,
        platform.machine(),
        _pt2.DEFAULT_CPU_ISA,
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def package(module, example, path, cache=None, progress=print):
    """Put the ``.pt2`` of ``module`` at ``path``: from the cache, else compiled (and cached).

    Parameters
    ----------
    module : torch.nn.Module
        The benchmark closure, in eval mode.
    example : torch.Tensor
        An input ``(batch, nin)`` of the right dtype.
    path : str or os.PathLike
        Where the package goes.
    cache : str or os.PathLike, optional
        The cache folder (default :func:`default_cache`); ``""`` compiles without caching.
    progress : callable
        Told when a package is compiled.

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
    export(module, path, example, format="pt2")
    if cached is not None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, cached)  # atomic: a parallel run never reads half a package
    return False
