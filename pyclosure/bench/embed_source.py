"""Write the C source of ``libpyclosure_bench_embed``, the embedded-Python route's library.

A build step (``cbridge/bench/meson.build``) runs ``python embed_source.py OUT.c``;
the build compiles the result against libpython. It is a cffi embedding
(``ffi.embedding_api``): the library exports two C functions,

* ``int bench_py_load(const char *path, int dtype, int64_t nin, int64_t nout, int threads,
  const char *device)``: dtype 1 float32, 2 float64;
* ``int bench_py_run(void *x, void *y, int64_t batch)``: x (batch, nin), y (batch, nout),

and the first call starts a Python interpreter in the calling process and runs the
init code below, which binds them to :mod:`pyclosure.bench.embedded`. Both return
0 on success and -1 after printing Python's traceback.

The interpreter takes its ``sys.path`` from ``PYCLOSURE_BENCH_SYSPATH`` and runs the
``.pth`` files of the folders in ``PYCLOSURE_BENCH_SITE`` (the benchmark sets both
from its own interpreter), so it imports the same torch and pyclosure.
"""

import sys

import cffi

MODULE = "_pyclosure_bench_embed"

API = """
int bench_py_load(const char *path, int dtype, int64_t nin, int64_t nout, int threads, const char *device);
int bench_py_run(void *x, void *y, int64_t batch);
"""

INIT = f"""
import os, site, sys
if os.environ.get("PYCLOSURE_BENCH_SYSPATH"):
    sys.path[:] = os.environ["PYCLOSURE_BENCH_SYSPATH"].split(os.pathsep)
for folder in os.environ.get("PYCLOSURE_BENCH_SITE", "").split(os.pathsep):
    if folder:
        site.addsitedir(folder)
from {MODULE} import ffi
from pyclosure.bench.embedded import attach
attach(ffi)
"""


def write_source(path):
    """Write the library's C source to ``path``."""
    ffi = cffi.FFI()
    ffi.embedding_api(API)
    ffi.set_source(MODULE, "")
    ffi.embedding_init_code(INIT)
    ffi.emit_c_code(str(path))


if __name__ == "__main__":
    write_source(sys.argv[1])
