"""The ``engine=`` load option: a host names the engine it requires (native, torchscript,
aoti) and a file for another engine is refused with NNC_ERR_FORMAT and a message naming
both, before any of it is loaded; from Python, C and Fortran."""

import pathlib
import subprocess

import pytest

from pyclosure.bridge import Model
from pyclosure.errors import ArgumentError, ModelFormatError

TESTS = pathlib.Path(__file__).parents[1]


def test_python_model_refuses_a_file_of_another_engine(native_dir, model_dir):
    with pytest.raises(
        ModelFormatError,
        match=r"is a native program \(engine native\), but the load option "
        r"engine=torchscript requires",
    ):
        Model(native_dir / "mlp64.nnp", engine="torchscript")
    with pytest.raises(
        ModelFormatError,
        match=r"is a TorchScript file \(engine torchscript\), but the load "
        r"option engine=aoti",
    ):
        Model(model_dir / "plain_affine64.pt", engine="aoti")


def test_python_model_loads_a_file_of_the_required_engine_and_says_so(native_dir, model_dir):
    model = Model(native_dir / "mlp64.nnp", engine="native")
    assert model.engine == "native" and "engine=native" in model.policy
    assert Model(model_dir / "plain_affine64.pt", engine="torchscript").engine == "torchscript"
    assert "engine" not in Model(native_dir / "mlp64.nnp").policy


def test_unknown_engine_is_an_argument_error(native_dir):
    with pytest.raises(ArgumentError, match="engine='gpu': use native, torchscript or aoti"):
        Model(native_dir / "mlp64.nnp", engine="gpu")


def test_c_host_gets_format_status_for_another_engine(native_dir, model_dir, build_c):
    exe = build_c(TESTS / "c" / "engine_option.c", name="engine_option_c")
    proc = subprocess.run(
        [str(exe), str(native_dir / "mlp64.nnp"), str(model_dir / "plain_affine64.pt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "engine_option: done" in proc.stdout, proc.stdout + proc.stderr


def test_fortran_host_gets_format_status_for_another_engine(native_dir, model_dir, build_fortran):
    exe = build_fortran(TESTS / "fortran" / "engine_option.f90", name="engine_option_f", extra=["-std=f2018"])
    proc = subprocess.run(
        [str(exe), str(native_dir / "mlp64.nnp"), str(model_dir / "plain_affine64.pt")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "engine_option: done" in proc.stdout, proc.stdout + proc.stderr
