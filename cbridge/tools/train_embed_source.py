"""Write the C source of ``libpyclosure_train_embed``, the library behind nnc_train_*.

Usage: train_embed_source.py HEADER OUTPUT.c CC [CC-ARGS...]

A cffi embedding (``ffi.embedding_api``): the bridge (cbridge/src/train.cpp) loads the
library with dlopen on the first nnc_train_create and calls the ``pyc_train_*``
functions below; the first call starts a Python interpreter in the process (or uses
the one running) and runs INIT, which binds them to :mod:`pyclosure._train_embedded`.
``nnc_array`` comes from the one header, preprocessed as for pyclosure._nnc.

INIT finds the Python packages next to this library: it is installed as
``SITE/pyclosure/lib/libpyclosure_train_embed.so``, so SITE (with its .pth files)
is added to ``sys.path``; the host needs no PYTHONPATH.
"""

import re
import subprocess
import sys

import cffi

MODULE = "_pyclosure_train_embed"

API = """
int pyc_train_create(void **trainer, const char *model_path, const char *engine, const char *contract,
                     const char *spec, const char *options, char *msg, size_t msglen);
int pyc_train_step(void *trainer, int num_inputs, const nnc_array *inputs, int num_targets,
                   const nnc_array *targets, double *loss, char *msg, size_t msglen);
int pyc_train_weights(void *trainer, int native, void *ctx,
                      void (*put)(void *ctx, const char *name, const nnc_array *array),
                      void (*put_program)(void *ctx, const void *data, size_t size), char *msg, size_t msglen);
int pyc_train_commit(void *trainer, int64_t *version, char *sha256, char *msg, size_t msglen);
int pyc_train_save(void *trainer, const char *path, char *msg, size_t msglen);
int pyc_train_free(void *trainer, char *msg, size_t msglen);
"""

C_SOURCE = r"""
#include <dlfcn.h>
static const char *pyc_train_library_path(void) {
    Dl_info info;
    if (dladdr((void *)&pyc_train_library_path, &info) && info.dli_fname) return info.dli_fname;
    return "";
}

/* Called once by the bridge before the first pyc_train_* call. Inside a running
   Python < 3.12, cffi's start-up spin lock is PyCapsule_Type.tp_version_tag, which
   the running interpreter has usually set by then (any attribute lookup on a
   capsule type): cffi would spin forever. PyType_Modified drops the tag (it is a
   cache key; the interpreter assigns a new one when it next needs it). */
__attribute__((visibility("default"))) void pyc_train_prepare(void) {
#if PY_VERSION_HEX < 0x030C0000
    if (Py_IsInitialized()) {
        PyGILState_STATE state = PyGILState_Ensure();
        PyType_Modified(&PyCapsule_Type);
        PyGILState_Release(state);
    }
#endif
}
"""

INIT = f"""
import os, site, sys
from {MODULE} import ffi, lib
_lib_path = ffi.string(lib.pyc_train_library_path()).decode()
if _lib_path:
    _site = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_lib_path))))
    if _site not in sys.path:
        site.addsitedir(_site)
from pyclosure._train_embedded import attach
attach(ffi, lib)
"""


def nnc_types(header, cc):
    """The header's type declarations (enums and structs), preprocessed: no second copy."""
    text = subprocess.run(
        [*cc, "-E", "-P", "-DNNC_CFFI_CDEF", header], check=True, capture_output=True, text=True
    ).stdout
    return "\n".join(
        m.group(0) for m in re.finditer(r"(?:typedef )?(?:enum|struct) \w+ \{.*?\}[^;]*;", text, re.DOTALL)
    )


def write_source(header, path, cc):
    """Write the library's C source to ``path``."""
    ffi = cffi.FFI()
    ffi.cdef(nnc_types(header, cc))
    ffi.cdef("const char *pyc_train_library_path(void);")
    ffi.embedding_api(API)
    ffi.set_source(MODULE, '#include "nn_closure.h"\n' + C_SOURCE)
    ffi.embedding_init_code(INIT)
    ffi.emit_c_code(str(path))


if __name__ == "__main__":
    write_source(sys.argv[1], sys.argv[2], sys.argv[3:])
