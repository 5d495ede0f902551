"""Export a trained torch module as a TorchScript file that carries its contract.

Every format-specific line of the Python side lives here (TorchScript now;
``torch.export`` packages would be a second writer next to it).
"""

import datetime
import hashlib
import inspect
import json
import os
import tempfile
import warnings

import numpy as np
import torch

from .contract import EXTRA_FILE, SCHEMA


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def weights_sha256(module):
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(arrays):
    """SHA-256 and sizes of training data (arrays or tensors), for the contract."""
    h = hashlib.sha256()
    shapes = []
    for a in _as_tuple(arrays):
        a = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        h.update(f"{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
        shapes.append(list(a.shape))
    return {"sha256": h.hexdigest(), "shapes": shapes}


def _compile(module, example_inputs, method):
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


def _grow(x, dims, extra):
    """x with each listed per-sample dim grown by `extra` (values repeated cyclically)."""
    for d in dims:
        axis = d + 1
        n = x.shape[axis]
        idx = torch.arange(n + extra) % max(n, 1)
        x = x.index_select(axis, idx)
    return x


def _output_dims(run, inputs, names, variable):
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
                ((n, vd) for x, n in zip(inputs, names) for vd in variable.get(n, [])
                 if p[d] - b[d] == 1),
                None,
            )
            if src is None:
                dims.append(-1)
            else:
                x = inputs[names.index(src[0])]
                dims.append({"input": src[0], "dim": src[1], "offset": b[d] - x.shape[src[1] + 1]})
        result.append(dims)
    return result


def _dtype(t):
    return str(t.dtype).replace("torch.", "")


def export(module, path, example_inputs, *, input_names=None, output_names=None, variable_dims=None,
           units=None, meaning=None, training_data=None, extra=None, method="script"):
    """Write ``module`` as TorchScript to ``path`` with its contract embedded; return the contract.

    Parameters
    ----------
    module : torch.nn.Module
        The closure. It is put in eval mode. Its ``forward`` takes tensors with
        the batch dimension first and returns a tensor or a tuple of tensors.
        A method ``pyclosure_contract()`` returning a dict (keys as the
        arguments below, plus ``lipschitz_bound`` and ``ood``) supplies
        defaults; explicit arguments win.
    path : str or os.PathLike
        Output file. Written to a temporary file first and renamed, so a
        failed export never leaves a half-written model behind.
    example_inputs : Tensor or tuple of Tensor
        Inputs of the right dtypes and per-sample shapes, shape ``(batch, ...)``.
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
    method : {"script", "trace"}
        ``torch.jit.script`` (default; handles control flow) or ``torch.jit.trace``.

    Returns
    -------
    dict
        The contract as embedded.
    """
    module = module.eval()
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

    try:
        compiled = _compile(module, inputs, method)
    except Exception as exc:
        raise RuntimeError(f"torch.jit.{method} could not compile {type(module).__name__}: {exc}") from exc

    def run(args):
        with torch.no_grad():
            return _as_tuple(compiled(*args))

    outputs = run(inputs)
    output_names = list(output_names or meta.get("output_names") or [f"output{i}" for i in range(len(outputs))])
    if len(output_names) != len(outputs):
        raise ValueError(f"{len(output_names)} output names for {len(outputs)} outputs")
    out_dims = _output_dims(run, inputs, input_names, variable)
    units = {**meta.get("units", {}), **(units or {})}
    meaning = {**meta.get("meaning", {}), **(meaning or {})}

    from . import __version__

    contract = {
        "schema": SCHEMA,
        "pyclosure_version": __version__,
        "torch_version": torch.__version__,
        "format": "torchscript",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "module": type(module).__name__,
        "inputs": [
            {"name": n, "dtype": _dtype(x),
             "shape": [-1 if d in variable.get(n, []) else s for d, s in enumerate(x.shape[1:])],
             "units": units.get(n)}
            for n, x in zip(input_names, inputs)
        ],
        "outputs": [
            {"name": n, "dtype": _dtype(o), "shape": dims, "units": units.get(n), "meaning": meaning.get(n)}
            for n, o, dims in zip(output_names, outputs, out_dims)
        ],
        "weights_sha256": weights_sha256(module),
        "training_data": data_fingerprint(training_data) if training_data is not None else None,
        "lipschitz_bound": meta.get("lipschitz_bound"),
        "ood": meta.get("ood"),
        "extra": {**meta.get("extra", {}), **(extra or {})},
    }
    text = json.dumps(contract, indent=1, sort_keys=True)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".export-", suffix=".pt", dir=folder)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.*")
            torch.jit.save(compiled, tmp, _extra_files={EXTRA_FILE: text})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return contract
