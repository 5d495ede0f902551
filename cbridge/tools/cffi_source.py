"""Write the C source of a cffi extension of pyclosure from its one C header.

Two extensions are made this way: ``pyclosure._nnc`` from ``nn_closure.h`` (the bridge)
and ``pyclosure._native_c`` from ``cbridge/native/nn_native.h`` (the native kernels'
twin, which links no libtorch). The header is preprocessed with its cdef macro defined
(``NNC_CFFI_CDEF``, ``NNN_CFFI_CDEF``: it hides the header's #includes and extern "C"),
so the declarations cffi sees are exactly the header's: there is no second hand-written
copy.

Usage: cffi_source.py MODULE CDEF_MACRO HEADER OUTPUT.c CC [CC-ARGS...]
"""

import os
import subprocess
import sys

import cffi


def main(module, macro, header, output, cc):
    cdef = subprocess.run(
        [*cc, "-E", "-P", f"-D{macro}", header], check=True, capture_output=True, text=True
    ).stdout
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(module, f'#include "{os.path.basename(header)}"')
    ffi.emit_c_code(output)


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
