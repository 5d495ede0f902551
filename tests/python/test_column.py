"""The column example: the Fortran scheme and host physics (through f90wrap), the
single-column model ``column_scm``, and ``pyclosure demo --example column --quick``.

The end-to-end run (training data from the scheme, training, exports to .nnp and .pt,
coupled Fortran runs, replay, cost per block, report) takes about a minute on 2 shared
cores; it skips the .pt2 export (--no-pt2: a 20-70 s compile the bridge tests cover).
"""

import importlib.resources
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, run_demo

from pyclosure.budget import update_budget

PROGRAM = Path(str(importlib.resources.files("pyclosure"))) / "bin" / "column_scm"
SIGMA = 5.670374419e-8
NLEV, NBAND = 30, 16


@pytest.fixture(scope="module")
def phys():
    from pyclosure import column_physics

    return column_physics


@pytest.fixture(scope="module")
def grid(phys):
    from pyclosure.demo.column import data

    return data.grid(NLEV)


def test_scheme_surface_emission_is_stefan_boltzmann(grid):
    # Layers at 10 K emit nothing, so the net flux at the surface interface is minus the
    # surface's emission summed over the bands: sigma ts^4 times the share of the Planck
    # spectrum in 10-3000 cm-1 (about 0.99 at 300 K; the midpoint rule over 16 bands adds
    # under 1 %).
    from pyclosure.demo.column import data

    p_int, _ = grid
    ts = np.array([260.0, 300.0])
    t = np.full((2, NLEV), 10.0)
    f = data.fluxes(t, np.full((2, NLEV), 1e-3), ts, NBAND, p_int)
    np.testing.assert_allclose(-f[:, -1], SIGMA * ts**4, rtol=0.03)
    assert np.all(f[:, 0] < 0) and np.all(f[:, 0] > f[:, -1])  # absorbed on the way up


def test_scheme_cost_and_result_depend_on_the_bands(grid):
    from pyclosure.demo.column import data

    p_int, _ = grid
    t = np.linspace(200.0, 290.0, NLEV)[None, :].repeat(3, 0)
    q = data.humidity(t, 0.8, p_int)
    f8, f64 = (data.fluxes(t, q, np.full(3, 295.0), nb, p_int) for nb in (8, 64))
    assert not np.array_equal(f8, f64)
    np.testing.assert_allclose(f8[:, 0], f64[:, 0], rtol=0.15)  # the same physics, coarser spectrum


def test_flux_update_closes_the_column_budget_bit_for_bit(phys, grid):
    # The host's update, through f90wrap, is exactly the update replay evaluates: every cell
    # bit for bit and each column's energy change equal to its boundary fluxes to rounding.
    _, dx = grid
    rng = np.random.default_rng(1)
    t = 250.0 + 20.0 * rng.random((4, NLEV))
    flux = -200.0 + 50.0 * rng.random((4, NLEV + 1))
    after = t.copy()
    phys.column_core.flux_update(NLEV, 4, 21600.0, dx, flux.T, after.T)
    check = update_budget(t.T, after.T, flux.T, 21600.0, dx[:, None], boundary="column")
    assert check.closes and check.cells_exact == t.size, check.message
    assert not np.array_equal(after, t)


def test_convection_conserves_enthalpy_and_leaves_a_stable_profile(phys, grid):
    p_int, _ = grid
    t = np.linspace(200.0, 260.0, NLEV)[None, :].copy()
    t[0, -5:] = 320.0  # a hot, unstable bottom
    before = t.copy()
    phys.column_core.convect(NLEV, 1, p_int, t.T)
    dp = np.diff(p_int)
    assert abs(np.sum(dp * (t - before))) < 1e-9 * np.sum(dp * before)
    theta = t[0] / (0.5 * (p_int[1:] + p_int[:-1]) / 1e5) ** 0.19
    assert np.all(np.diff(theta) <= 1e-6)  # potential temperature does not grow downwards
    assert not np.array_equal(t, before)


def _scm(tmp_path, **kw):
    params = {
        "nlev": NLEV,
        "ncol": 4,
        "nproma": 1,
        "nband": NBAND,
        "nsteps": 1600,
        "every": 400,
        "output": "traj.bin",
        **kw,
    }
    body = ",\n".join(f"  {k} = " + (f"'{v}'" if isinstance(v, str) else str(v)) for k, v in params.items())
    (tmp_path / "column.nml").write_text(f"&column\n{body}\n/\n")
    return subprocess.run(
        [str(PROGRAM), "column.nml"], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )


def test_scheme_run_reaches_a_steady_state_whatever_the_blocks(tmp_path):
    from pyclosure.demo.column.runs import read_trajectory

    results = []
    for nproma in (1, 3):
        folder = tmp_path / f"np{nproma}"
        folder.mkdir()
        proc = _scm(folder, nproma=nproma)
        assert proc.returncode == 0, proc.stderr
        results.append(read_trajectory(folder / "traj.bin"))
    (time, ts, t), (_, _, t3) = results
    assert t.shape == (5, 4, NLEV) and time[-1] == 1600 * 21600.0
    np.testing.assert_array_equal(ts, np.linspace(285.0, 305.0, 4))
    assert np.abs(t[-1] - t[-2]).max() < 0.1 < np.abs(t[1] - t[0]).max()  # 100 days: settled
    np.testing.assert_array_equal(t, t3)  # blocks of 1 or 3 columns: the same bits


def test_scm_refuses_an_unknown_radiation_with_a_message(tmp_path):
    proc = _scm(tmp_path, radiation="fast")
    assert proc.returncode != 0
    assert "radiation must be 'scheme' or 'nn', got 'fast'" in proc.stderr


def test_scm_names_a_missing_emulator_file(tmp_path):
    proc = _scm(tmp_path, radiation="nn", model=str(tmp_path / "missing.nnp"))
    assert proc.returncode != 0
    assert "cannot load emulator" in proc.stderr and "missing.nnp" in proc.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory, "column_scm", "--example", "column", "--no-pt2", timeout=900)


def test_column_demo_exits_zero_with_every_claim_held(demo):
    proc, report, out = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "all claims held" in proc.stdout
    assert all(c["held"] for c in report["claims"].values())
    for name in (
        "data.npz",
        "column.nnp",
        "column.pt",
        "column_guarded.pt",
        "report.md",
        "report.png",
        "runs/nn/traj.bin",
        "runs/guarded_warm/log.txt",
    ):
        assert (out / name).exists(), name


def test_column_demo_native_emulator_is_faster_than_the_scheme_from_nproma_8(demo):
    _, report, _ = demo
    for n, c in report["cost"]["nnp"].items():
        if int(n) >= 8:
            assert c["nn"] < c["scheme"], (n, c)
    assert set(report["cost"]) == {"nnp", "pt"}


def test_column_demo_budget_closes_in_every_recorded_column(demo):
    _, report, _ = demo
    r = report["replay"]
    assert r["records"] > 10 and r["budgets_closed"] == r["budgets_checked"] == r["records"]
    assert r["equal"] == r["records"] and r["cells_exact"] == r["cells"]


def test_column_demo_flagged_columns_fall_back_to_the_scheme_exactly(demo):
    _, report, _ = demo
    warm, control = report["guard"]["warm"], report["guard"]["control"]
    assert warm["ood_columns"] > 0
    assert (
        warm["fallback_columns"]
        == warm["host_fallbacks"]
        == warm["host_fallbacks_exact"]
        == warm["ood_columns"]
    )
    assert control["ood_columns"] < warm["ood_columns"]
    # falling back keeps the perturbed run closer to the scheme's than the plain emulator
    assert report["versus_scheme"]["guarded_warm"]["rms"] <= report["versus_scheme"]["nn_warm"]["rms"]


def test_column_demo_reports_errors_against_the_no_error_baseline(demo):
    _, report, out = demo
    h = report["heating_scheme_states"]
    assert h["baseline"] == 0.0 and 0 < h["rmse"] < 0.5 * h["rms_heating"]
    text = (out / "report.md").read_text()
    assert "baseline (no emulator error)" in text and "| nproma | scheme (s/block)" in text


def test_replay_matches_a_fortran_hosts_applied_flux_in_memory_order():
    # A Fortran host records applied_flux(nlev+1, ncol) (Fortran order); the model's output is
    # (ncol, nlev+1): the same memory, so link 2 holds. The same values in C order do not.
    from pyclosure._host import check_update

    contract = {"outputs": [{"name": "flux", "meaning": {"kind": "flux_at_faces", "boundary": "column"}}]}
    out = np.arange(12.0).reshape(3, 4)  # (ncol, nlev + 1)
    checks, failure = check_update(1, [("flux", out)], {"applied_flux": np.asfortranarray(out.T)}, contract)
    assert checks["applied_flux"]["equal"] and failure is None
    checks, failure = check_update(
        1, [("flux", out)], {"applied_flux": np.ascontiguousarray(out.T)}, contract
    )
    assert not checks["applied_flux"]["equal"] and "not the model's 'flux'" in failure


def test_demo_refuses_no_pt2_for_the_burgers_example():
    proc = subprocess.run(cli("demo", "--no-pt2"), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--no-pt2 applies to --example column only" in proc.stderr
