"""Where the installed bridge lives, for host builds (like nf-config).

gfortran $(pyclosure config --fflags) my_model.f90 $(pyclosure config --ldflags --libs)
"""

from __future__ import annotations

import importlib.resources
import pathlib

__all__ = ["flags", "fortran_sources", "include_dir", "lib_dir", "package_dir"]


def package_dir() -> pathlib.Path:
    """The installed pyclosure package folder."""
    return pathlib.Path(str(importlib.resources.files("pyclosure")))


def include_dir() -> pathlib.Path:
    """Folder with nn_closure.h and the gfortran .mod files."""
    return package_dir() / "include"


def lib_dir() -> pathlib.Path:
    """Folder with libnnclosure.so and libnnclosure_fortran.so."""
    return package_dir() / "lib"


def fortran_sources() -> list[pathlib.Path]:
    """The nn_closure module sources, in compile order (for other compilers)."""
    return [package_dir() / "fortran" / "nn_closure_c.f90", package_dir() / "fortran" / "nn_closure.f90"]


def flags() -> dict[str, str]:
    """All answers of ``pyclosure config``, by option name."""
    inc, lib = include_dir(), lib_dir()
    return {
        "fflags": f"-I{inc}",
        "cflags": f"-I{inc}",
        "ldflags": f"-L{lib} -Wl,-rpath,{lib}",
        "libs": "-lnnclosure_fortran -lnnclosure",
        "clibs": "-lnnclosure",
        "fortran-source": " ".join(str(p) for p in fortran_sources()),
        "include-dir": str(inc),
        "lib-dir": str(lib),
        "pkg-config-path": str(lib / "pkgconfig"),
        "cmake-dir": str(lib / "cmake" / "pyclosure"),
    }
