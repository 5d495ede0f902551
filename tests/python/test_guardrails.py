"""Guardrails: non-finite and out-of-distribution policies with per-column
fallback to the host's classical closure, and the statistics that count them.

The columns are states of the Burgers example core (one periodic domain per
column); the classical closure is the core's own Smagorinsky flux; the model
is a flux closure with a Mahalanobis OOD score fitted on Burgers states.
"""

import subprocess

import numpy as np
import pytest
import torch

import pyclosure
from pyclosure._header import NNC_FLAG_NONFINITE_INPUT, NNC_FLAG_NONFINITE_OUTPUT, NNC_FLAG_OOD
from pyclosure.bridge import Model
from pyclosure.burgers_core import burgers_core as core  # built with the package (examples/burgers)
from pyclosure.errors import ArgumentError, DtypeError, NonFiniteError, ShapeError
from pyclosure.models import PeriodicFluxClosure
from pyclosure.ood import GuardedClosure, MahalanobisGuard

N, NCOL, NAN_COL, OOD_COL = 64, 16, 3, 7


def _burgers_states(count, every=25):
    core.init(N, 100.0, 0.02, 0.04, 5, 0.3, 1, 3, 1.0)
    assert core.set_closure("smagorinsky", 0.2, "central") == 0
    x = (np.arange(N) + 0.5) * 100.0 / N
    core.set_state(np.sin(2 * np.pi * x / 100.0))
    core.step(500)
    states = []
    for _ in range(count):
        core.step(every)
        states.append(np.array(core.u))
    return np.array(states)


def _smagorinsky_flux(u):
    core.compute_fluxes(u)
    return np.array(core.flux_sgs)[:N].copy()  # left faces, as the closure's output


@pytest.fixture(scope="module")
def burgers(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    states = _burgers_states(300 + NCOL)
    train, cols = states[:300], states[300:].copy()
    torch.manual_seed(1)
    closure = PeriodicFluxClosure(1, 6, 16, 2, "tanh", dx=100.0 / N).double()
    guard = MahalanobisGuard(window=0).double().fit(torch.from_numpy(train))
    model = GuardedClosure(closure, guard)
    path = d / "guarded.pt"
    pyclosure.export(model, path, torch.zeros(1, N, dtype=torch.float64))
    cols[NAN_COL, 10] = np.nan
    cols[OOD_COL] += 6.0 * train.std()
    smag = np.array([_smagorinsky_flux(c) for c in cols])
    with torch.no_grad():
        net, score = torch.jit.load(str(path))(torch.from_numpy(cols))
    return {
        "dir": d,
        "path": path,
        "cols": cols,
        "smag": smag,
        "net": net.numpy(),
        "score": score.numpy(),
        "threshold": guard.threshold,
    }


def test_planted_columns_are_what_the_test_says(burgers):
    score, t = burgers["score"], burgers["threshold"]
    assert np.isnan(score[NAN_COL]) and score[OOD_COL] > t
    clean = [c for c in range(NCOL) if c not in (NAN_COL, OOD_COL)]
    assert (score[clean] <= t).all()
    assert not np.array_equal(burgers["smag"][OOD_COL], burgers["net"][OOD_COL])


def test_fortran_fallback_gives_classical_flux_in_flagged_columns_network_elsewhere(burgers, build_fortran):
    from conftest import HERE

    exe = build_fortran(HERE / "fortran" / "guard_columns.f90", name="guard_columns")
    d = burgers["dir"]
    # Fortran x(N, NCOL) is the torch (NCOL, N) batch: column c is domain c
    burgers["cols"].astype("<f8").tofile(d / "x.bin")
    burgers["smag"].astype("<f8").tofile(d / "fallback.bin")
    proc = subprocess.run(
        [str(exe), str(burgers["path"]), str(d), str(N), str(NCOL)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    y = np.fromfile(d / "y_fallback.bin", "<f8").reshape(NCOL, N)
    flags = np.fromfile(d / "flags_fallback.bin", "<i4")
    for c in range(NCOL):
        want = burgers["smag"][c] if c in (NAN_COL, OOD_COL) else burgers["net"][c]
        assert y[c].tobytes() == want.tobytes(), c  # bit for bit, column by column (NaN included)
    expected = np.zeros(NCOL, np.int32)
    expected[NAN_COL] = 1 | 2 | 4  # NaN input, so NaN flux and NaN score
    expected[OOD_COL] = 4
    assert np.array_equal(flags, expected)
    stats = {
        line.split("|")[1]: list(map(int, line.split("|")[2:]))
        for line in proc.stdout.splitlines()
        if line.startswith("stats|")
    }
    # calls, columns, fallback columns, non-finite input, non-finite output, ood
    assert stats["fallback"] == [1, NCOL, 2, 1, 1, 2]
    assert stats["flag"] == [1, NCOL, 1, 1, 1, 2]
    # ood=flag: the OOD column keeps the network's flux, the NaN column still falls back
    y_flag = np.fromfile(d / "y_flag.bin", "<f8").reshape(NCOL, N)
    assert np.array_equal(y_flag[OOD_COL], burgers["net"][OOD_COL])
    assert y_flag[NAN_COL].tobytes() == burgers["smag"][NAN_COL].tobytes()
    assert (
        "fallback columns 2 (non-finite input 1, non-finite output 1, out of distribution 2)" in proc.stdout
    )
    error = next(line for line in proc.stdout.splitlines() if line.startswith("error|"))
    assert error.split("|")[1] == "12"  # NN_ERR_NONFINITE
    assert f"input 'x' (argument 1) has NaN in column {NAN_COL + 1} of {NCOL}" in error


def test_python_fallback_and_flags(burgers):
    m = Model(burgers["path"], nonfinite="fallback", ood="fallback")
    assert m.policy == "nonfinite=fallback, ood=fallback"
    flags = np.zeros(NCOL, np.int32)
    flux, score = m(burgers["cols"], fallback=[burgers["smag"]], flags=flags)
    assert np.array_equal(flux[OOD_COL], burgers["smag"][OOD_COL])
    assert np.array_equal(flux[0], burgers["net"][0])
    assert flags[NAN_COL] == NNC_FLAG_NONFINITE_INPUT | NNC_FLAG_NONFINITE_OUTPUT | NNC_FLAG_OOD
    assert flags[OOD_COL] == NNC_FLAG_OOD
    assert np.isnan(score[NAN_COL])  # outputs without a fallback keep the network's values
    s = m.stats
    assert (s["calls"], s["columns"], s["fallback_columns"], s["ood_columns"]) == (1, NCOL, 2, 2)
    assert 0 < s["time_min"] <= s["time_median"] <= s["time_max"]
    # a lower threshold given at load flags more columns
    low = Model(burgers["path"], nonfinite="fallback", ood="flag", ood_threshold=0.0)
    low(burgers["cols"], fallback=[burgers["smag"]], flags=flags)
    assert (flags & NNC_FLAG_OOD).all()


def test_guardrail_misuse_is_a_clear_error(burgers, model_dir):
    with pytest.raises(ArgumentError, match="needs a model with an out-of-distribution score"):
        Model(model_dir / "affine64.pt", ood="flag")
    with pytest.raises(ArgumentError, match="nonfinite='maybe': use error, fallback or off"):
        Model(model_dir / "affine64.pt", nonfinite="maybe")
    m = Model(burgers["path"], nonfinite="fallback")
    with pytest.raises(ArgumentError, match="every forward call must pass the host's fallback"):
        m(burgers["cols"])
    with pytest.raises(ShapeError, match="fallback for output 'flux'"):
        m(burgers["cols"], fallback=[burgers["smag"][:, :10]])
    with pytest.raises(DtypeError, match="flags: expected int32"):
        m(burgers["cols"], fallback=[burgers["smag"]], flags=np.zeros(NCOL))
    with pytest.raises(ShapeError, match="flags: expected 16 entries"):
        m(burgers["cols"], fallback=[burgers["smag"]], flags=np.zeros(3, np.int32))
    assert m.stats["errors"] == 4 and m.stats["calls"] == 0
    m(burgers["cols"], fallback=[burgers["smag"]])  # and then it works


def test_default_policy_names_the_column_and_off_lets_nan_through(model_dir):
    x = np.zeros((4, 3))
    x[2, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"input 'x' \(argument 1\) has \+Inf in batch row 2 of 4"):
        Model(model_dir / "affine64.pt")(x)
    y = Model(model_dir / "affine64.pt", nonfinite="off")(x)
    assert np.isfinite(y[[0, 1, 3]]).all()


def test_stats_summary_printed_at_free_when_asked(model_dir, tmp_path):
    code = (
        "import numpy as np\nfrom pyclosure.bridge import Model\n"
        f"m = Model({str(model_dir / 'affine64.pt')!r})\n"
        "for _ in range(5):\n    m(np.zeros((7, 3)))\nm.close()\n"
    )
    env = {"NN_CLOSURE_STATS": "1", "PATH": "/usr/bin:/bin"}
    import os
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "affine64.pt: 5 calls (0 failed), 35 columns; time per call min" in proc.stderr


def test_nonfinite_error_writes_nothing_into_any_output(model_dir):
    # docs/guardrails.md: under nonfinite=error a NaN or Inf is NNC_ERR_NONFINITE "(nothing written)".
    # two_in_two_out (u, t) -> (flux, s): every output array keeps what it held, also the
    # first output when only the second is not finite.
    m = Model(model_dir / "two_in_two_out.pt")
    u, t = np.arange(12.0).reshape(4, 3) / 4 - 1, np.full((4, 2), 0.5)
    flux, s = np.full((4, 3), 7.0), np.full((4, 1), 7.0)
    u_nan = u.copy()
    u_nan[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"input 'u' \(argument 1\) has NaN in batch row 2 of 4"):
        m(u_nan, t, out=[flux, s])
    assert (flux == 7.0).all() and (s == 7.0).all()
    u_big = u.copy()
    u_big[1, 0] = 1e200  # s = sum(u * u) - t0 overflows in row 1; flux = sin(u) sum(t) stays finite
    with pytest.raises(
        NonFiniteError, match=r"output 's' \(argument 2\) of the model has \+Inf in batch row 1 of 4"
    ):
        m(u_big, t, out=[flux, s])
    assert (flux == 7.0).all() and (s == 7.0).all()
    assert m.stats["errors"] == 2
    m(u, t, out=[flux, s])  # the same arrays, a finite call: both written
    assert np.array_equal(s, (u * u).sum(1, keepdims=True) - t[:, :1]) and not (flux == 7.0).any()
