"""The bridge is linked so that a CUDA build of torch brings its CUDA half along.

PyTorch splits its backends: libtorch_cpu and libtorch_cuda. Nothing in the
bridge calls a symbol of libtorch_cuda, so a linker that drops unused libraries
(--as-needed, meson's default) would leave it out, and a Fortran or C host would
find no CUDA: device "cuda:0" would fail on a GPU node. The bridge therefore
links libtorch.so, which needs libtorch_cuda on a CUDA build, with
--no-as-needed. Hosts link only libnnclosure and get torch through its NEEDED
entries (one place), so their flags must name no torch library themselves.
These checks run on the CPU build; the CUDA ones also where torch has CUDA.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess

import pytest
import torch

from pyclosure import config
from pyclosure.testing import elf_dynamic

TORCH_LIB = pathlib.Path(torch.__file__).parent / "lib"
needs_readelf = pytest.mark.skipif(
    shutil.which("readelf") is None, reason="readelf (binutils) is needed to read ELF dynamic sections"
)


@needs_readelf
def test_bridge_needs_libtorch_so_beside_torch_cpu_and_c10():
    needed, _ = elf_dynamic(config.lib_dir() / "libnnclosure.so")
    assert "libtorch.so" in needed, f"libtorch.so was dropped by the linker: NEEDED is {needed}"
    assert {"libtorch_cpu.so", "libc10.so"} <= set(needed)


@needs_readelf
def test_bridge_finds_torch_by_a_relative_runpath():
    _, runpath = elf_dynamic(config.lib_dir() / "libnnclosure.so")
    assert "$ORIGIN/../../torch/lib" in runpath


@needs_readelf
def test_libtorch_so_of_this_torch_brings_its_cuda_half_when_built_with_cuda():
    needed, _ = elf_dynamic(TORCH_LIB / "libtorch.so")
    assert "libtorch_cpu.so" in needed
    if torch.version.cuda:
        assert "libtorch_cuda.so" in needed
    else:
        assert not any("cuda" in n for n in needed), needed


@needs_readelf
def test_fortran_module_library_reaches_the_bridge():
    needed, _ = elf_dynamic(config.lib_dir() / "libnnclosure_fortran.so")
    assert "libnnclosure.so" in needed


def _torch_libraries(flags):
    return [f for f in shlex.split(flags) if re.match(r"-l(torch|c10)", f) or "libtorch" in f]


def test_host_flags_name_no_torch_library():
    flags = config.flags()
    for key in ("ldflags", "libs", "clibs"):
        assert _torch_libraries(flags[key]) == [], f"pyclosure config --{key}: {flags[key]}"
    assert "-lnnclosure" in shlex.split(flags["libs"]) and "-lnnclosure" in shlex.split(flags["clibs"])


def test_pkg_config_and_cmake_files_name_no_torch_library():
    flags = config.flags()
    pc = pathlib.Path(flags["pkg-config-path"]) / "pyclosure.pc"
    libs = [line for line in pc.read_text().splitlines() if line.startswith("Libs")]
    assert libs and all(_torch_libraries(line.split(":", 1)[1]) == [] for line in libs)
    cmake = (pathlib.Path(flags["cmake-dir"]) / "pyclosureConfig.cmake").read_text()
    linked = re.findall(r"INTERFACE_LINK_LIBRARIES\s+([^)\n]+)", cmake)
    assert linked and all(re.fullmatch(r"(pyclosure::\w+\s*)+", x.strip()) for x in linked), linked


def test_c_host_linked_with_host_flags_loads_libtorch_so(build_c, tmp_path):
    """What a host gets: libtorch.so (and with it libtorch_cuda on a CUDA build) in its process."""
    if shutil.which("ldd") is None:
        pytest.skip("ldd is needed to list the libraries a program loads")
    src = tmp_path / "host.c"
    src.write_text(
        '#include "nn_closure.h"\nint main(void) { const char *v, *t; return nnc_version(&v, &t); }\n'
    )
    exe = build_c(src, name="link_host")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    loaded = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True, env=env).stdout
    assert re.search(r"^\s*libtorch\.so => \S", loaded, re.M), loaded
    if torch.version.cuda:
        assert re.search(r"^\s*libtorch_cuda\.so => \S", loaded, re.M), loaded
    assert "not found" not in loaded
    assert subprocess.run([str(exe)], env=env).returncode == 0
