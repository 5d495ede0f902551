"""Write the C source of the cffi extension pyclosure._nnc from the one header.

The header is preprocessed with NNC_CFFI_CDEF defined (which hides its
#includes and extern "C"), so the declarations cffi sees are exactly those of
nn_closure.h: there is no second hand-written copy.
Usage: cffi_source.py HEADER OUTPUT.c CC [CC-ARGS...]
"""

import subprocess
import sys

import cffi


def main(header, output, cc):
    cdef = subprocess.run(
        [*cc, "-E", "-P", "-DNNC_CFFI_CDEF", header], check=True, capture_output=True, text=True
    ).stdout
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source("pyclosure._nnc", '#include "nn_closure.h"')
    ffi.emit_c_code(output)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
