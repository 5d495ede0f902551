"""The native engine's Python twin: the C kernel library through cffi, no libtorch.

    >>> from pyclosure._native_twin import Program, run
    >>> y = run("closure.nnp", x)                 # x: numpy (batch, ...) of the program's dtype
    >>> p = Program(data_or_path); p.isa = "scalar"; y = p(x, threads=4)
    >>> y = p(x, surface_flux)                    # a column program with a surface input

Python runs the very same C code the bridge's native engine runs (``pyclosure._native_c``,
built from ``cbridge/native``), so its results are the engine's bits.
"""

import json
import os
import threading
from itertools import pairwise

import numpy as np

from . import _native_c
from .errors import ArgumentError, ModelFormatError

ffi, lib = _native_c.ffi, _native_c.lib
ISAS = {
    "auto": lib.NNN_ISA_AUTO,
    "scalar": lib.NNN_ISA_SCALAR,
    "avx2": lib.NNN_ISA_AVX2,
    "avx512": lib.NNN_ISA_AVX512,
}
_NAMES = {v: k for k, v in ISAS.items()}
_DTYPES = {lib.NNN_F32: np.dtype(np.float32), lib.NNN_F64: np.dtype(np.float64)}


def arith():
    """The arithmetic contract id the C library implements (``NNN_ARITH``)."""
    return ffi.string(lib.nnn_arith()).decode("ascii")


def _message(buf):
    return ffi.string(buf).decode("utf-8", "replace")


class Program:
    """A native program loaded by the C loader from a path or the file's bytes.

    Raises ``pyclosure.errors.ModelFormatError`` with the loader's message for a file it
    refuses.
    """

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            with open(os.fspath(source), "rb") as f:
                data = f.read()
        out = ffi.new("nnn_program **")
        msg = ffi.new("char[512]")
        status = lib.nnn_load(data, len(data), out, msg, 512)
        if status != lib.NNN_OK:
            raise ModelFormatError(f"native program: {_message(msg)}")
        self._p = ffi.gc(out[0], lib.nnn_free)
        self.dtype = _DTYPES[lib.nnn_dtype(self._p)]
        self.window = bool(lib.nnn_is_window(self._p))
        self.num_inputs = lib.nnn_num_inputs(self._p)
        size = ffi.new("size_t *")
        text = lib.nnn_contract(self._p, size)
        self.contract = json.loads(ffi.unpack(text, size[0]).decode("utf-8"))

    @property
    def isa(self):
        """The kernels in use: "scalar", "avx2" or "avx512"; set one of those or "auto" (the
        widest this CPU runs)."""
        return _NAMES[lib.nnn_isa(self._p)]

    @isa.setter
    def isa(self, name):
        msg = ffi.new("char[256]")
        if name not in ISAS or lib.nnn_set_isa(self._p, ISAS[name], msg, 256) != lib.NNN_OK:
            raise ArgumentError(f"instruction set {name!r}: {_message(msg) or 'unknown'}")

    def sizes(self, ncells=0):
        """(inputs, outputs) per column for ``ncells`` cells."""
        n_in, n_out = ffi.new("int64_t *"), ffi.new("int64_t *")
        if lib.nnn_sizes(self._p, ncells, n_in, n_out) != lib.NNN_OK:
            raise ArgumentError(f"{ncells} cells: a window program needs at least 1")
        return n_in[0], n_out[0]

    def __call__(self, x, *more, threads=1, out=None):
        """Run every column of ``x`` (batch, ...) -> (batch, outputs); ``more``: the other
        inputs (a column frame's surface value: (batch,) or (batch, 1)). ``threads`` Python
        threads each run a contiguous range of columns with their own workspace."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim < 2:
            raise ArgumentError(f"x of shape {x.shape}: the first dimension is the batch")
        if 1 + len(more) != self.num_inputs:
            raise ArgumentError(f"{1 + len(more)} inputs given; the program takes {self.num_inputs}")
        batch, ncells = x.shape[0], x.shape[-1] if self.window else 0
        n_in, n_out = self.sizes(ncells)
        if x[0].size != n_in:
            raise ArgumentError(
                f"x of shape {x.shape}: a column has {x[0].size} values, the program takes {n_in}"
            )
        arrays = [x]
        for i, extra in enumerate(more, start=1):
            extra = np.ascontiguousarray(extra, dtype=self.dtype)
            if extra.size != batch or extra.ndim < 1 or extra.shape[0] != batch:
                raise ArgumentError(f"input {i} of shape {extra.shape}: one value a column, {batch} columns")
            arrays.append(extra)
        y = np.empty((batch, n_out), self.dtype) if out is None else out
        buffers = [ffi.from_buffer(a) for a in arrays]
        inputs = ffi.new("void *[]", buffers)
        bounds = np.linspace(0, batch, max(1, int(threads)) + 1).astype(np.int64)
        errors = []

        def work(begin, end):
            space = ffi.new("char[]", lib.nnn_workspace_size(self._p))
            msg = ffi.new("char[256]")
            if (
                lib.nnn_run_inputs(
                    self._p,
                    space,
                    ncells,
                    len(arrays),
                    inputs,
                    ffi.from_buffer(y),
                    int(begin),
                    int(end),
                    msg,
                    256,
                )
                != lib.NNN_OK
            ):
                errors.append(_message(msg))

        pool = [threading.Thread(target=work, args=(b, e)) for b, e in pairwise(bounds)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise ArgumentError(errors[0])
        return y.reshape(batch, n_out)


def run(program, x, *more, threads=1):
    """Run a native program (path, bytes or :class:`Program`) on ``x`` (and ``more`` inputs)."""
    p = program if isinstance(program, Program) else Program(program)
    return p(x, *more, threads=threads)


def available_isas():
    """The instruction sets whose kernels this library has and this CPU runs, narrowest first:
    the last is the one ``"auto"`` runs."""
    return [
        name
        for name, isa in ISAS.items()
        if name != "auto" and lib.nnn_activation(isa, lib.NNN_F32, 0, ffi.NULL, 0) == lib.NNN_OK
    ]


def activation(name, values, isa="auto"):
    """The library's activation (``"identity"``, ``"tanh"``, ``"relu"``, ``"softplus"``) on a float32 or
    float64 numpy array (a copy), with the kernels of ``isa``."""
    v = np.array(values, copy=True, order="C")
    dtype = {np.dtype(np.float32): lib.NNN_F32, np.dtype(np.float64): lib.NNN_F64}[v.dtype]
    act = {"identity": 0, "tanh": 1, "relu": 2, "softplus": 3}[name]
    if lib.nnn_activation(ISAS[isa], dtype, act, ffi.from_buffer(v), v.size) != lib.NNN_OK:
        raise ArgumentError(f"activation {name} with {isa}: not available")
    return v
