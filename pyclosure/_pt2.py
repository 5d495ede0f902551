"""The ``.pt2`` writer: ``torch.export`` then AOTInductor, into one package per model.

``pyclosure.export(..., format="pt2")`` calls these in order: :func:`export_program`
(the graph, batch dim and declared variable dims dynamic), :func:`engine` (what
CPU the package is built for), :func:`ranges` (the sizes the graph accepts, for
the contract) and :func:`compile_package` (native code, written atomically).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from ._files import publish

__all__ = [
    "CPU_FEATURES",
    "CPU_ISAS",
    "DEFAULT_CPU_ISA",
    "cache_dir",
    "compile_package",
    "engine",
    "export_program",
    "host_cpu_features",
    "inductor_cache",
    "ranges",
]

#: CPU feature names a contract may list, in this order.
CPU_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi",
    "bmi2",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_fp16",
    "amx_tile",
)
_V2 = ("sse4_2",)
_V3 = _V2 + ("avx", "avx2", "fma", "f16c", "bmi", "bmi2")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512dq", "avx512vl")
#: cpu_isa -> (inductor simdlen, CPU features the code needs); "native" is read from this CPU.
CPU_ISAS = {"x86-64-v2": (128, _V2), "x86-64-v3": (256, _V3), "x86-64-v4": (512, _V4), "native": (None, None)}
DEFAULT_CPU_ISA = "x86-64-v3"
#: /proc/cpuinfo flag -> contract feature name (they differ for bmi only).
_CPUINFO_NAMES = {**{name: name for name in CPU_FEATURES}, "bmi1": "bmi"}
_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def cache_dir(path: str | os.PathLike | None = None) -> str:
    """The inductor compile cache: ``path``, else ``$PYCLOSURE_CACHE_DIR``, else ``~/.cache/pyclosure/inductor``.

    The home default keeps compiled code of earlier exports across reboots
    (inductor's own default is under the temp folder), so re-exports are faster.
    """
    chosen = path or os.environ.get("PYCLOSURE_CACHE_DIR") or "~/.cache/pyclosure/inductor"
    return os.path.abspath(os.path.expanduser(os.fspath(chosen)))


def host_cpu_features(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The features of :data:`CPU_FEATURES` this CPU has (from the kernel's flags line; [] if unreadable)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    have = {_CPUINFO_NAMES[flag] for flag in flags if flag in _CPUINFO_NAMES}
    return [name for name in CPU_FEATURES if name in have]


def engine(cpu_isa: str | None = None, machine: str | None = None, device: str = "cpu") -> tuple[dict, dict]:
    """The contract's ``engine`` entry and the inductor settings that build for it.

    Parameters
    ----------
    cpu_isa : {"x86-64-v3", "x86-64-v2", "x86-64-v4", "native"}, optional
        x86-64 micro-architecture level to compile for (default x86-64-v3,
        AVX2-class). Ignored on other machines, which build for themselves.
    machine : str, optional
        ``platform.machine()`` by default (a parameter for tests).
    device : str
        "cpu", or "cuda"/"cuda:N" for a package of CUDA kernels: then no CPU
        level is pinned (the host code of such a package is plain C++ built for
        ``machine``), and the entry says "cuda".

    Returns
    -------
    (dict, dict)
        The engine entry and the ``inductor_configs`` for it.
    """
    cpu_isa = DEFAULT_CPU_ISA if cpu_isa is None else cpu_isa
    if cpu_isa not in CPU_ISAS:
        raise ValueError(f"cpu_isa must be one of {sorted(CPU_ISAS)}, got {cpu_isa!r}")
    machine = machine or platform.machine()
    info = {
        "name": "aotinductor",
        "device": "cpu",
        "machine": machine,
        "cpu_isa": "native",
        "cpu_features": [],
        "simdlen": None,
        "torch_version": torch.__version__,
    }
    configs = {}
    if device != "cpu":
        info.update(device="cuda", cpu_isa=None)
        return info, configs
    if machine != "x86_64":  # no levels to pin: inductor builds for this CPU
        return info, configs
    if cpu_isa == "native":
        info["cpu_features"] = host_cpu_features()
        info["simdlen"] = _native_simdlen()
        return info, configs
    simdlen, features = CPU_ISAS[cpu_isa]
    info.update(cpu_isa=cpu_isa, cpu_features=list(features), simdlen=simdlen)
    configs = {"cpp.march": cpu_isa, "cpp.simdlen": simdlen}
    missing = sorted(set(features) - set(host_cpu_features()))
    if missing:
        warnings.warn(
            f"this CPU lacks {', '.join(missing)}: the {cpu_isa} package cannot run here, and inductor "
            "builds its kernels without vector code",
            stacklevel=3,
        )
    return info, configs


def _native_simdlen() -> int | None:
    """The vector width (bits) inductor picks for this CPU, None for none."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return pick_vec_isa().bit_width() or None


def _widen(x: Tensor, axes: Sequence[int]) -> Tensor:
    """x with each listed axis of extent 1 grown to 2 (export would specialise the dim to 1)."""
    for axis in axes:
        if x.shape[axis] == 1:
            x = x.index_select(axis, torch.zeros(2, dtype=torch.long, device=x.device))
    return x


def export_program(
    module: torch.nn.Module, inputs: Sequence[Tensor], names: Sequence[str], variable: dict[str, list[int]]
) -> tuple[Any, tuple[Tensor, ...], float]:
    """``torch.export`` the module: batch dim dynamic (min 1), each variable dim dynamic.

    Returns
    -------
    (torch.export.ExportedProgram, tuple of Tensor, float)
        The program, the example inputs it was traced with (an extent of 1 in
        a dynamic dim is grown to 2) and the seconds it took.
    """
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple(
        {0: batch, **{d + 1: torch.export.Dim.DYNAMIC for d in variable.get(n, [])}} for n in names
    )
    traced = tuple(_widen(x, list(s)) for x, s in zip(inputs, shapes))
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            program = torch.export.export(module, traced, dynamic_shapes=shapes, strict=False)
    except Exception as exc:
        raise RuntimeError(f"torch.export could not export {type(module).__name__}: {exc}") from exc
    return program, traced, time.perf_counter() - start


def _bounds(program: Any, size: Any) -> list | None:
    """None for a fixed extent, else [min, max] of its symbol (max None when unbounded)."""
    from torch.utils._sympy.numbers import int_oo

    if isinstance(size, int):
        return None
    found = program.range_constraints.get(size.node.expr)
    if found is None:
        return [None, None]
    return [int(found.lower), None if found.upper == int_oo else int(found.upper)]


def ranges(program: Any) -> tuple[list | None, list[list]]:
    """The batch dim's range and, per input, one range per per-sample dim (None where fixed)."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    shapes = [placeholders[name].meta["val"].shape for name in program.graph_signature.user_inputs]
    per_input = [[_bounds(program, s) for s in shape[1:]] for shape in shapes]
    return _bounds(program, shapes[0][0]), per_input


@contextlib.contextmanager
def inductor_cache(path: str | os.PathLike | None = None) -> Iterator[None]:
    """TORCHINDUCTOR_CACHE_DIR set to :func:`cache_dir` ``(path)`` for the block only.

    Inductor reads the variable at each use, so this moves its compile output;
    it also sets the variable when it finds it unset (even ``torch.export``
    does), which is why the export runs inside this block too.
    """
    path = cache_dir(path)
    os.makedirs(path, exist_ok=True)
    before = os.environ.get(_CACHE_ENV)
    os.environ[_CACHE_ENV] = path
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_CACHE_ENV, None)
        else:
            os.environ[_CACHE_ENV] = before


def compile_package(program: Any, path: str | os.PathLike, contract_text: str, configs: dict) -> float:
    """AOTInductor-compile ``program`` into the package ``path``; return the seconds it took.

    The package is built under a temporary folder next to ``path`` (so its
    archive folder is named after ``path``) and moved into place at the end:
    ``path`` is never half written, and nothing is left behind on failure.
    Precompiled headers are off: inductor keeps them in a folder of its own
    (fixed at import), and all compile output should go to the cache folder
    of :func:`inductor_cache`, which the caller sets.
    """
    from torch._inductor import aoti_compile_and_package

    path = os.path.abspath(os.fspath(path))
    settings = {
        **configs,
        "aot_inductor.metadata": {"pyclosure_contract": contract_text},
        "cpp.dynamic_threads": True,
        "aot_inductor.precompile_headers": False,
        "cpp_cache_precompile_headers": False,
        # Every weight stays a constant the loader can update (online training's sync);
        # inductor would otherwise compile 1-D weights of up to 8 values into the code.
        "always_keep_tensor_constants": True,
    }
    folder = tempfile.mkdtemp(prefix=".export-", dir=os.path.dirname(path))
    start = time.perf_counter()
    try:
        built = os.path.join(folder, os.path.basename(path))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            aoti_compile_and_package(program, package_path=built, inductor_configs=settings)
        publish(built, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return time.perf_counter() - start
