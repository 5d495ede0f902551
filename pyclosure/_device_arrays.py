"""Arrays that live on a device, described for the bridge's on-device route.

Two kinds are taken in place, without a copy: torch tensors (on any device) and
objects with ``__cuda_array_interface__`` (cupy, numba, and others). Their
descriptors (shape, strides) are built on the host; their data stays where it
is. The bridge checks that it lives on the model's device.
"""

from __future__ import annotations

from typing import Any

from .errors import ArgumentError, DtypeError, RankError

__all__ = ["describe", "is_device_array", "on_gpu"]

#: (data pointer, NNC dtype name, shape, strides in elements or None, read-only)
Layout = tuple[int, str, tuple[int, ...], "tuple[int, ...] | None", bool]

_TYPESTRS = {"<f4": "NNC_FLOAT32", "<f8": "NNC_FLOAT64", "<i4": "NNC_INT32", "<i8": "NNC_INT64"}
_TORCH_DTYPES = {
    "torch.float32": "NNC_FLOAT32",
    "torch.float64": "NNC_FLOAT64",
    "torch.int32": "NNC_INT32",
    "torch.int64": "NNC_INT64",
}
_ITEMSIZE = {"NNC_FLOAT32": 4, "NNC_FLOAT64": 8, "NNC_INT32": 4, "NNC_INT64": 8}
_LEGACY_STREAMS = (None, 1, 2)  # none given, the legacy and the per-thread default stream


def _is_torch(a: Any) -> bool:
    """True for a torch tensor (duck-typed: torch is not imported for a numpy call)."""
    return type(a).__module__.startswith("torch") and hasattr(a, "data_ptr") and hasattr(a, "stride")


def is_device_array(a: Any) -> bool:
    """True for a torch tensor (on any device) or an object with ``__cuda_array_interface__``."""
    return _is_torch(a) or hasattr(a, "__cuda_array_interface__")


def on_gpu(a: Any) -> bool:
    """True for a torch tensor not on the CPU or an object with ``__cuda_array_interface__``."""
    return (_is_torch(a) and a.device.type != "cpu") or (
        not _is_torch(a) and hasattr(a, "__cuda_array_interface__")
    )


def _torch_layout(a: Any, what: str) -> Layout:
    """A torch tensor's layout, in place."""
    code = _TORCH_DTYPES.get(str(a.dtype))
    if code is None:
        raise DtypeError(f"{what} has dtype {a.dtype}; the bridge takes float32, float64, int32, int64")
    return a.data_ptr(), code, tuple(a.shape), tuple(a.stride()), False


def _cai_layout(a: Any, what: str) -> Layout:
    """A ``__cuda_array_interface__`` object's layout, after its producer's stream is done."""
    cai = a.__cuda_array_interface__
    code = _TYPESTRS.get(cai["typestr"])
    if code is None:
        raise DtypeError(f"{what} has typestr {cai['typestr']!r}; the bridge takes <f4, <f8, <i4, <i8")
    stream = cai.get("stream")
    if stream == 0:
        raise ArgumentError(f"{what}: __cuda_array_interface__ stream 0 is not allowed (CAI v3)")
    if stream not in _LEGACY_STREAMS:  # the producer's own stream: its writes must be complete first
        import torch

        torch.cuda.ExternalStream(stream).synchronize()
    ptr, readonly = cai["data"]
    shape = tuple(cai["shape"])
    strides = cai.get("strides")
    size = _ITEMSIZE[code]
    if strides is not None:
        if any(s % size for s in strides):
            raise ArgumentError(f"{what} has strides {strides} that are not whole elements")
        strides = tuple(s // size for s in strides)
    return ptr, code, shape, strides, readonly


def describe(a: Any, desc: Any, what: str, lib: Any, ffi: Any, writable: bool = False) -> list:
    """Fill the nnc_array ``desc`` for device array ``a``; returns what must stay alive."""
    ptr, code, shape, strides, readonly = (_torch_layout if _is_torch(a) else _cai_layout)(a, what)
    if writable and readonly:
        raise ArgumentError(f"an output array is read-only: {what}")
    if len(shape) > lib.NNC_MAX_RANK:
        raise RankError(f"{what} has rank {len(shape)} > {lib.NNC_MAX_RANK}")
    desc.data = ffi.cast("void *", ptr)
    desc.dtype = getattr(lib, code)
    desc.rank = len(shape)
    desc.order = lib.NNC_ORDER_C
    for k, n in enumerate(shape):
        desc.shape[k] = n
    if strides is None:
        desc.strides = ffi.NULL
        return []
    cstrides = ffi.new("int64_t[]", list(strides) or [0])
    desc.strides = cstrides
    return [cstrides]
