"""The Python side of libpyclosure_train_embed, the library behind nnc_train_* (see
``cbridge/tools/train_embed_source.py``).

The bridge loads that library on the first ``nnc_train_create``; its first call starts
(or, in a Python process, joins) the interpreter, which imports this module and binds
the library's C functions to :class:`pyclosure.online.OnlineTrainer`. Host arrays
arrive as ``nnc_array`` descriptors and are viewed as tensors without copying. Every
function returns a status: 0, a pyclosure error's status, or NNC_ERR_TRAIN for any
other exception, with its message in the caller's buffer.
"""

import traceback

import torch

from ._header import NNC_FLOAT32, NNC_FLOAT64, NNC_INT32, NNC_INT64, NNC_ORDER_F
from .errors import ArgumentError, ClosureError, FileAccessError, TrainingError
from .online import OnlineTrainer, SpecContext

TORCH_DTYPES = {
    NNC_FLOAT32: torch.float32,
    NNC_FLOAT64: torch.float64,
    NNC_INT32: torch.int32,
    NNC_INT64: torch.int64,
}
ORDER_F = NNC_ORDER_F


def _options(text):
    out = {}
    for item in text.replace(",", " ").split():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ArgumentError(f"training option '{item}' is not key=value")
        out[key] = value
    return out


def _message(exc):
    """The exception in one paragraph: its type, text and where it was raised."""
    if isinstance(exc, ClosureError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)
    at = f" (at {where[-1].filename}:{where[-1].lineno})" if where else ""
    return f"the training code raised {type(exc).__name__}: {exc}{at}"


def _status(exc):
    if isinstance(exc, ClosureError):
        return exc.status
    return TrainingError.status


def _fill(ffi, msg, msglen, text):
    data = text.encode("utf-8", "replace")[: max(int(msglen) - 1, 0)]
    if msglen > 0:
        ffi.memmove(msg, data + b"\0", len(data) + 1)


def view(ffi, a, what, i):
    """A tensor over the caller's array ``a`` (an nnc_array), in torch order, without copying.

    Arrays with negative strides (reversed Fortran sections) are copied.
    """
    if a.dtype not in TORCH_DTYPES:
        raise ArgumentError(f"{what} {i + 1}: unknown dtype code {a.dtype}")
    if a.rank < 1 or a.rank > 8:
        raise ArgumentError(
            f"{what} {i + 1}: rank {a.rank}; training arrays have a batch dimension (rank >= 1)"
        )
    dtype = TORCH_DTYPES[a.dtype]
    shape = [int(a.shape[k]) for k in range(a.rank)]
    if a.strides == ffi.NULL:
        strides, step = [], 1
        for n in shape if a.order == ORDER_F else reversed(shape):
            strides.append(step)
            step *= n
        if a.order != ORDER_F:
            strides.reverse()
    else:
        strides = [int(a.strides[k]) for k in range(a.rank)]
    if a.order == ORDER_F:
        shape, strides = shape[::-1], strides[::-1]
    if any(n == 0 for n in shape):
        return torch.empty(shape, dtype=dtype)
    if a.data == ffi.NULL:
        raise ArgumentError(f"{what} {i + 1}: data is NULL")
    item = torch.empty((), dtype=dtype).element_size()
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)  # offset of the lowest address
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(shape, strides))
    base = ffi.cast("char *", a.data) + low * item
    flat = torch.frombuffer(ffi.buffer(base, span * item), dtype=dtype, count=span)
    t = flat.as_strided(shape, [abs(s) for s in strides])
    flips = [d for d, s in enumerate(strides) if s < 0]
    return t.flip(flips) if flips else t


def attach(ffi, lib):
    """Define the library's C functions on the embedded ``ffi``."""
    trainers = {}
    counter = [0]

    def guarded(msg, msglen, body):
        try:
            body()
            return 0
        except BaseException as exc:  # noqa: BLE001 - every exception becomes a status
            _fill(ffi, msg, msglen, _message(exc))
            return _status(exc) if isinstance(exc, Exception) else TrainingError.status

    def trainer(h):
        t = trainers.get(int(ffi.cast("intptr_t", h)))
        if t is None:
            raise TrainingError("the trainer handle is not a live trainer")
        return t

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_create(out, model_path, engine, contract, spec, options, msg, msglen):
        def body():
            import json

            opts = _options(ffi.string(options).decode())
            text = ffi.string(contract).decode()
            ctx = SpecContext(
                ffi.string(model_path).decode(),
                ffi.string(engine).decode(),
                json.loads(text) if text else None,
                opts,
            )
            ctx.rank, ctx.size = ctx.get("rank", 0), ctx.get("size", 1)
            if not 0 <= ctx.rank < ctx.size:
                raise ArgumentError(f"rank={ctx.rank} is not in 0..size-1 (size={ctx.size})")
            made = OnlineTrainer(ffi.string(spec).decode(), ctx)
            counter[0] += 1
            trainers[counter[0]] = made
            out[0] = ffi.cast("void *", counter[0])

        return guarded(msg, msglen, body)

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_step(h, nin, inputs, ntg, targets, loss, msg, msglen):
        def body():
            t = trainer(h)
            xs = [view(ffi, inputs[i], "input", i) for i in range(nin)]
            ys = [view(ffi, targets[i], "target", i) for i in range(ntg)]
            fortran = nin > 0 and inputs[0].order == ORDER_F
            show = (lambda s: f"({', '.join(map(str, reversed(s)))}) in Fortran order") if fortran else tuple
            value = t.step(xs, ys, show)
            if loss != ffi.NULL:
                loss[0] = value

        return guarded(msg, msglen, body)

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_weights(h, native, ctx, put, put_program, msg, msglen):
        def body():
            t = trainer(h)
            keep = []
            t.synced_program = None
            if native:
                data = t.native_program()
                keep.append(data)
                t.synced_program = data  # saved with the version (commit), for replay
                put_program(ctx, ffi.from_buffer(data), len(data))
            else:
                for name, w in t.weights().items():
                    if w.dtype not in (torch.float32, torch.float64, torch.int32, torch.int64):
                        continue
                    codes = {v: k for k, v in TORCH_DTYPES.items()}
                    a = ffi.new("nnc_array *")
                    a.data = ffi.cast("void *", w.data_ptr())
                    a.dtype, a.rank, a.order = codes[w.dtype], w.dim(), 0
                    for k, n in enumerate(w.shape):
                        a.shape[k] = n
                    a.strides = ffi.NULL
                    keep.append((w, a))
                    put(ctx, name.encode(), a)
            t.sync_arrays = keep  # alive until the next sync: the bridge copies them after this returns

        return guarded(msg, msglen, body)

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_commit(h, version, sha, msg, msglen):
        def body():
            t = trainer(h)
            digest = t.new_version(getattr(t, "synced_program", None)).encode()
            t.synced_program = None
            ffi.memmove(sha, digest + b"\0", len(digest) + 1)
            version[0] = t.version

        return guarded(msg, msglen, body)

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_save(h, path, msg, msglen):
        def body():
            text = ffi.string(path).decode()
            if not text:
                raise FileAccessError("checkpoint path is empty")
            trainer(h).save(text)

        return guarded(msg, msglen, body)

    @ffi.def_extern(error=TrainingError.status)
    def pyc_train_free(h, msg, msglen):
        return guarded(msg, msglen, lambda: trainers.pop(int(ffi.cast("intptr_t", h)), None))
