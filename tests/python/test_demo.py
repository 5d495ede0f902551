"""End-to-end test of ``pyclosure demo --quick`` (the installed CLI, in a subprocess).

It runs the whole demo once (DNS through the f90wrap core, training, export to
an AOTInductor package, coupled Fortran runs through ``nn_closure``, checks,
report; about 2.5 min on 2 shared cores, mostly training, of which the package's
AOTInductor compile is 20-40 s) and checks the claims it writes into ``report.json``. Fails,
saying so, when the Burgers example (f90wrap core and ``burgers_les``) is not built.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory, "burgers_les", timeout=600)


def test_demo_exits_zero_and_prints_the_table(demo):
    proc, _, _ = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| closure | short-term RMSE | long-run log-spectrum error | finite |" in proc.stdout
    assert "all claims held" in proc.stdout


def test_demo_writes_everything_into_out(demo):
    _, _, out = demo
    for name in (
        "data.npz",
        "train.nc",
        "closure.pt2",
        "closure.pt",
        "report.md",
        "report.json",
        "report.png",
        "runs/nn_long/burgers.nml",
        "runs/nn_long/traj.bin",
    ):
        assert (out / name).exists(), name


def test_demo_training_data_is_cf_netcdf_with_the_npz_pairs(demo):
    import xarray as xr

    _, _, out = demo
    with xr.open_dataset(out / "train.nc", engine="h5netcdf") as ds, np.load(out / "data.npz") as d:
        assert ds.attrs["Conventions"].startswith("CF-")
        for name in ("u", "tau", "tau_fv"):
            assert ds[name].dims == ("time", "x") and ds[name].attrs["units"] == "1"
            assert ds[name].attrs["long_name"]
            np.testing.assert_array_equal(ds[name].values, d[name])
        assert ds["u"].encoding["chunksizes"] == (250, d["u"].shape[1])


def test_learned_closure_beats_none_and_smagorinsky(demo):
    # Quick mode (200 time units of training data, 100 epochs) already gives the
    # nn closure a clearly smaller short-term error and spectrum error than both
    # baselines (measured: about 2-3x smaller RMSE, 5x smaller spectrum error).
    _, report, _ = demo
    c = report["closures"]
    for metric in ("short_term_rmse", "spectrum_error"):
        assert c["nn"][metric] < c["none"][metric], metric
        assert c["nn"][metric] < c["smagorinsky"][metric], metric
    assert report["claims"]["short_term"]["held"] and report["claims"]["spectrum"]["held"]


def test_coupled_runs_stay_finite(demo):
    _, report, _ = demo
    assert all(report["closures"][c]["finite"] for c in ("none", "smagorinsky", "nn"))
    assert report["claims"]["finite"]["held"]


def test_momentum_of_every_long_coupled_run_within_rounding_bound(demo):
    # drift / (8 eps mom_scale) from each burgers_les run's own trajectory: the same
    # bound as tests/python/test_burgers_core.py. The claim says what it checks: the
    # host's flux-form update, which conserves whatever finite fluxes the closure gives.
    _, report, out = demo
    m = report["momentum"]
    assert set(m["per_closure"]) == {"none", "smagorinsky", "nn"}
    for c, r in m["per_closure"].items():
        assert 0.0 <= r["ratio"] < 1.0, c
        assert r["trajectory"] == f"runs/{c}_long/traj.bin" and (out / r["trajectory"]).exists()
        assert r["twin_max_abs_diff"] == 0.0, c  # the account's scale is the run's own, bit for bit
    assert m["worst_ratio"] == max(r["ratio"] for r in m["per_closure"].values())
    claim = report["claims"]["momentum"]
    assert claim["held"] and "host's flux-form update" in claim["detail"]
    assert "whatever finite fluxes the closure returns" in claim["detail"]


def test_momentum_check_fails_when_a_coupled_runs_trajectory_loses_momentum(demo, tmp_path):
    # The check reads the run's trajectory file: one cell of one snapshot of a copy,
    # changed by 1e-9 (far below what a plot would show), breaks the budget.
    from pyclosure.demo.checks import coupled_momentum

    _, report, out = demo
    for c in ("none", "smagorinsky", "nn"):
        run = out / "runs" / f"{c}_long"
        assert coupled_momentum(run) == (
            report["momentum"]["per_closure"][c]["ratio"],
            report["momentum"]["per_closure"][c]["drift"],
        )
        bad = tmp_path / c
        shutil.copytree(run, bad)
        n = int(np.fromfile(bad / "traj.bin", "<i8", 4)[1])
        data = np.fromfile(bad / "traj.bin", "<f8", offset=64)
        data[-n // 2] += 1e-9  # a cell of the last snapshot
        with open(bad / "traj.bin", "r+b") as f:
            f.seek(64)
            f.write(data.astype("<f8").tobytes())
        ratio, drift = coupled_momentum(bad)
        assert ratio > 1.0 and drift > 1e-10, c


def test_fortran_and_twin_agree_within_stated_tolerance(demo):
    # Same libtorch, one thread on both sides, twin bit for bit with the core:
    # the stated tolerance is 0 (bit for bit).
    _, report, _ = demo
    f = report["fortran_vs_twin"]
    assert f["snapshots_compared"] > 1
    assert f["max_abs_diff"] <= f["tolerance"]
    assert f["tolerance"] == 0.0 and f["bit_for_bit"]


def test_report_figure_is_not_blank(demo):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    _, _, out = demo
    img = matplotlib.image.imread(str(out / "report.png"))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img)) > 0.0


def test_coupled_runs_and_twin_run_the_exported_package(demo):
    # The Fortran runs name the package in their namelists; the twin loads the same file.
    from pyclosure.contract import read_contract

    _, report, out = demo
    e = report["export"]
    assert e["package"] == "closure.pt2" and e["reference"] == "closure.pt"
    assert e["export_s"] > 0 and e["compile_s"] > 0 and e["reference_export_s"] > 0
    assert e["engine"]["name"] == "aotinductor" and e["cells"][0] <= 128
    assert "closure.pt2'" in (out / "runs" / "nn_long" / "burgers.nml").read_text()
    package, reference = read_contract(out / "closure.pt2"), read_contract(out / "closure.pt")
    assert package["format"] == "pt2" and reference["format"] == "torchscript"
    assert package["weights_sha256"] == reference["weights_sha256"] == e["weights_sha256"]
    md = (out / "report.md").read_text()
    assert f"torch.export {e['export_s']:.1f} s, compile {e['compile_s']:.1f} s" in md


def test_demo_recorded_nn_run_replays_bit_for_bit_with_budgets(demo):
    _, report, out = demo
    r = report["records"]
    assert r["records"] > 10 and r["equal"] == r["records"] and r["mismatch"] == 0
    assert r["engine"] == "aotinductor" and r["recorded_engines"] == ["aotinductor"]
    assert r["budgets_checked"] == r["budgets_closed"] == r["records"]
    assert 0 <= r["worst_domain_residual_over_bound"] < 1
    assert report["claims"]["replay"]["held"]
    assert (out / r["report"]).exists()
    replayed = json.loads((out / r["report"]).read_text())
    assert replayed["model"]["path"].endswith("closure.pt2") and replayed["reference"].endswith("closure.pt")


def test_demo_reports_the_torchscript_reference_as_information(demo):
    # Eager torch (closure.pt) on the recorded inputs: equal to the package's outputs or apart by
    # rounding (inductor's tanh is not eager torch's); reported, never a claim.
    _, report, out = demo
    ref = report["records"]["reference"]
    assert ref["model"] == "closure.pt" and ref["records_run"] == report["records"]["records"]
    assert 0.0 <= ref["max_rel_diff"] < 1e-12
    assert "reference" not in report["claims"]
    assert "information, not a check: `closure.pt`" in (out / "report.md").read_text()


def test_demo_without_its_extra_stops_at_once_naming_what_to_install(tmp_path):
    # An environment without matplotlib: a finder that refuses it, then the CLI as the user runs it.
    code = f"""
import importlib.abc, sys
class NoMatplotlib(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoMatplotlib())
from pyclosure.cli import main
sys.exit(main(["demo", "--quick", "--out", {str(tmp_path / "out")!r}]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'matplotlib'" in proc.stderr and "demo" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "out").exists()
