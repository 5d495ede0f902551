"""The Python route of the coupling benchmark, and its driver process.

:class:`TorchRoute` calls the TorchScript module with torch on preallocated
tensors (``torch.jit.load``, ``inference_mode``, the result copied into the
output); given a ``.pt2`` package it calls ``torch._inductor.aoti_load_package``'s
model the same way. The embedded-Python route runs the same class inside a
Fortran program. :class:`BridgeRoute` calls a native program (``.nnp``) through
:class:`pyclosure.bridge.Model` (cffi, the C bridge Fortran calls).
:class:`DeviceRoute` calls the TorchScript file through the bridge's on-device
route with the arrays kept in the GPU's memory (copied there once, outside the
timed calls), which is what a host with device-resident arrays (OpenACC) pays.

``python -m pyclosure.bench.torch_route ROUTE MODEL DTYPE NIN NOUT THREADS DEVICE DUMPDIR``
is the Python driver: it answers the commands of the C++ and Fortran drivers
(``time``, ``dump``, ``alloc``, ``quit``; see ``cbridge/bench/floor.cpp``) with
the same JSON lines.
"""

import ctypes
import json
import os
import sys
import time

import numpy as np
import torch


def fixed_input(batch, nin, dtype):
    """The drivers' input (batch, nin): ((37 k) mod 101 - 50) / 64 over the flat index k."""
    k = np.arange(batch * nin, dtype=np.int64)
    return (((37 * k) % 101 - 50) / 64.0).astype(dtype).reshape(batch, nin)


class TorchRoute:
    """A TorchScript module called from Python on caller-owned tensors.

    Parameters
    ----------
    path : str
        The model file: TorchScript, or an AOTInductor package (``.pt2``).
    dtype : {"float32", "float64"}
        Element type of inputs and outputs.
    nin, nout : int
        Features per sample in and out: ``x (batch, nin) -> y (batch, nout)``.
    threads : int
        torch's intra-op thread count (set for the whole process).
    device : str
        ``"cpu"`` or ``"cuda:N"``. On a GPU each call also measures its
        host-device copies (``copy_ns``).
    """

    def __init__(self, path, dtype, nin, nout, threads, device):
        torch.set_num_threads(int(threads))
        self.nin, self.nout = int(nin), int(nout)
        self.np_dtype = np.dtype(dtype)
        self.itemsize = self.np_dtype.itemsize
        self.device = torch.device(device)
        if str(path).endswith(".pt2"):
            from torch._inductor import aoti_load_package

            cuda = self.device.type == "cuda" and self.device.index is not None
            self.module = aoti_load_package(str(path), device_index=self.device.index if cuda else -1)
        else:
            self.module = torch.jit.load(path, map_location=self.device).eval()
        self.copy_ns = -1

    def __call__(self, x, y):
        """y[...] = module(x) for host tensors x (batch, nin), y (batch, nout)."""
        with torch.inference_mode():
            if self.device.type == "cpu":
                y.copy_(self.module(x))
                return
            t0 = time.perf_counter_ns()
            xd = x.to(self.device)
            torch.cuda.synchronize(self.device)
            t1 = time.perf_counter_ns()
            r = self.module(xd)
            torch.cuda.synchronize(self.device)
            t2 = time.perf_counter_ns()
            y.copy_(r)
            self.copy_ns = (t1 - t0) + (time.perf_counter_ns() - t2)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _alloc_counts():
    """(allocations, bytes) from a preloaded alloc_counter, or None."""
    try:
        read = ctypes.CDLL(None).alloc_counter_read
    except AttributeError:
        return None
    calls, nbytes = ctypes.c_int64(), ctypes.c_int64()
    read(ctypes.byref(calls), ctypes.byref(nbytes))
    return calls.value, nbytes.value


def _heap_in_use():
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd


class BridgeRoute:
    """A model file called through the C bridge from Python (``pyclosure.bridge.Model``).

    Same parameters as :class:`TorchRoute`; the bridge's thread count is set for the
    process. Its arrays are numpy views of the driver's tensors, made once per tensor.
    """

    def __init__(self, path, dtype, nin, nout, threads, device):
        from .. import bridge

        bridge.set_num_threads(int(threads))
        self.nin, self.nout = int(nin), int(nout)
        self.model = bridge.Model(path, device)
        self.copy_ns = -1
        self._views = (None, None, None, None)

    def __call__(self, x, y):
        """y[...] = model(x) for host tensors x (batch, nin), y (batch, nout)."""
        if self._views[0] is not x or self._views[1] is not y:
            self._views = (x, y, x.numpy(), [y.numpy()])
        self.model.forward(self._views[2], out=self._views[3])


class DeviceRoute(BridgeRoute):
    """BridgeRoute with inputs and outputs in the model's device memory (torch tensors).

    The driver's host tensors are copied to the device when they change (not
    timed); each call runs ``nnc_model_forward_on_device``, which returns when the
    outputs are complete. :meth:`fetch` copies the output back for the dumps.
    """

    def __init__(self, path, dtype, nin, nout, threads, device):
        super().__init__(path, dtype, nin, nout, threads, device)
        self._host = (None, None)
        self._device = (None, None)

    def __call__(self, x, y):
        if self._host[0] is not x or self._host[1] is not y:
            self._host = (x, y)
            self._device = (x.to(self.model.device), torch.empty_like(y, device=self.model.device))
        self.model.forward(self._device[0], out=[self._device[1]], on_device=True)

    def fetch(self, y):
        y.copy_(self._device[1])


def _time(route, x, y, warmup, calls):
    for _ in range(warmup):
        route(x, y)
    t, copy = [], []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        route(x, y)
        t.append(clock() - t0)
        copy.append(route.copy_ns)
    answer = {"batch": x.shape[0], "t": t}
    if route.copy_ns >= 0:
        answer["copy"] = copy
    return answer


def _alloc(route, x, y, warmup, calls):
    for _ in range(warmup):
        route(x, y)
    h0, c0 = _heap_in_use(), _alloc_counts()
    for _ in range(calls):
        route(x, y)
    c1, h1 = _alloc_counts(), _heap_in_use()
    allocs, nbytes = (c1[0] - c0[0], c1[1] - c0[1]) if c0 else (-1, -1)
    return {"batch": x.shape[0], "calls": calls, "allocs": allocs, "bytes": nbytes, "heap_growth": h1 - h0}


def main(argv):
    name, path, dtype, nin, nout, threads, device, dumpdir = argv
    kind = DeviceRoute if name == "python_device" else BridgeRoute if path.endswith(".nnp") else TorchRoute
    route = kind(path, dtype, int(nin), int(nout), int(threads), device)
    print(json.dumps({"ready": 1, "route": name, "threads": torch.get_num_threads()}), flush=True)
    x = y = None
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        op, batch, warmup, calls = words[0], *map(int, words[1:4])
        if x is None or x.shape[0] != batch:
            x = torch.from_numpy(fixed_input(batch, route.nin, dtype))
            y = torch.zeros(batch, route.nout, dtype=x.dtype)
        if op == "time":
            answer = _time(route, x, y, warmup, calls)
        elif op == "alloc":
            answer = _alloc(route, x, y, warmup, calls)
        elif op == "dump":
            route(x, y)
            if hasattr(route, "fetch"):
                route.fetch(y)
            out = os.path.join(dumpdir, f"{name}-{batch}.bin")
            y.numpy().tofile(out)
            answer = {"dump": out}
        else:
            raise SystemExit(f"unknown command {op!r}")
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
