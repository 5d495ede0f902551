"""Write the C source of the cffi twin pyclosure._native_c from cbridge/native/nn_native.h.

As cffi_source.py does for nn_closure.h: the header is preprocessed with NNN_CFFI_CDEF
defined, so the declarations cffi sees are exactly the header's. The twin links the
native kernel library only (no libtorch).
Usage: cffi_native_source.py HEADER OUTPUT.c CC [CC-ARGS...]
"""

import subprocess
import sys

import cffi


def main(header, output, cc):
    cdef = subprocess.run(
        [*cc, "-E", "-P", "-DNNN_CFFI_CDEF", header], check=True, capture_output=True, text=True
    ).stdout
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source("pyclosure._native_c", '#include "nn_native.h"')
    ffi.emit_c_code(output)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
