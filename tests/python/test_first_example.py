"""The first example (examples/first/, the first page of the docs): export.py writes a closure,
host.f90 and host.c built with the flags of ``pyclosure config`` and run.py call it, and all
three print the closure's output for the same columns as torch computes it."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import cli

FIRST = pathlib.Path(__file__).parents[2] / "examples" / "first"


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _fluxes(stdout):
    rows = [line.split()[1:] for line in stdout.splitlines() if line.startswith("flux")]
    return np.array(rows, dtype=np.float64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The example's closure as TorchScript and as a native program, and torch's output for the
    host's columns (q = 0, 1/12, ..., 11/12 in memory order) from the same weights."""
    d = tmp_path_factory.mktemp("first")
    for name in ("closure.pt", "closure.nnp"):
        _run([sys.executable, FIRST / "export.py", d / name], cwd=d)
    q = (torch.arange(12, dtype=torch.float64) / 12).reshape(3, 4)
    with torch.no_grad():
        expected = torch.jit.load(str(d / "closure.pt"))(q).numpy()
    return d, expected


def test_export_writes_a_closure_with_its_contract(exported):
    d, expected = exported
    assert expected.shape == (3, 5)
    for name in ("closure.pt", "closure.nnp"):
        text = _run(cli("info", d / name))
        assert "'q'" in text or " q " in text, text
        assert "flux" in text, text


@pytest.fixture(scope="module")
def fortran_host(build_fortran):
    return build_fortran(FIRST / "host.f90", name="first_host")


@pytest.mark.parametrize("name, engine", [("closure.pt", "torchscript"), ("closure.nnp", "native")])
def test_fortran_host_prints_the_closures_output(exported, fortran_host, name, engine):
    d, expected = exported
    out = _run([fortran_host, d / name])
    assert f"engine {engine}" in out
    got = _fluxes(out)
    assert got.shape == (3, 5)
    if engine == "torchscript":  # the bridge runs the same TorchScript: bit for bit
        np.testing.assert_array_equal(got, expected)
    else:  # the native engine's arithmetic contract: within rounding of torch's
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-15)


def test_c_host_prints_what_the_fortran_host_prints(exported, fortran_host, build_c):
    d, expected = exported
    fortran = _fluxes(_run([fortran_host, d / "closure.pt"]))
    c = _fluxes(_run([build_c(FIRST / "host.c", name="first_host_c"), d / "closure.pt"]))
    np.testing.assert_array_equal(c, fortran)
    np.testing.assert_array_equal(c, expected)


def test_python_run_prints_what_the_hosts_print(exported):
    d, expected = exported
    got = _fluxes(_run([sys.executable, FIRST / "run.py", d / "closure.pt"]))
    np.testing.assert_array_equal(got, expected)


def test_fortran_host_stops_with_the_bridges_message_on_a_missing_file(tmp_path, fortran_host):
    proc = subprocess.run(
        [str(fortran_host), str(tmp_path / "missing.pt")], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "cannot open model file" in proc.stderr + proc.stdout


def test_more_falls_back_on_the_bad_column_counts_it_and_records_the_call(exported, build_fortran, tmp_path):
    d, _ = exported
    exe = build_fortran(FIRST / "more.f90", name="first_more")
    out = _run([exe, d / "closure.pt", tmp_path / "records"])
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    # column 2 only: NN_FLAG_NONFINITE_INPUT (1) and, the NaN running through, NN_FLAG_NONFINITE_OUTPUT (2)
    assert lines["flags"].split() == ["0", "3", "0"]
    assert [float(v) for v in lines["column2"].split()] == [-1.0] * 5  # the host's fallback, as given
    assert lines["fallback_columns"] == "1"
    assert "fallback columns 1 (non-finite input 1" in out
    state = json.loads((tmp_path / "records" / "recording.json").read_text())
    assert state["state"] == "stopped" and state["records"] == 1
    (record,) = (tmp_path / "records").glob("record_*.npz")
    with np.load(record, allow_pickle=False) as z:
        host = z["host.state_before"]
        assert host.shape == (4, 3) and np.isnan(host[1, 1])  # the Fortran shape, as declared
        assert z["in.q"].shape == (3, 4)  # the model's view: torch order
        out = z["out.flux"]  # what the network returned, before the host's fallback replaced column 2
        assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
