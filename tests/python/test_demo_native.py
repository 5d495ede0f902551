"""End-to-end test of ``pyclosure demo --quick --engine native`` (the installed CLI, in a
subprocess): the demo's closure exported as a native program, the coupled Fortran runs
calling it through the bridge's native engine, the twin and the replay running the same
file through the cffi twin of the native kernels. About 2 min on 2 shared cores (no
compile: the export takes milliseconds). Fails, saying so, when the Burgers example is not built.
"""

import json

import pytest
from conftest import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory, "burgers_les", "--engine", "native", timeout=900)


def test_native_demo_holds_every_claim(demo):
    proc, report, _ = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all claims held" in proc.stdout
    assert all(c["held"] for c in report["claims"].values()), report["claims"]


def test_native_closure_beats_none_and_smagorinsky_in_the_coupled_runs(demo):
    _, report, _ = demo
    c = report["closures"]
    for metric in ("short_term_rmse", "spectrum_error"):
        assert c["nn"][metric] < min(c["none"][metric], c["smagorinsky"][metric]), metric


def test_coupled_runs_call_the_native_program(demo):
    from pyclosure.contract import read_contract

    _, report, out = demo
    e = report["export"]
    assert e["package"] == "closure.nnp" and e["format"] == "native" and not (out / "closure.pt2").exists()
    assert "closure.nnp'" in (out / "runs" / "nn_long" / "burgers.nml").read_text()
    program, reference = read_contract(out / "closure.nnp"), read_contract(out / "closure.pt")
    assert program["format"] == "native" and program["weights_sha256"] == reference["weights_sha256"]
    assert f"(native program, arithmetic contract {e['engine']['arith']}" in (out / "report.md").read_text()


def test_fortran_run_equals_the_cffi_twin_bit_for_bit(demo):
    _, report, _ = demo
    f = report["fortran_vs_twin"]
    assert f["snapshots_compared"] > 1 and f["bit_for_bit"] and f["max_abs_diff"] == 0.0


def test_recorded_native_calls_replay_bit_for_bit_through_bridge_and_twin(demo):
    _, report, out = demo
    r = report["records"]
    assert r["records"] > 10 and r["equal"] == r["records"] and r["mismatch"] == 0
    assert r["engine"] == "native" and r["recorded_engines"] == ["native"]
    assert r["budgets_checked"] == r["budgets_closed"] == r["records"]
    replayed = json.loads((out / r["report"]).read_text())
    assert replayed["model"]["path"].endswith("closure.nnp")
