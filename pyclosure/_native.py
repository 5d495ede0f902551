"""Native programs: closure-sized networks as a list of ops the native C kernels run.

A native program file (``.nnp``, see ``cbridge/native/README.md``) holds the pyclosure
contract, a few ops (normalisers, dense layers, activations, the periodic window of a
flux closure) and their weights, and is run by plain C kernels under one arithmetic
contract (:data:`ARITH`). This module turns an eligible module into such a program
(:func:`program_of`), writes the file (:func:`export_native`), and runs it through the
very same C code (:class:`Program`, :func:`run`, in :mod:`pyclosure._native_twin`).

Eligible modules (anything else is refused, naming the module or op):

* ``nn.Sequential`` of ``Linear``, :class:`~pyclosure.lipschitz.LipschitzLinear`,
  ``Tanh``, ``ReLU``, ``Softplus`` (torch's defaults), ``Identity`` and
  :class:`~pyclosure.normalize.Normalizer` (its forward map), e.g. :func:`pyclosure.models.mlp`;
* :class:`~pyclosure.models.PeriodicFluxClosure` with those activations, its input
  Normalizer (global or per channel) and its global output scale;
* :class:`~pyclosure.models.ColumnFluxClosure` (stencil variant with replicate or zero
  padding, or the whole-column ``mlp`` variant) and
  :class:`~pyclosure.models.InsulatedColumnFluxClosure`: the interior faces, then the
  surface flux (input 1, or 0) and the zero lid;
* :class:`~pyclosure.models.DownGradientClosure` and
  :class:`~pyclosure.models.ColumnDownGradientClosure`: ``K = k_scale * softplus(net)``
  times the gradient at each face;
* :class:`~pyclosure.models.NonNegative` around any of these (softplus or relu last).
"""

import hashlib
import json
import os
import struct
import tempfile

import numpy as np
import torch
from torch import nn

from ._files import publish
from ._native_twin import arith
from .lipschitz import LipschitzConv1d, LipschitzLinear
from .models import (
    ColumnDownGradientClosure,
    ColumnFluxClosure,
    DownGradientClosure,
    InsulatedColumnFluxClosure,
    NonNegative,
    PeriodicFluxClosure,
)
from .normalize import Normalizer

ARITH = arith()  # the C library's (nn_native.h), so the id is written once
MAGIC = b"PYCLNATV"
VERSION = 1
DTYPES = {torch.float32: 1, torch.float64: 2}
NORMALIZE, DENORMALIZE, DENSE, ACTIVATION, WINDOW, GRADIENT, FRAME = 1, 2, 3, 4, 5, 6, 7
ACTIVATIONS = {nn.Identity: 0, nn.Tanh: 1, nn.ReLU: 2, nn.Softplus: 3}
RELU, SOFTPLUS = 2, 3
PERIODIC, REPLICATE, ZEROS = 1, 2, 3
SURFACE_ZERO, SURFACE_INPUT = 0, 1
_KNOWN_ACTIVATIONS = (nn.SiLU, nn.GELU, nn.Sigmoid, nn.ELU, nn.LeakyReLU)
_HEADER = struct.Struct("<8sII48sQQQQIIQQQ")
_OP = struct.Struct("<6IQ")


class NotNativeError(TypeError):
    """The module holds something the native engine does not run."""


class Op:
    """One op: its kind, up to five integer arguments and its parameters (a 1-D array)."""

    def __init__(self, kind, args=(), params=None):
        self.kind, self.args, self.params = kind, tuple(args), params

    def __repr__(self):
        return f"Op({self.kind}, {self.args}, {0 if self.params is None else self.params.size} params)"


def _array(t, dtype):
    return np.ascontiguousarray(t.detach().to(dtype).cpu().numpy().reshape(-1))


def _normalizer(norm, kind, dtype, shapes, where):
    """A normaliser op: one global pair, or one pair per value of the given ``shapes``."""
    mean, std = norm.mean, norm.std
    if mean.numel() != 1 and tuple(mean.shape) not in shapes:
        allowed = " or ".join(str(s) for s in shapes) or "none"
        raise NotNativeError(
            f"{where}: Normalizer of shape {tuple(mean.shape)}; the native engine takes "
            f"one global pair or the shape {allowed}"
        )
    return Op(kind, [mean.numel()], np.concatenate([_array(mean, dtype), _array(std, dtype)]))


def _dense(layer, where, dtype, first_conv=False):
    """A dense op from Linear, LipschitzLinear, Conv1d or LipschitzConv1d (effective weight)."""
    if isinstance(layer, (LipschitzLinear, LipschitzConv1d)):
        weight = layer.effective_weight()
    elif isinstance(layer, (nn.Linear, nn.Conv1d)):
        weight = layer.weight
    else:
        raise NotNativeError(f"{where}: {type(layer).__name__} is not a layer the native engine runs")
    if type(layer) is nn.Conv1d and (
        layer.stride != (1,)
        or layer.dilation != (1,)
        or layer.groups != 1
        or layer.padding not in ((0,), "valid")
    ):
        raise NotNativeError(f"{where}: Conv1d with stride, dilation, groups or its own padding")
    if weight.dim() == 3 and weight.shape[2] != 1 and not first_conv:
        raise NotNativeError(f"{where}: a convolution of width {weight.shape[2]} after the first layer")
    if layer.bias is None:
        raise NotNativeError(f"{where}: a layer without bias")
    if weight.dtype != dtype:
        raise NotNativeError(f"{where}: weights are {weight.dtype}, the program is {dtype}")
    w = weight.detach().reshape(weight.shape[0], -1)
    return Op(DENSE, [w.shape[1], w.shape[0]], np.concatenate([_array(w, dtype), _array(layer.bias, dtype)]))


def _activation(module, where):
    if isinstance(module, nn.Softplus) and (module.beta != 1 or module.threshold != 20):
        raise NotNativeError(
            f"{where}: Softplus(beta={module.beta}, threshold={module.threshold}); the native "
            "engine runs torch's default beta=1, threshold=20"
        )
    code = ACTIVATIONS.get(type(module))
    if code is None:
        raise NotNativeError(
            f"{where}: activation {type(module).__name__} is not in arithmetic contract "
            f"{ARITH} "
            f"(it has {', '.join(sorted(c.__name__ for c in ACTIVATIONS))})"
        )
    return Op(ACTIVATION, [code])


def _chain(seq, prefix, dtype, width, conv_first=False):
    """Ops of a Sequential of layers, activations and Normalizers."""
    ops = []
    for name, child in seq.named_children():
        where = f"{prefix}.{name}" if prefix else name
        if isinstance(child, Normalizer):
            ops.append(_normalizer(child, NORMALIZE, dtype, [(width,)], where))
        elif isinstance(child, (nn.Linear, nn.Conv1d, LipschitzLinear, LipschitzConv1d)):
            first = conv_first and not any(o.kind == DENSE for o in ops)
            ops.append(_dense(child, where, dtype, first_conv=first))
            width = ops[-1].args[1]
        elif isinstance(child, nn.Dropout) and not child.training:
            continue
        elif type(child) in ACTIVATIONS or type(child) in _KNOWN_ACTIVATIONS:
            ops.append(_activation(child, where))
        else:
            raise NotNativeError(f"{where}: {type(child).__name__} is not a module the native engine runs")
    return ops


def program_of(module, dtype=None):
    """The ops of an eligible module (see the module docstring).

    Parameters
    ----------
    module : nn.Module
        In eval mode; its parameters in the program's dtype.
    dtype : torch.dtype, optional
        float32 or float64; by default the module's parameter dtype.

    Returns
    -------
    (list of Op, torch.dtype)

    Raises
    ------
    NotNativeError
        Naming the first module or op the native engine does not run.
    """
    params = list(module.parameters())
    dtype = dtype or (params[0].dtype if params else torch.float32)
    if dtype not in DTYPES:
        raise NotNativeError(f"dtype {dtype}: the native engine runs float32 and float64")
    if module.training:
        raise NotNativeError(f"{type(module).__name__} is in training mode; call .eval() first")
    return _ops(module, dtype, ""), dtype


def _ops(module, dtype, where):
    kind = type(module)
    if kind is nn.Sequential:
        first = next((m for m in module if not isinstance(m, Normalizer)), None)
        weight = getattr(first, "weight", None)
        if not isinstance(first, (nn.Linear, LipschitzLinear)) or weight is None:
            raise NotNativeError(
                f"{where or 'Sequential'}: the first layer after any Normalizer must be Linear "
                "or LipschitzLinear"
            )
        return _chain(module, where, dtype, weight.shape[1])
    if kind is PeriodicFluxClosure:
        return _periodic(module, dtype, where)
    if kind in (ColumnFluxClosure, InsulatedColumnFluxClosure):
        surface = SURFACE_ZERO if kind is InsulatedColumnFluxClosure else SURFACE_INPUT
        return _column(module, dtype, where) + [Op(FRAME, [surface])]
    if kind is DownGradientClosure:
        return _periodic(module.k_net, dtype, _at(where, "k_net")) + _down_gradient(module, dtype)
    if kind is ColumnDownGradientClosure:
        if module.k_net.use_mlp:
            raise NotNativeError(
                f"{_at(where, 'k_net')}: a whole-column network under a down-gradient closure"
            )
        return (
            _column(module.k_net, dtype, _at(where, "k_net"))
            + _down_gradient(module, dtype)
            + [Op(FRAME, [SURFACE_INPUT])]
        )
    if kind is NonNegative:
        ops = _ops(module.module, dtype, _at(where, "module"))
        if ops[-1].kind == ACTIVATION and any(o.kind in (GRADIENT, FRAME) for o in ops):
            raise NotNativeError(
                f"{where or 'NonNegative'}: a second activation after a gradient or column frame"
            )
        return ops + [Op(ACTIVATION, [SOFTPLUS if module.softplus else RELU])]
    raise NotNativeError(
        f"{where + ': ' if where else ''}{kind.__name__}: the native engine runs nn.Sequential "
        "MLPs, PeriodicFluxClosure, ColumnFluxClosure, InsulatedColumnFluxClosure, "
        "DownGradientClosure, ColumnDownGradientClosure and NonNegative around them (not "
        "covered: ResidualClosure, other modules)"
    )


def _at(where, name):
    return f"{where}.{name}" if where else name


def _periodic(module, dtype, where=""):
    first = module.net[0]
    channels, width = first.weight.shape[1], first.weight.shape[2]
    if width != module.left + module.right + 1:
        raise NotNativeError(
            f"{_at(where, 'net.0')}: kernel {width} is not the stencil {module.left + module.right + 1}"
        )
    ops = [
        _normalizer(module.normalizer, NORMALIZE, dtype, [(channels, 1)], _at(where, "normalizer")),
        Op(WINDOW, [channels, width, module.left, PERIODIC]),
    ]
    return ops + _face_net(module, dtype, where, channels * width)


def _face_net(module, dtype, where, width):
    """The per-face network and the output scale of a stencil closure."""
    ops = _chain(module.net, _at(where, "net"), dtype, width, conv_first=True)
    if (ops[-1].kind == DENSE and ops[-1].args[1] != 1) or module.net[-1].weight.shape[0] != 1:
        raise NotNativeError(f"{_at(where, 'net')}: a flux closure has one output channel")
    return ops + [_normalizer(module.out_scale, DENORMALIZE, dtype, [], _at(where, "out_scale"))]


def _column(module, dtype, where):
    """The interior faces of a ColumnFluxClosure (stencil or whole-column variant)."""
    if module.use_mlp:
        channels, cells = module.in_channels, module.n_cells
        norm = module.normalizer
        try:
            mean, std = (torch.broadcast_to(t, (channels, cells)) for t in (norm.mean, norm.std))
        except RuntimeError as exc:
            raise NotNativeError(
                f"{_at(where, 'normalizer')}: Normalizer of shape {tuple(norm.mean.shape)} "
                f"does not broadcast to the column ({channels}, {cells})"
            ) from exc
        front = Op(NORMALIZE, [channels * cells], np.concatenate([_array(mean, dtype), _array(std, dtype)]))
        ops = [front] + _chain(module.net, _at(where, "net"), dtype, channels * cells)
        return ops + [_normalizer(module.out_scale, DENORMALIZE, dtype, [], _at(where, "out_scale"))]
    first = module.net[0]
    channels, width = first.weight.shape[1], first.weight.shape[2]
    if width != 2 * module.pad + 2:
        raise NotNativeError(f"{_at(where, 'net.0')}: kernel {width} is not the stencil {2 * module.pad + 2}")
    boundary = REPLICATE if module.pad_mode == "replicate" else ZEROS
    ops = [
        _normalizer(module.normalizer, NORMALIZE, dtype, [(channels, 1)], _at(where, "normalizer")),
        Op(WINDOW, [channels, width, module.pad + 1, boundary]),
    ]
    return ops + _face_net(module, dtype, where, channels * width)


def _down_gradient(module, dtype):
    """softplus, then ``(-(k_scale K)) ((u[f] - u[f-1]) / dx)`` at each face."""
    item = np.float32 if dtype == torch.float32 else np.float64
    return [Op(ACTIVATION, [SOFTPLUS]), Op(GRADIENT, [], np.array([module.k_scale, module.dx], item))]


def encode(ops, dtype, contract):
    """The bytes of a native program file (README.md, "File format")."""
    item = np.dtype(np.float32 if dtype == torch.float32 else np.float64)
    blob = json.dumps(contract, sort_keys=True).encode("utf-8")
    ops_off = -(-(_HEADER.size + len(blob)) // 8) * 8
    params_off = -(-(ops_off + _OP.size * len(ops)) // 64) * 64
    table, chunks, at = [], [], 0
    for op in ops:
        offset = 0
        if op.params is not None:
            offset = at
            data = np.ascontiguousarray(op.params, dtype=item.newbyteorder("<")).tobytes()
            chunks.append(data + b"\0" * (-len(data) % 64))
            at += len(chunks[-1])
        args = list(op.args) + [0] * (5 - len(op.args))
        table.append(_OP.pack(op.kind, *args, offset))
    size = params_off + at + 32
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        DTYPES[dtype],
        ARITH.encode(),
        size,
        _HEADER.size,
        len(blob),
        ops_off,
        len(ops),
        0,
        params_off,
        at,
        0,
    )
    body = header + blob + b"\0" * (ops_off - _HEADER.size - len(blob)) + b"".join(table)
    body += b"\0" * (params_off - len(body)) + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def write_atomic(path, data):
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nnp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def export_native(
    module,
    path,
    example_inputs,
    *,
    dtype=None,
    input_names=None,
    output_names=None,
    variable_dims=None,
    units=None,
    meaning=None,
    training_data=None,
    extra=None,
    check=True,
):
    """Write ``module`` as a native program file; return its contract.

    The contract is built as :func:`pyclosure.export` builds it (same schema, ``"format":
    "native"``, plus ``"engine": {"arith": ARITH, "ops": [...]}``). With ``check``, the file
    is read back by the C loader and run on ``example_inputs``, and must agree with the
    module within the arithmetic contract's tolerance (2e-6 relative in float32, 1e-13 in
    float64, scaled by the output's size): a module whose forward does something the ops do
    not would be caught here.

    Raises
    ------
    NotNativeError
        If the module is not eligible.
    """
    from .export import _contract, _signature

    ops, dtype = program_of(module, dtype)
    signature = _signature(module, example_inputs, input_names, variable_dims)
    meta, inputs, names, variable = signature
    wanted = 1 + any(op.kind == FRAME and op.args[0] == SURFACE_INPUT for op in ops)
    if len(inputs) != wanted:
        raise NotNativeError(
            f"{type(module).__name__}: its native program takes {wanted} input(s), the example "
            f"gives {len(inputs)}"
        )

    def run(args):
        with torch.no_grad():
            out = module(*args)
        return out if isinstance(out, tuple) else (out,)

    described = {
        "output_names": output_names,
        "units": units,
        "meaning": meaning,
        "training_data": training_data,
        "extra": extra,
    }
    contract = _contract(module, meta, run, inputs, names, variable, "native", described)
    contract["engine"] = {"arith": ARITH, "ops": [[op.kind, *op.args] for op in ops]}
    data = encode(ops, dtype, contract)
    if check:
        _check(data, module, inputs, dtype)
    write_atomic(path, data)
    return contract


def _check(data, module, inputs, dtype):
    from ._native_twin import Program

    with torch.no_grad():
        want = module(*inputs).numpy()
    got = Program(data)(*(x.numpy() for x in inputs))
    scale = max(float(np.abs(want).max()), 1e-300)
    tol = (2e-6 if dtype == torch.float32 else 1e-13) * scale
    err = float(np.abs(got - want).max())
    if not err <= tol:
        raise NotNativeError(
            f"{type(module).__name__}: the native program differs from the module by "
            f"{err:.3g} "
            f"(tolerance {tol:.3g}); its forward does something the ops do not"
        )
