"""Exceptions raised by pyclosure: one base class, one subclass per bridge status.

The status values are those of ``enum nnc_status`` in ``nn_closure.h``, from
pyclosure._header (generated from the header); a test checks that every status
has its class. Each subclass also derives from the Python builtin that fits its
meaning (a wrong shape is a ``ValueError``, a wrong dtype a ``TypeError``, an
unreadable file an ``OSError``), so code that knows nothing of pyclosure catches
them as it would numpy's or torch's; ``except ClosureError`` still catches them all.
"""

from ._header import (
    NNC_ERR_ARGUMENT,
    NNC_ERR_BAD_DEVICE,
    NNC_ERR_DTYPE,
    NNC_ERR_FORMAT,
    NNC_ERR_HANDLE,
    NNC_ERR_INTERNAL,
    NNC_ERR_IO,
    NNC_ERR_MEMORY,
    NNC_ERR_NARGS,
    NNC_ERR_NO_DEVICE,
    NNC_ERR_NONFINITE,
    NNC_ERR_RANK,
    NNC_ERR_RECORD,
    NNC_ERR_RUNTIME,
    NNC_ERR_SHAPE,
    NNC_ERR_TRAIN,
    NNC_ERR_UNTRUSTED,
    STATUS,
)


class ClosureError(Exception):
    """Base class of every pyclosure error. ``status`` is the bridge status code."""

    status = -1

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class FileAccessError(ClosureError, OSError):
    """A file is missing, unreadable or unwritable (NNC_ERR_IO)."""

    status = NNC_ERR_IO


class ModelFormatError(ClosureError, ValueError):
    """Not a TorchScript file, truncated, or an invalid contract (NNC_ERR_FORMAT)."""

    status = NNC_ERR_FORMAT


class BadDeviceError(ClosureError, ValueError):
    """A malformed device string (NNC_ERR_BAD_DEVICE)."""

    status = NNC_ERR_BAD_DEVICE


class DeviceUnavailableError(ClosureError, RuntimeError):
    """The device asked for is not available, e.g. CUDA without CUDA (NNC_ERR_NO_DEVICE)."""

    status = NNC_ERR_NO_DEVICE


class InvalidHandleError(ClosureError, RuntimeError):
    """The model is not loaded or already freed (NNC_ERR_HANDLE)."""

    status = NNC_ERR_HANDLE


class ArgumentCountError(ClosureError, TypeError):
    """Wrong number of inputs or outputs (NNC_ERR_NARGS)."""

    status = NNC_ERR_NARGS


class RankError(ClosureError, ValueError):
    """An array has the wrong rank (NNC_ERR_RANK)."""

    status = NNC_ERR_RANK


class ShapeError(ClosureError, ValueError):
    """An array has the wrong shape (NNC_ERR_SHAPE)."""

    status = NNC_ERR_SHAPE


class DtypeError(ClosureError, TypeError):
    """An array has the wrong element type (NNC_ERR_DTYPE)."""

    status = NNC_ERR_DTYPE


class ArgumentError(ClosureError, ValueError):
    """An invalid argument (NNC_ERR_ARGUMENT)."""

    status = NNC_ERR_ARGUMENT


class ModelRuntimeError(ClosureError, RuntimeError):
    """The model raised an error while running (NNC_ERR_RUNTIME)."""

    status = NNC_ERR_RUNTIME


class NonFiniteError(ClosureError, ValueError):
    """Non-finite values where they are not allowed (NNC_ERR_NONFINITE)."""

    status = NNC_ERR_NONFINITE


class RecordError(ClosureError, OSError):
    """Recording failed (NNC_ERR_RECORD)."""

    status = NNC_ERR_RECORD


class OutOfMemoryError(ClosureError, MemoryError):
    """Out of memory (NNC_ERR_MEMORY)."""

    status = NNC_ERR_MEMORY


class UntrustedModelError(ClosureError, PermissionError):
    """A trusted list is set and the model file's SHA-256 is not on it (NNC_ERR_UNTRUSTED)."""

    status = NNC_ERR_UNTRUSTED


class TrainingError(ClosureError, RuntimeError):
    """Online training failed: the spec or the Python training code raised, or no Python (NNC_ERR_TRAIN)."""

    status = NNC_ERR_TRAIN


class InternalError(ClosureError, RuntimeError):
    """A bug in the bridge (NNC_ERR_INTERNAL): please report it."""

    status = NNC_ERR_INTERNAL


#: status value -> exception class, and the header's names for them.
BY_STATUS = {
    cls.status: cls
    for cls in (
        FileAccessError,
        ModelFormatError,
        BadDeviceError,
        DeviceUnavailableError,
        InvalidHandleError,
        ArgumentCountError,
        RankError,
        ShapeError,
        DtypeError,
        ArgumentError,
        ModelRuntimeError,
        NonFiniteError,
        RecordError,
        OutOfMemoryError,
        UntrustedModelError,
        TrainingError,
        InternalError,
    )
}
STATUS_NAMES = STATUS


def raise_for_status(status, message):
    """Raise the exception class of a non-zero status with the bridge's message."""
    if status != 0:
        raise BY_STATUS.get(status, ClosureError)(message, status)
