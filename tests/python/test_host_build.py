"""A host model links against the installed package without knowing where pip put it."""

import os
import pathlib
import shlex
import shutil
import subprocess

import pytest
from conftest import cli

from pyclosure import config

SRC = pathlib.Path(__file__).parents[1] / "fortran" / "host_program.f90"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{shlex.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _check_program(exe, model_dir):
    out = _run(
        [str(exe), str(model_dir / "plain_affine64.pt")],
        env={k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"},
    )
    assert "host_program flux:" in out
    assert "1.250" in out and "3.750" in out  # by hand: flux(1,1) = 14/8 - 0.5, flux(2,1) = 32/8 - 0.25


def _cli(*args):
    return _run(cli("config", *args)).strip()


def test_program_built_with_pyclosure_config_flags_runs(tmp_path, model_dir):
    shutil.copy(SRC, tmp_path)
    cmd = [
        "gfortran",
        *shlex.split(_cli("--fflags")),
        "host_program.f90",
        "-o",
        "host",
        *shlex.split(_cli("--ldflags", "--libs")),
    ]
    _run(cmd, cwd=tmp_path)
    _check_program(tmp_path / "host", model_dir)


def test_program_built_from_shipped_module_sources_runs(tmp_path, model_dir):
    # What a user of another compiler does: compile the module sources themselves.
    shutil.copy(SRC, tmp_path)
    sources = shlex.split(_cli("--fortran-source"))
    _run(["gfortran", "-std=f2018", "-Wall", "-c", *sources], cwd=tmp_path)
    objs = [pathlib.Path(s).with_suffix(".o").name for s in sources]
    _run(
        ["gfortran", "host_program.f90", *objs, "-o", "host", *shlex.split(_cli("--ldflags", "--clibs"))],
        cwd=tmp_path,
    )
    _check_program(tmp_path / "host", model_dir)


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config is not installed")
def test_program_built_with_pkg_config_runs(tmp_path, model_dir):
    shutil.copy(SRC, tmp_path)
    env = {**os.environ, "PKG_CONFIG_PATH": _cli("--pkg-config-path")}
    flags = _run(["pkg-config", "--cflags", "--libs", "pyclosure"], env=env).split()
    _run(["gfortran", "host_program.f90", "-o", "host", *flags], cwd=tmp_path)
    _check_program(tmp_path / "host", model_dir)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_program_built_with_cmake_package_config_runs(tmp_path, model_dir):
    shutil.copy(SRC, tmp_path)
    shutil.copy(SRC.with_name("CMakeLists.txt"), tmp_path)
    _run(["cmake", "-S", ".", "-B", "build", f"-Dpyclosure_DIR={_cli('--cmake-dir')}"], cwd=tmp_path)
    _run(["cmake", "--build", "build"], cwd=tmp_path)
    _check_program(tmp_path / "build" / "host_program", model_dir)


def test_config_paths_exist():
    for key in ("include-dir", "lib-dir", "pkg-config-path", "cmake-dir"):
        assert pathlib.Path(config.flags()[key]).is_dir(), key
    assert (config.include_dir() / "nn_closure.h").is_file()
    assert (config.include_dir() / "nn_closure.mod").is_file()
    assert all(p.is_file() for p in config.fortran_sources())
