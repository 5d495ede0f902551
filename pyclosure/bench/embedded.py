"""The Python side of the embedded-Python route (see :mod:`.embed_source`).

Runs inside a Fortran program's embedded interpreter: ``bench_py_run`` wraps the
caller's arrays with numpy without copying (``np.frombuffer`` over ``ffi.buffer``),
calls the TorchScript module as the Python route does and copies the result into
the caller's output.
"""

import numpy as np
import torch

from .torch_route import TorchRoute


def attach(ffi):
    """Define the library's C functions on the embedded ``ffi``."""
    state = {}

    @ffi.def_extern(error=-1)
    def bench_py_load(path, dtype, nin, nout, threads, device):
        state["route"] = TorchRoute(
            ffi.string(path).decode(),
            "float64" if dtype == 2 else "float32",
            nin,
            nout,
            threads,
            ffi.string(device).decode(),
        )
        return 0

    @ffi.def_extern(error=-1)
    def bench_py_run(x, y, batch):
        r = state["route"]
        xs = np.frombuffer(ffi.buffer(x, batch * r.nin * r.itemsize), r.np_dtype)
        ys = np.frombuffer(ffi.buffer(y, batch * r.nout * r.itemsize), r.np_dtype)
        r(torch.from_numpy(xs).view(batch, r.nin), torch.from_numpy(ys).view(batch, r.nout))
        return 0
