"""The constants of nn_closure.h (statuses, dtypes, orders, limits, flags) for Python.

Generated from cbridge/include/nn_closure.h by fortran/generate.py: do not edit by hand; run
``python fortran/generate.py`` after changing the header. The bridge's cffi module
pyclosure._nnc is compiled from the header itself and has the same names.
"""

# enum nnc_status
NNC_OK = 0
#: file missing, unreadable or unwritable
NNC_ERR_IO = 1
#: not a model file, truncated, bad contract, unusable package
NNC_ERR_FORMAT = 2
#: malformed device string
NNC_ERR_BAD_DEVICE = 3
#: device not available (e.g. CUDA without CUDA)
NNC_ERR_NO_DEVICE = 4
#: NULL, never loaded or already freed handle
NNC_ERR_HANDLE = 5
#: wrong number of inputs or outputs
NNC_ERR_NARGS = 6
#: an array has the wrong rank
NNC_ERR_RANK = 7
#: an array has the wrong shape
NNC_ERR_SHAPE = 8
#: an array has the wrong element type
NNC_ERR_DTYPE = 9
#: invalid argument (NULL pointer, bad index, ...)
NNC_ERR_ARGUMENT = 10
#: the model raised an error while running
NNC_ERR_RUNTIME = 11
#: non-finite values where they are not allowed
NNC_ERR_NONFINITE = 12
#: recording failed (disk, cap, format)
NNC_ERR_RECORD = 13
#: out of memory
NNC_ERR_MEMORY = 14
#: a trusted list is set and the file is not on it
NNC_ERR_UNTRUSTED = 15
#: online training failed: the spec or the Python training code raised, or no Python
NNC_ERR_TRAIN = 16
#: a bug in the bridge: please report it
NNC_ERR_INTERNAL = 99

# enum nnc_dtype
NNC_FLOAT32 = 1
NNC_FLOAT64 = 2
NNC_INT32 = 3
NNC_INT64 = 4

# enum nnc_order
#: shape[0] is the slowest index (torch, numpy)
NNC_ORDER_C = 0
#: shape[0] is the fastest index (Fortran)
NNC_ORDER_F = 1

# enum nnc_limits
NNC_MAX_RANK = 8
#: bytes of an nnc_io_info name; device and engine names fit too
NNC_NAME_LEN = 64

# enum nnc_flag
#: an input value of the column is NaN or Inf
NNC_FLAG_NONFINITE_INPUT = 1
#: an output value of the column is NaN or Inf
NNC_FLAG_NONFINITE_OUTPUT = 2
#: the model's OOD score is above its threshold
NNC_FLAG_OOD = 4

STATUS = {
    "NNC_OK": NNC_OK,
    "NNC_ERR_IO": NNC_ERR_IO,
    "NNC_ERR_FORMAT": NNC_ERR_FORMAT,
    "NNC_ERR_BAD_DEVICE": NNC_ERR_BAD_DEVICE,
    "NNC_ERR_NO_DEVICE": NNC_ERR_NO_DEVICE,
    "NNC_ERR_HANDLE": NNC_ERR_HANDLE,
    "NNC_ERR_NARGS": NNC_ERR_NARGS,
    "NNC_ERR_RANK": NNC_ERR_RANK,
    "NNC_ERR_SHAPE": NNC_ERR_SHAPE,
    "NNC_ERR_DTYPE": NNC_ERR_DTYPE,
    "NNC_ERR_ARGUMENT": NNC_ERR_ARGUMENT,
    "NNC_ERR_RUNTIME": NNC_ERR_RUNTIME,
    "NNC_ERR_NONFINITE": NNC_ERR_NONFINITE,
    "NNC_ERR_RECORD": NNC_ERR_RECORD,
    "NNC_ERR_MEMORY": NNC_ERR_MEMORY,
    "NNC_ERR_UNTRUSTED": NNC_ERR_UNTRUSTED,
    "NNC_ERR_TRAIN": NNC_ERR_TRAIN,
    "NNC_ERR_INTERNAL": NNC_ERR_INTERNAL,
}

DTYPE = {
    "NNC_FLOAT32": NNC_FLOAT32,
    "NNC_FLOAT64": NNC_FLOAT64,
    "NNC_INT32": NNC_INT32,
    "NNC_INT64": NNC_INT64,
}

ORDER = {
    "NNC_ORDER_C": NNC_ORDER_C,
    "NNC_ORDER_F": NNC_ORDER_F,
}

LIMITS = {
    "NNC_MAX_RANK": NNC_MAX_RANK,
    "NNC_NAME_LEN": NNC_NAME_LEN,
}

FLAG = {
    "NNC_FLAG_NONFINITE_INPUT": NNC_FLAG_NONFINITE_INPUT,
    "NNC_FLAG_NONFINITE_OUTPUT": NNC_FLAG_NONFINITE_OUTPUT,
    "NNC_FLAG_OOD": NNC_FLAG_OOD,
}
