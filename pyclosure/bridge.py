"""Run a model file through the C bridge from numpy: the exact in-process path Fortran uses.

    >>> from pyclosure.bridge import Model
    >>> model = Model("closure.pt")            # device="cpu", "cuda:0" or "auto"
    >>> flux = model(u)                         # u: numpy array (batch, ...)
    >>> model.forward(u, t, out=[flux])         # several inputs, caller's buffers

Arrays are passed in place (any strides). Outputs are allocated from the
model's contract, or given with ``out=`` (required for a plain TorchScript
file without contract). Errors raise ``pyclosure.errors.ClosureError`` subclasses.

Torch CUDA tensors and ``__cuda_array_interface__`` objects (cupy) take the
on-device route: they are used in place where they live, which must be the
model's device (GPU memory for a model on "cuda:N"), with no host round trip:

    >>> model = Model("closure.pt2", "cuda:0")
    >>> flux = model(torch.randn(4096, 32, device="cuda:0"))   # a CUDA tensor back
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _device_arrays, _nnc
from .contract import output_shape
from .errors import ArgumentError, DtypeError, RankError, raise_for_status

__all__ = ["DTYPES", "Model", "Trainer", "get_num_threads", "set_num_threads", "version"]

ffi, lib = _nnc.ffi, _nnc.lib

DTYPES = {
    np.dtype(np.float32): lib.NNC_FLOAT32,
    np.dtype(np.float64): lib.NNC_FLOAT64,
    np.dtype(np.int32): lib.NNC_INT32,
    np.dtype(np.int64): lib.NNC_INT64,
}


def _check(status: int) -> None:
    if status != lib.NNC_OK:
        raise_for_status(status, ffi.string(lib.nnc_last_error()).decode("utf-8", "replace"))


def version() -> tuple[str, str]:
    """(bridge version, libtorch version) as strings."""
    v, t = ffi.new("char **"), ffi.new("char **")
    _check(lib.nnc_version(ffi.cast("const char **", v), ffi.cast("const char **", t)))
    return ffi.string(v[0]).decode(), ffi.string(t[0]).decode()


def set_num_threads(n: int) -> None:
    """Set the intra-op thread count of every later call, on every thread (default:
    ``NN_CLOSURE_NUM_THREADS``, else 1)."""
    _check(lib.nnc_set_num_threads(int(n)))


def get_num_threads() -> int:
    """The intra-op thread count calls run with."""
    n = ffi.new("int *")
    _check(lib.nnc_get_num_threads(n))
    return n[0]


def _describe(
    arrays: Sequence[np.ndarray], descs: Any, what: str, writable: bool = False, first: int = 1
) -> list:
    """Fill nnc_array descriptors for numpy arrays; returns what must stay alive."""
    keep = []
    for i, a in enumerate(arrays):
        label = f"{what} {first + i}"
        if not isinstance(a, np.ndarray):
            raise ArgumentError(f"{label} is a {type(a).__name__}, not a numpy array")
        if writable and not a.flags.writeable:
            raise ArgumentError(f"an output array is read-only: {label}")
        if a.dtype not in DTYPES:
            raise DtypeError(f"{label} has dtype {a.dtype}; the bridge takes float32, float64, int32, int64")
        if a.ndim > lib.NNC_MAX_RANK:
            raise RankError(f"{label} has rank {a.ndim} > {lib.NNC_MAX_RANK}")
        d = descs[i]
        d.data = ffi.cast("void *", a.ctypes.data)
        d.dtype = DTYPES[a.dtype]
        d.rank = a.ndim
        d.order = lib.NNC_ORDER_C
        for k, n in enumerate(a.shape):
            d.shape[k] = n
        if a.flags.c_contiguous:
            d.strides = ffi.NULL
        else:
            strides = ffi.new("int64_t[]", [s // a.itemsize for s in a.strides] or [0])
            d.strides = strides
            keep.append(strides)
    return keep


def _describe_any(arrays: Sequence[Any], descs: Any, what: str, writable: bool = False) -> list:
    """_describe for the on-device route: device arrays in place, numpy arrays as before."""
    keep = []
    for i, a in enumerate(arrays):
        if _device_arrays.is_device_array(a):
            keep += _device_arrays.describe(a, descs[i], f"{what} {i + 1}", lib, ffi, writable)
        else:
            keep += _describe([a], descs + i, what, writable, first=i + 1)
    return keep


class Model:
    """A model file loaded through the C bridge (libnnclosure), as Fortran loads it.

    Parameters
    ----------
    path : str or os.PathLike
        A TorchScript file (with or without an embedded pyclosure contract), an
        AOTInductor package (``.pt2``) or a native program (``.nnp``).
    device : str
        "cpu" (default), "cuda", "cuda:N" or "auto".
    nonfinite : str
        "error" (default: a NaN or Inf in an input or output raises
        NonFiniteError naming the column), "fallback" (such columns get the
        host's values passed with ``fallback=``) or "off".
    ood : str
        "off" (default), "flag" or "fallback": what to do with columns whose
        out-of-distribution score (the contract's ``ood`` output) exceeds the
        threshold (the contract's, or ``ood_threshold``).
    trusted_sha256 : str or list of str, optional
        Load the file only if its SHA-256 is one of these (hex digests); the
        environment variable PYCLOSURE_TRUSTED_SHA256 adds to the list. A
        ``.pt2`` package is native code: pin what you trust.
    engine : {"native", "torchscript", "aoti"}, optional
        The engine the caller requires: a file for another engine raises
        ``ModelFormatError`` before any of it is loaded. Default: the engine
        the file calls for.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "cpu",
        *,
        nonfinite: str = "error",
        ood: str = "off",
        ood_threshold: float | None = None,
        trusted_sha256: str | Sequence[str] | None = None,
        engine: str | None = None,
    ) -> None:
        self.path: str = os.fspath(path)
        box = ffi.new("nnc_model *")
        options = f"nonfinite={nonfinite},ood={ood}"
        if ood_threshold is not None:
            options += f",ood_threshold={float(ood_threshold)!r}"
        if trusted_sha256 is not None:
            digests = [trusted_sha256] if isinstance(trusted_sha256, str) else list(trusted_sha256)
            options += ",trusted_sha256=" + ":".join(digests)
        if engine is not None:
            options += f",engine={engine}"
        _check(lib.nnc_model_load_with(box, os.fsencode(self.path), device.encode(), options.encode()))
        self._owner = box  # owns the memory of the handle slot
        self._box = ffi.gc(box, lib.nnc_model_free)
        has = ffi.new("int *")
        _check(lib.nnc_model_has_contract(self._box[0], has))
        self.contract: dict | None = None
        if has[0]:
            needed = ffi.new("size_t *")
            _check(lib.nnc_model_contract(self._box[0], ffi.NULL, 0, needed))
            buf = ffi.new("char[]", needed[0])
            _check(lib.nnc_model_contract(self._box[0], buf, needed[0], needed))
            self.contract = json.loads(ffi.string(buf).decode("utf-8"))

    @property
    def handle(self) -> Any:
        """The raw nnc_model handle (NULL once closed)."""
        return self._box[0]

    @property
    def device(self) -> str:
        """The device the model runs on, e.g. "cpu"."""
        buf = ffi.new("char[]", lib.NNC_NAME_LEN)
        _check(lib.nnc_model_device(self.handle, buf, lib.NNC_NAME_LEN))
        return ffi.string(buf).decode()

    @property
    def engine(self) -> str:
        """The engine that runs the model: "torchscript", "aotinductor" or "native"."""
        buf = ffi.new("char[]", lib.NNC_NAME_LEN)
        _check(lib.nnc_model_engine(self.handle, buf, lib.NNC_NAME_LEN))
        return ffi.string(buf).decode()

    @property
    def input_names(self) -> list[str]:
        """The contract's input names ([] without a contract)."""
        return [io["name"] for io in self.contract["inputs"]] if self.contract else []

    @property
    def output_names(self) -> list[str]:
        """The contract's output names ([] without a contract)."""
        return [io["name"] for io in self.contract["outputs"]] if self.contract else []

    def close(self) -> None:
        """Free the model now (also done when the object is collected). Idempotent."""
        _check(lib.nnc_model_free(self._box))

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _allocate(self, inputs: Sequence[Any], on_device: bool) -> list:
        if self.contract is None:
            raise ArgumentError(
                "this model file has no pyclosure contract: pass the output arrays with out=[...]"
            )
        if len(inputs) != len(self.contract["inputs"]):
            return []  # let the bridge report the count
        shapes = [a.shape for a in inputs]
        outs = []
        for i, io in enumerate(self.contract["outputs"]):
            shape = output_shape(self.contract, i, shapes) if all(len(s) for s in shapes) else None
            if shape is None:
                raise ArgumentError(f"output '{io['name']}' has a free extent: pass it with out=[...]")
            if on_device:
                import torch

                outs.append(torch.empty(shape, dtype=getattr(torch, io["dtype"]), device=self.device))
            else:
                outs.append(np.empty(shape, dtype=np.dtype(io["dtype"])))
        return outs

    def forward(
        self,
        *inputs: Any,
        out: list | None = None,
        fallback: Sequence[Any] | None = None,
        flags: Any = None,
        on_device: bool | None = None,
    ) -> Any:
        """Run the model on numpy arrays (batch first); returns the output array(s).

        With one output, returns the array; with several, a tuple. ``out``
        (a list of arrays) receives the outputs in place and is returned.
        ``fallback`` (a list of arrays shaped like the first outputs) is the
        host's classical result for the fallback policies; ``flags`` (int32,
        one per column) receives the nnc_flag bits of each column.

        ``on_device``: True takes the on-device route (nnc_model_forward_on_device:
        every array lives on the model's device and is used there in place,
        torch tensors of any device, ``__cuda_array_interface__`` objects and numpy
        arrays; outputs made here are torch tensors on that device); False the
        host route (numpy, or what ``np.asarray`` takes without a copy, such as
        CPU torch tensors); None (default) the on-device route when any input is
        a torch tensor on a GPU or a ``__cuda_array_interface__`` object, else
        the host route. The call returns when the outputs are complete.
        """
        if on_device is None:
            on_device = any(_device_arrays.on_gpu(a) for a in inputs)
        if not on_device:
            inputs = [np.asarray(a) if not isinstance(a, np.ndarray) else a for a in inputs]
            fallback = [np.asarray(a) for a in (fallback or [])]
        else:
            fallback = list(fallback or [])
        outputs = list(out) if out is not None else self._allocate(inputs, on_device)
        cin = ffi.new("nnc_array[]", max(len(inputs), 1))
        cout = ffi.new("nnc_array[]", max(len(outputs), 1))
        cfb = ffi.new("nnc_array[]", max(len(fallback), 1))
        cflags = ffi.new("nnc_array[]", 1)
        describe = _describe_any if on_device else _describe
        keep = (
            describe(inputs, cin, "input")
            + describe(outputs, cout, "output", writable=True)
            + describe(fallback, cfb, "fallback")
        )
        if flags is not None:
            keep += describe([flags], cflags, "flags", writable=True)
        run = lib.nnc_model_forward_on_device_fallback if on_device else lib.nnc_model_forward_fallback
        _check(
            run(
                self.handle,
                len(inputs),
                cin,
                len(outputs),
                cout,
                len(fallback),
                cfb if fallback else ffi.NULL,
                cflags if flags is not None else ffi.NULL,
            )
        )
        del keep
        if out is not None:
            return out
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    __call__ = forward

    @property
    def policy(self) -> str:
        """The guardrail options in effect, e.g. "nonfinite=error, ood=off"."""
        buf = ffi.new("char[]", 256)
        _check(lib.nnc_model_policy(self.handle, buf, 256))
        return ffi.string(buf).decode()

    @property
    def stats(self) -> dict[str, float]:
        """Statistics since load: calls, errors, columns, fallback and flag counts, times (s)."""
        st = ffi.new("nnc_stats *")
        _check(lib.nnc_model_stats(self.handle, st))
        names = (
            "calls",
            "errors",
            "columns",
            "fallback_columns",
            "nonfinite_input_columns",
            "nonfinite_output_columns",
            "ood_columns",
            "time_min",
            "time_median",
            "time_max",
            "time_total",
        )
        return {n: getattr(st, n) for n in names}

    def stats_summary(self) -> str:
        """The one-paragraph statistics summary (as printed at free with NN_CLOSURE_STATS=1)."""
        buf = ffi.new("char[]", 1024)
        _check(lib.nnc_model_stats_summary(self.handle, buf, 1024))
        return ffi.string(buf).decode()

    def record_start(
        self, directory: str | os.PathLike, every: int = 1, max_bytes: int | None = None
    ) -> None:
        """Record every ``every``-th forward call into ``directory`` for ``pyclosure replay``.

        ``max_bytes`` caps the disk use of all records (default 1 GiB); at the
        cap recording stops and ``recording.json`` says so.
        """
        _check(
            lib.nnc_record_start(
                self.handle, os.fsencode(os.fspath(directory)), int(every), int(max_bytes or 0)
            )
        )

    def record_array(self, name: str, array: Any) -> None:
        """Add a host array (state before/after, dt, dx...) to the last call's record."""
        a = np.asarray(array)
        desc = ffi.new("nnc_array[]", 1)
        keep = _describe([a], desc, f"host array '{name}'")
        _check(lib.nnc_record_array(self.handle, name.encode(), desc))
        del keep

    def record_stop(self) -> None:
        """Write the last record and stop recording (no-op when not recording)."""
        _check(lib.nnc_record_stop(self.handle))

    @property
    def record_dir(self) -> str | None:
        """The directory being recorded into, or None."""
        buf = ffi.new("char[]", 4096)
        _check(lib.nnc_record_dir(self.handle, buf, 4096))
        return ffi.string(buf).decode() or None


class Trainer:
    """An online trainer bound to a :class:`Model`, through the C bridge (nnc_train_*), as Fortran uses it.

        >>> trainer = Trainer(model, spec="my_spec.py:spec", lr=1e-3, versions="runs/versions")
        >>> loss = trainer.step(x, y)      # numpy arrays, batch first, used in place
        >>> trainer.sync(model)            # the model now runs the new weights
        >>> trainer.save("runs/online.pt") # torch.load(..., weights_only=True) reads it

    The training code is :class:`pyclosure.online.OnlineTrainer`, run by the bridge's
    embedded-Python library (in a Python process, in this interpreter). ``options`` are
    passed to the spec as strings (see :mod:`pyclosure.online`).
    """

    def __init__(self, model: Model, spec: str | None = None, **options: object) -> None:
        box = ffi.new("nnc_trainer *")
        text = ",".join(f"{k}={v}" for k, v in options.items())
        _check(lib.nnc_train_create(box, model.handle, (spec or "").encode(), text.encode()))
        self._owner = box
        self._box = ffi.gc(box, lib.nnc_train_free)

    def step(self, inputs: Any, targets: Any) -> float:
        """One optimiser step; ``inputs`` and ``targets`` are arrays or lists of arrays. The loss before it."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        cin, ctg = ffi.new("nnc_array[]", len(inputs)), ffi.new("nnc_array[]", len(targets))
        keep = _describe(inputs, cin, "input") + _describe(targets, ctg, "target")
        loss = ffi.new("double *")
        _check(lib.nnc_train_step(self._box[0], len(inputs), cin, len(targets), ctg, loss))
        del keep
        return loss[0]

    def sync(self, model: Model) -> int:
        """Put the trainer's weights into ``model``; returns the new weight version."""
        _check(lib.nnc_train_sync(self._box[0], model.handle))
        return self.version

    @property
    def version(self) -> int:
        """The weight version last synced (0 before the first sync)."""
        v = ffi.new("int64_t *")
        _check(lib.nnc_train_version(self._box[0], v))
        return v[0]

    def save(self, path: str | os.PathLike) -> None:
        """Save a checkpoint (weights, optimiser state); ``torch.load(path, weights_only=True)`` reads it."""
        _check(lib.nnc_train_save(self._box[0], os.fsencode(os.fspath(path))))

    def close(self) -> None:
        """Free the trainer now (also done when collected). Idempotent."""
        _check(lib.nnc_train_free(self._box))
