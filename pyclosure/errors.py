"""Exceptions raised by pyclosure: one base class, one subclass per bridge status.

The status values are those of ``enum nnc_status`` in ``nn_closure.h``; a test
checks that they agree with the header and the Fortran module. Each subclass
also derives from the Python builtin that fits its meaning (a wrong shape is a
``ValueError``, a wrong dtype a ``TypeError``, an unreadable file an
``OSError``), so code that knows nothing of pyclosure catches them as it would
numpy's or torch's; ``except ClosureError`` still catches them all.
"""


class ClosureError(Exception):
    """Base class of every pyclosure error. ``status`` is the bridge status code."""

    status = -1

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class FileAccessError(ClosureError, OSError):
    """A file is missing, unreadable or unwritable (NNC_ERR_IO)."""

    status = 1


class ModelFormatError(ClosureError, ValueError):
    """Not a TorchScript file, truncated, or an invalid contract (NNC_ERR_FORMAT)."""

    status = 2


class BadDeviceError(ClosureError, ValueError):
    """A malformed device string (NNC_ERR_BAD_DEVICE)."""

    status = 3


class DeviceUnavailableError(ClosureError, RuntimeError):
    """The device asked for is not available, e.g. CUDA without CUDA (NNC_ERR_NO_DEVICE)."""

    status = 4


class InvalidHandleError(ClosureError, RuntimeError):
    """The model is not loaded or already freed (NNC_ERR_HANDLE)."""

    status = 5


class ArgumentCountError(ClosureError, TypeError):
    """Wrong number of inputs or outputs (NNC_ERR_NARGS)."""

    status = 6


class RankError(ClosureError, ValueError):
    """An array has the wrong rank (NNC_ERR_RANK)."""

    status = 7


class ShapeError(ClosureError, ValueError):
    """An array has the wrong shape (NNC_ERR_SHAPE)."""

    status = 8


class DtypeError(ClosureError, TypeError):
    """An array has the wrong element type (NNC_ERR_DTYPE)."""

    status = 9


class ArgumentError(ClosureError, ValueError):
    """An invalid argument (NNC_ERR_ARGUMENT)."""

    status = 10


class ModelRuntimeError(ClosureError, RuntimeError):
    """The model raised an error while running (NNC_ERR_RUNTIME)."""

    status = 11


class NonFiniteError(ClosureError, ValueError):
    """Non-finite values where they are not allowed (NNC_ERR_NONFINITE)."""

    status = 12


class RecordError(ClosureError, OSError):
    """Recording failed (NNC_ERR_RECORD)."""

    status = 13


class OutOfMemoryError(ClosureError, MemoryError):
    """Out of memory (NNC_ERR_MEMORY)."""

    status = 14


class UntrustedModelError(ClosureError, PermissionError):
    """A trusted list is set and the model file's SHA-256 is not on it (NNC_ERR_UNTRUSTED)."""

    status = 15


class TrainingError(ClosureError, RuntimeError):
    """Online training failed: the spec or the Python training code raised, or no Python (NNC_ERR_TRAIN)."""

    status = 16


class InternalError(ClosureError, RuntimeError):
    """A bug in the bridge (NNC_ERR_INTERNAL): please report it."""

    status = 99


#: status value -> exception class, and the header's names for them.
BY_STATUS = {
    cls.status: cls
    for cls in (
        FileAccessError, ModelFormatError, BadDeviceError, DeviceUnavailableError, InvalidHandleError, ArgumentCountError,
        RankError, ShapeError, DtypeError, ArgumentError, ModelRuntimeError, NonFiniteError, RecordError,
        OutOfMemoryError, UntrustedModelError, TrainingError, InternalError,
    )
}
STATUS_NAMES = {
    "NNC_OK": 0, "NNC_ERR_IO": 1, "NNC_ERR_FORMAT": 2, "NNC_ERR_BAD_DEVICE": 3, "NNC_ERR_NO_DEVICE": 4,
    "NNC_ERR_HANDLE": 5, "NNC_ERR_NARGS": 6, "NNC_ERR_RANK": 7, "NNC_ERR_SHAPE": 8, "NNC_ERR_DTYPE": 9,
    "NNC_ERR_ARGUMENT": 10, "NNC_ERR_RUNTIME": 11, "NNC_ERR_NONFINITE": 12, "NNC_ERR_RECORD": 13,
    "NNC_ERR_MEMORY": 14, "NNC_ERR_UNTRUSTED": 15, "NNC_ERR_TRAIN": 16,
    "NNC_ERR_INTERNAL": 99,
}


def raise_for_status(status, message):
    """Raise the exception class of a non-zero status with the bridge's message."""
    if status != 0:
        raise BY_STATUS.get(status, ClosureError)(message, status)
