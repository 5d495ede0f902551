"""What a host can ask of a loaded model, from Fortran and Python alike, and strings that do
not fit the caller's buffer: an error naming the size needed, never a silently cut answer."""

import json
import pathlib
import subprocess

import pytest

from pyclosure.bridge import Model, ffi, lib

FORTRAN = pathlib.Path(__file__).parents[1] / "fortran"


@pytest.fixture(scope="module")
def answers(model_dir, build_fortran, tmp_path_factory):
    exe = build_fortran(FORTRAN / "model_queries.f90", name="model_queries")
    out = tmp_path_factory.mktemp("queries")
    proc = subprocess.run([str(exe), str(model_dir), str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "model_queries: done" in proc.stdout, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    return lines, out


def test_fortran_reads_the_contract_as_python_does(answers, model_dir):
    lines, out = answers
    model = Model(model_dir / "two_in_two_out.pt")
    assert lines["has_contract"] == "T"
    assert lines["num_io"] == "2 2"
    assert json.loads((out / "contract.json").read_text()) == model.contract
    # per-sample shapes in Fortran order: the contract's torch shape reversed, as nn_forward passes arrays
    t = model.contract["inputs"][1]
    assert lines["input2"].split() == [t["name"], str(lib.NNC_FLOAT64), "shape", *map(str, t["shape"][::-1])]
    flux = model.contract["outputs"][0]
    assert lines["output1"].split() == [
        flux["name"],
        str(lib.NNC_FLOAT64),
        "shape",
        *map(str, flux["shape"][::-1]),
    ]
    rank3 = Model(model_dir / "affine_rank3.pt").contract["inputs"][0]["shape"]
    assert len(rank3) == 2 and lines["rank3_input_shape"].split() == [str(n) for n in rank3[::-1]]
    status, message = lines["input3"].split(" ", 1)
    assert (
        int(status) == lib.NNC_ERR_ARGUMENT and message == "input 3 does not exist: the contract declares 2"
    )


def test_fortran_policy_device_engine_and_record_dir_are_the_bridges(answers, model_dir):
    lines, out = answers
    model = Model(model_dir / "two_in_two_out.pt", nonfinite="fallback")
    assert lines["policy"] == model.policy == "nonfinite=fallback, ood=off"
    assert lines["device"] == model.device == "cpu"
    assert lines["engine"] == model.engine == "torchscript"
    assert lines["record_dir_before"] == "[]"
    assert pathlib.Path(lines["record_dir_during"].strip("[]")) == out / "rec"


def test_fortran_on_a_file_without_contract_and_on_a_freed_model(answers):
    lines, _ = answers
    assert lines["plain_has_contract"] == "F"
    assert lines["plain_num_io"] == "0 0"
    assert lines["plain_contract"] == "[]"
    assert lines["unloaded_has_contract"] == "F"
    assert int(lines["unloaded_stat"]) == lib.NNC_ERR_HANDLE


@pytest.mark.parametrize(
    "call, text",
    [
        (lib.nnc_model_device, "cpu"),
        (lib.nnc_model_engine, "torchscript"),
        (lib.nnc_model_policy, "nonfinite=error, ood=off"),
    ],
)
def test_a_string_that_does_not_fit_is_an_error_with_the_size_it_needs(model_dir, call, text):
    model = Model(model_dir / "affine64.pt")
    buf = ffi.new("char[]", b"x" * 40)
    assert call(model.handle, buf, len(text)) == lib.NNC_ERR_ARGUMENT
    assert ffi.string(buf) == b""
    assert f"needs {len(text) + 1}" in ffi.string(lib.nnc_last_error()).decode()
    assert call(model.handle, buf, len(text) + 1) == lib.NNC_OK
    assert ffi.string(buf).decode() == text


def test_record_dir_that_does_not_fit_is_an_error(model_dir, tmp_path):
    model = Model(model_dir / "affine64.pt")
    model.record_start(tmp_path / "a_long_enough_folder_name")
    buf = ffi.new("char[]", 16)
    assert lib.nnc_record_dir(model.handle, buf, 16) == lib.NNC_ERR_ARGUMENT and ffi.string(buf) == b""
    assert str(tmp_path / "a_long_enough_folder_name") == model.record_dir
    model.record_stop()
