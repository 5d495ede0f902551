"""Export a trained torch module as a model file that carries its contract.

Three formats: TorchScript (``.pt``, the default for now), AOTInductor
packages (``.pt2``, built by ``torch.export`` and AOTInductor in ``_pt2``) and
native programs (``.nnp``, run by the bridge's own C kernels, written by
``_native``). The contract is built here, the same way for all.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import inspect
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import _pt2
from ._files import publish
from .contract import EXTRA_FILE, SCHEMA

__all__ = ["FORMATS", "data_fingerprint", "export", "weights_sha256"]

#: The contract hook's dict, the example inputs, their names and their variable dims.
Signature = tuple[dict, tuple[Tensor, ...], list[str], dict[str, list[int]]]
#: Runs the compiled module on a tuple of inputs, returning its outputs as a tuple.
Runner = Callable[[Sequence[Tensor]], tuple[Tensor, ...]]


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(arrays: Any) -> dict:
    """SHA-256 and sizes of training data (arrays or tensors), for the contract."""
    h = hashlib.sha256()
    shapes = []
    for a in _as_tuple(arrays):
        a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        h.update(f"{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
        shapes.append(list(a.shape))
    return {"sha256": h.hexdigest(), "shapes": shapes}


def _compile(module: torch.nn.Module, example_inputs: tuple[Tensor, ...], method: str) -> Any:
    if method == "script":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*torch.jit.*")
            return torch.jit.script(module)
    if method == "trace":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.*")
            return torch.jit.trace(module, example_inputs)
    raise ValueError(f"method must be 'script' or 'trace', got {method!r}")


def _grow(x: Tensor, dims: Sequence[int], extra: int) -> Tensor:
    """x with each listed per-sample dim grown by `extra` (values repeated cyclically)."""
    for d in dims:
        axis = d + 1
        n = x.shape[axis]
        idx = torch.arange(n + extra) % max(n, 1)
        x = x.index_select(axis, idx)
    return x


def _output_dims(
    run: Runner, inputs: tuple[Tensor, ...], names: list[str], variable: dict[str, list[int]]
) -> list[list]:
    """Per-sample output dims: fixed, or derived from a variable input dim."""
    base = [tuple(o.shape) for o in run(inputs)]
    if not any(variable.values()):
        return [list(s[1:]) for s in base]
    grown = tuple(_grow(x, variable.get(n, []), 1) for x, n in zip(inputs, names))
    probe = [tuple(o.shape) for o in run(grown)]
    result = []
    for b, p in zip(base, probe):
        dims = []
        for d in range(1, len(b)):
            if b[d] == p[d]:
                dims.append(b[d])
                continue
            src = next(
                ((n, vd) for x, n in zip(inputs, names) for vd in variable.get(n, []) if p[d] - b[d] == 1),
                None,
            )
            if src is None:
                dims.append(-1)
            else:
                x = inputs[names.index(src[0])]
                dims.append({"input": src[0], "dim": src[1], "offset": b[d] - x.shape[src[1] + 1]})
        result.append(dims)
    return result


FORMATS = ("torchscript", "pt2", "native")


def _check_device(format: str, device: Any) -> str:
    """The device a pt2 package is compiled for: "cpu" (default), "cuda" or "cuda:N"."""
    if device is None:
        return "cpu"
    if format != "pt2":
        raise ValueError(
            f"device= applies to format='pt2' only (a {format} file runs on the device it is loaded on)"
        )
    text = str(device)
    if text != "cpu" and not (text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return text


def _choose_format(
    path: str | os.PathLike,
    format: str | None,
    method: str | None,
    cpu_isa: str | None,
    cache_dir: str | os.PathLike | None,
) -> str:
    """The format asked for (or implied by a ``.pt2`` or ``.nnp`` suffix), with its keywords checked."""
    pt2_name = os.fspath(path).endswith(".pt2")
    nnp_name = os.fspath(path).endswith(".nnp")
    format = format or ("pt2" if pt2_name else "native" if nnp_name else "torchscript")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if format == "native":
        if not nnp_name:
            raise ValueError(f"a native program must be named *.nnp, got '{os.fspath(path)}'")
        if method is not None or cpu_isa is not None or cache_dir is not None:
            raise ValueError("method=, cpu_isa= and cache_dir= do not apply to format='native'")
        return format
    if nnp_name:
        raise ValueError(
            f"'{os.fspath(path)}': a .nnp name is for native programs; use format='native' or another name"
        )
    if format == "pt2":
        if cpu_isa is not None and cpu_isa not in _pt2.CPU_ISAS:
            raise ValueError(f"cpu_isa must be one of {sorted(_pt2.CPU_ISAS)}, got {cpu_isa!r}")
        if not pt2_name:
            raise ValueError(f"an AOTInductor package must be named *.pt2, got '{os.fspath(path)}'")
        if method is not None:
            raise ValueError("method= applies to format='torchscript' only")
    else:
        if pt2_name:
            raise ValueError(
                f"'{os.fspath(path)}': a .pt2 name is for AOTInductor packages; "
                "use format='pt2' or another name"
            )
        if cpu_isa is not None or cache_dir is not None:
            raise ValueError("cpu_isa= and cache_dir= apply to format='pt2' only")
    return format


def _signature(
    module: torch.nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    input_names: Sequence[str] | None,
    variable_dims: dict[str, list[int]] | None,
) -> Signature:
    """The module's contract hook, the example inputs, their names and variable dims, checked."""
    hook = getattr(module, "pyclosure_contract", None)
    meta = dict(hook()) if callable(hook) else {}
    inputs = _as_tuple(example_inputs)
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        raise TypeError("example_inputs must be a tensor or a tuple of tensors")
    if any(x.dim() < 1 for x in inputs):
        raise ValueError("each example input needs a leading batch dimension")
    if input_names is None:
        input_names = meta.get("input_names")
    if input_names is None:
        params = list(inspect.signature(module.forward).parameters)
        input_names = params[: len(inputs)] if len(params) >= len(inputs) else None
    input_names = list(input_names or [f"input{i}" for i in range(len(inputs))])
    if len(input_names) != len(inputs):
        raise ValueError(f"{len(input_names)} input names for {len(inputs)} example inputs")
    variable = dict(meta.get("variable_dims", {}))
    variable.update(variable_dims or {})
    unknown = set(variable) - set(input_names)
    if unknown:
        raise ValueError(f"variable_dims names unknown inputs {sorted(unknown)}; inputs are {input_names}")
    _check_dtypes(module, inputs, input_names)
    return meta, inputs, input_names, variable


def _check_dtypes(module: torch.nn.Module, inputs: tuple[Tensor, ...], input_names: list[str]) -> None:
    """A float module fed examples of another float dtype gets a message saying what to change."""
    kinds = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if len(kinds) != 1:
        return
    (kind,) = kinds
    wrong = [(n, x.dtype) for n, x in zip(input_names, inputs) if x.is_floating_point() and x.dtype != kind]
    if not wrong:
        return
    try:
        with torch.no_grad():
            module(*inputs)
    except RuntimeError as exc:
        listed = ", ".join(f"'{n}' is {_dtype_name(d)}" for n, d in wrong)
        raise TypeError(
            f"the module's parameters are {_dtype_name(kind)} but example input {listed}: pass "
            f"{_dtype_name(kind)} examples (x.to(torch.{_dtype_name(kind)})), or convert the module "
            f"(module.to(torch.{_dtype_name(wrong[0][1])})); the exported file's dtypes are the "
            f"examples'. torch said: {exc}"
        ) from exc


def _dtype_name(dtype: torch.dtype) -> str:
    """'float64' for torch.float64."""
    return str(dtype).replace("torch.", "")


def _state(
    meta: dict,
    input_names: list[str],
    output_names: list[str],
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
) -> list[dict]:
    """The contract's ``state`` pairs, checked: named input and output, same dtype and shape."""
    pairs = list(meta.get("state", []))
    for pair in pairs:
        i, o = pair.get("input"), pair.get("output")
        if i not in input_names or o not in output_names:
            raise ValueError(
                f"state pair {pair} names an unknown input or output; inputs are {input_names}, "
                f"outputs {output_names}"
            )
        x, y = inputs[input_names.index(i)], outputs[output_names.index(o)]
        if x.dtype != y.dtype or tuple(x.shape) != tuple(y.shape):
            raise ValueError(
                f"state input '{i}' is {_dtype_name(x.dtype)} {tuple(x.shape)} but state output "
                f"'{o}' is {_dtype_name(y.dtype)} {tuple(y.shape)}: they must match"
            )
    return pairs


def _contract(
    module: torch.nn.Module,
    meta: dict,
    run: Runner,
    inputs: tuple[Tensor, ...],
    input_names: list[str],
    variable: dict[str, list[int]],
    format: str,
    described: dict,
) -> dict:
    """The contract dict; ``run(inputs)`` gives the outputs, ``described`` holds the caller's
    output_names, units, meaning, training_data and extra."""
    outputs = run(inputs)
    output_names = list(
        described["output_names"] or meta.get("output_names") or [f"output{i}" for i in range(len(outputs))]
    )
    if len(output_names) != len(outputs):
        raise ValueError(f"{len(output_names)} output names for {len(outputs)} outputs")
    out_dims = _output_dims(run, inputs, input_names, variable)
    units = {**meta.get("units", {}), **(described["units"] or {})}
    meaning = {**meta.get("meaning", {}), **(described["meaning"] or {})}
    training_data = described["training_data"]

    from . import __version__

    return {
        "schema": SCHEMA,
        "pyclosure_version": __version__,
        "torch_version": torch.__version__,
        "format": format,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "module": type(module).__name__,
        "inputs": [
            {
                "name": n,
                "dtype": _dtype_name(x.dtype),
                "shape": [-1 if d in variable.get(n, []) else s for d, s in enumerate(x.shape[1:])],
                "units": units.get(n),
            }
            for n, x in zip(input_names, inputs)
        ],
        "outputs": [
            {
                "name": n,
                "dtype": _dtype_name(o.dtype),
                "shape": dims,
                "units": units.get(n),
                "meaning": meaning.get(n),
            }
            for n, o, dims in zip(output_names, outputs, out_dims)
        ],
        "weights_sha256": weights_sha256(module),
        "training_data": data_fingerprint(training_data) if training_data is not None else None,
        "lipschitz_bound": meta.get("lipschitz_bound"),
        "ood": meta.get("ood"),
        "state": _state(meta, input_names, output_names, inputs, outputs),
        "extra": {**meta.get("extra", {}), **(described["extra"] or {})},
    }


def _torchscript(
    module: torch.nn.Module, path: str | os.PathLike, signature: Signature, described: dict, method: str
) -> tuple[dict, dict[str, float]]:
    """Write the TorchScript file; return (contract, {"export_s": seconds to script or trace})."""
    meta, inputs, input_names, variable = signature
    start = time.perf_counter()
    try:
        compiled = _compile(module, inputs, method)
    except Exception as exc:
        raise RuntimeError(f"torch.jit.{method} could not compile {type(module).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start

    def run(args: Sequence[Tensor]) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return _as_tuple(compiled(*args))

    contract = _contract(module, meta, run, inputs, input_names, variable, "torchscript", described)
    _save_torchscript(compiled, path, json.dumps(contract, indent=1, sort_keys=True))
    return contract, {"export_s": seconds}


def _save_torchscript(compiled: Any, path: str | os.PathLike, text: str) -> None:
    """Save ``compiled`` with the contract ``text`` embedded: under a temporary name, then renamed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=folder)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.*")
            torch.jit.save(compiled, tmp, _extra_files={EXTRA_FILE: text})
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _package(
    module: torch.nn.Module,
    path: str | os.PathLike,
    signature: Signature,
    described: dict,
    cpu_isa: str | None,
    device: str,
) -> tuple[dict, dict[str, float]]:
    """Write the AOTInductor package; return (contract, {"export_s": ..., "compile_s": ...} in seconds)."""
    meta, inputs, input_names, variable = signature
    placed = module if device == "cpu" else copy.deepcopy(module).to(device)  # the caller's module stays put
    inputs = tuple(x.to(device) for x in inputs)
    program, traced, export_s = _pt2.export_program(placed, inputs, input_names, variable)
    graph = program.module()

    def run(args: Sequence[Tensor]) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return _as_tuple(graph(*args))

    contract = _contract(module, meta, run, traced, input_names, variable, "pt2", described)
    info, configs = _pt2.engine(cpu_isa, device=device)
    batch_range, per_input = _pt2.ranges(program)
    contract["engine"] = info
    contract["batch_range"] = batch_range
    for entry, dims in zip(contract["inputs"], per_input):
        entry["ranges"] = dims
    text = json.dumps(contract, indent=1, sort_keys=True)
    try:
        compile_s = _pt2.compile_package(program, path, text, configs)
    except Exception as exc:
        raise RuntimeError(f"AOTInductor could not compile {type(module).__name__}: {exc}") from exc
    return contract, {"export_s": export_s, "compile_s": compile_s}


def _native_program(
    module: torch.nn.Module, path: str | os.PathLike, signature: Signature, described: dict
) -> tuple[dict, dict[str, float]]:
    """Write the native program (stateful closures refused); return (contract, {"export_s": seconds})."""
    from ._native import export_native

    meta, inputs, input_names, variable = signature
    state = meta.get("state")
    if state:
        raise ValueError(
            f"{type(module).__name__} is a stateful closure (state {state[0]['input']!r} in, "
            "next state out); the native engine does not run it: export a .pt2 or .pt"
        )
    start = time.perf_counter()
    contract = export_native(
        module, path, inputs, input_names=input_names, variable_dims=dict(variable) or None, **described
    )
    return contract, {"export_s": time.perf_counter() - start}


def export(
    module: torch.nn.Module,
    path: str | os.PathLike,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    format: str | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    variable_dims: dict[str, list[int]] | None = None,
    units: dict[str, str] | None = None,
    meaning: dict[str, dict] | None = None,
    training_data: Any = None,
    extra: dict | None = None,
    method: str | None = None,
    cpu_isa: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | None = None,
    timings: dict[str, float] | None = None,
) -> dict:
    """Write ``module`` to ``path`` with its contract embedded; return the contract.

    Parameters
    ----------
    module : torch.nn.Module
        The closure. It is put in eval mode. Its ``forward`` takes tensors with
        the batch dimension first and returns a tensor or a tuple of tensors.
        A method ``pyclosure_contract()`` returning a dict (keys as the
        arguments below, plus ``lipschitz_bound`` and ``ood``) supplies
        defaults; explicit arguments win.
    path : str or os.PathLike
        Output file. Written under a temporary name first and renamed, so a
        failed export never leaves a half-written model behind.
    example_inputs : Tensor or tuple of Tensor
        Inputs of the right dtypes and per-sample shapes, shape ``(batch, ...)``.
    format : {"torchscript", "pt2", "native"}, optional
        TorchScript (``.pt``), an AOTInductor package (``.pt2``) or a native
        program (``.nnp``: MLPs of dense layers, normalisers, tanh/relu, and
        PeriodicFluxClosure, run by the bridge's own C kernels on the CPU, the
        same bits at any batch size and thread count; an ineligible module is
        refused naming the module or op). Default: from the suffix, "pt2" for
        ``.pt2``, "native" for ``.nnp``, else "torchscript".
    input_names, output_names : list of str, optional
        Default: the names of ``forward``'s parameters, and ``output0, ...``.
    variable_dims : dict, optional
        ``{input_name: [per-sample dims that may change size]}``, e.g. the cell
        dim of a local closure that runs on any grid.
    units, meaning : dict, optional
        ``{name: units string}`` and ``{output_name: {"kind": "flux_at_faces", ...}}``.
    training_data : array or tuple of arrays, optional
        Fingerprinted (SHA-256, shapes) into the contract.
    extra : dict, optional
        Anything else JSON-serialisable, stored under ``"extra"``.
    method : {"script", "trace"}, optional
        TorchScript only: ``torch.jit.script`` (default; handles control flow)
        or ``torch.jit.trace``.
    cpu_isa : {"x86-64-v3", "x86-64-v2", "x86-64-v4", "native"}, optional
        pt2 only: the x86-64 level the native code is built for. Default
        "x86-64-v3" (AVX2, FMA: most x86 CPUs since 2015). "x86-64-v2" has no
        vector kernels (inductor has no 128-bit x86 kernels); "x86-64-v4" needs
        AVX-512 where it runs and to be vectorised where it is built;
        "native" builds for this CPU and runs only on CPUs like it. On a
        machine other than x86_64 it is ignored and the package is built for
        that machine. The contract's ``engine`` records what the code needs.
    cache_dir : str or os.PathLike, optional
        pt2 only: inductor's compile cache. Default ``$PYCLOSURE_CACHE_DIR``,
        else ``~/.cache/pyclosure/inductor``. It is set (as
        ``TORCHINDUCTOR_CACHE_DIR``) for the compile only, which is why two
        threads of one process should not export packages at the same time.
    device : {"cpu", "cuda", "cuda:N"}, optional
        pt2 only: the device the package is compiled for (default "cpu"). A
        CUDA package needs a CUDA build of torch and a GPU here, and runs only
        on a model loaded on a GPU; its CPU settings (``cpu_isa``) are ignored.
        TorchScript files and native programs take no device: a TorchScript
        file runs on the device it is loaded on; a native program on the CPU.
    timings : dict, optional
        Filled with ``"export_s"`` (seconds to script, trace or
        ``torch.export`` the module) and, for pt2, ``"compile_s"`` (seconds
        to compile and write the package). They are not in the contract: it
        is embedded before the compile ends.

    Returns
    -------
    dict
        The contract as embedded.

    Notes
    -----
    A ``.pt2`` package is native code: a shared library built on the
    exporting machine, which the loader maps into the process that runs it.
    Loading one runs whatever its author compiled into it, with the rights of
    that process, so load only packages you trust (as with any library). Its
    contract can be read without loading it (``pyclosure info``,
    ``read_contract``).
    """
    format = _choose_format(path, format, method, cpu_isa, cache_dir)
    device = _check_device(format, device)
    module = module.eval()
    signature = _signature(module, example_inputs, input_names, variable_dims)
    described = {
        "output_names": output_names,
        "units": units,
        "meaning": meaning,
        "training_data": training_data,
        "extra": extra,
    }
    if format == "native":
        contract, seconds = _native_program(module, path, signature, described)
    elif format == "pt2":
        with _pt2.inductor_cache(cache_dir):
            contract, seconds = _package(module, path, signature, described, cpu_isa, device)
    else:
        contract, seconds = _torchscript(module, path, signature, described, method or "script")
    if timings is not None:
        timings.update(seconds)
    return contract
