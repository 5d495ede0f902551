"""Sign-off that cannot be fooled: a wrong model, another thread count, a host without the closure.

Replay must fail a model file other than the recorded one (unless allowed),
and a model with other weights at every thread count, from the CLI and from
``assert_replays``; accept the recorded model at another thread count only
within a stated tolerance with the bridge and torch agreeing; and fail a host
whose update leaves the closure's flux out, although its cells and budgets
close.
"""

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from replaying import N, copy_records, next_up, record_burgers_run, replay_cli, rewrite, without

from pyclosure._verdict import outputs_verdict
from pyclosure.testing import assert_replays


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A recorded 2-thread Burgers run (180 closure calls, every 4th recorded)."""
    return record_burgers_run(tmp_path_factory.mktemp("replay"))


def _scaled_model(model, path, factor):
    """The model file with every weight multiplied by ``factor`` (contract kept)."""
    extra = {"pyclosure_contract.json": ""}
    m = torch.jit.load(str(model), _extra_files=extra)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(factor)
    torch.jit.save(m, str(path), _extra_files=extra)
    return path


@pytest.mark.parametrize("threads", [None, "1", "2", "3"])
def test_a_model_with_other_weights_fails_at_every_thread_setting(recorded, tmp_path, threads):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    wrong = _scaled_model(model, tmp_path / "wrong.pt", -3.0)
    args = () if threads is None else ("--threads", threads)
    proc, report = replay_cli(rec, wrong, *args)
    assert proc.returncode == 1 and "replay: FAILED" in proc.stdout and "replay: OK" not in proc.stdout
    assert report["summary"]["other_model"] == 45
    proc, report = replay_cli(rec, wrong, "--allow-other-model", *args)  # the outputs, compared, fail too
    assert proc.returncode == 1 and "replay: FAILED" in proc.stdout
    assert "replay: OK" not in proc.stdout and "ACCEPTED" not in proc.stdout
    assert report["summary"]["mismatch"] == 45, report["summary"]
    kw = {} if threads is None else {"threads": int(threads)}
    for allow in (False, True):
        with pytest.raises(AssertionError, match="failed"):
            assert_replays(rec, wrong, allow_other_model=allow, allow_within_tolerance=True, **kw)


def test_same_model_at_another_thread_count_is_equal_or_within_tolerance_never_a_false_failure(
    recorded, tmp_path
):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    proc, report = replay_cli(rec, model, "--threads", "1")
    assert proc.returncode == 0, proc.stdout
    assert {r["status"] for r in report["records"]} <= {"equal", "within_tolerance"}
    assert all(r["replay_threads"] == 1 for r in report["records"])
    # a 2-thread record one ulp away from what 1 thread gives: within tolerance, said so, not a failure
    rewrite(
        rec / "record_000000029.npz",
        lambda m, a: next_up(a, 0) if m in ("out.flux.npy", "host.applied_flux.npy") else a,
    )
    proc, report = replay_cli(rec, model, "--threads", "1", "--no-budgets")
    assert proc.returncode == 0, proc.stdout
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000029.npz"]
    assert r["status"] == "within_tolerance" and "recorded with 2 thread(s), replayed with 1" in r["message"]
    assert r["engines_agree"]["equal"] and "within tolerance" in proc.stdout
    # ... not with a zero tolerance, nor at the recorded thread count (bit for bit promised there)
    assert replay_cli(rec, model, "--threads", "1", "--no-budgets", "--rtol", "0")[0].returncode == 1
    proc, report = replay_cli(rec, model, "--no-budgets")
    assert proc.returncode == 1
    # assert_replays is strict: within tolerance passes only when asked for
    with pytest.raises(AssertionError, match="allow_within_tolerance"):
        assert_replays(rec, model, threads=1, budgets=False)
    assert assert_replays(rec, model, threads=1, budgets=False, allow_within_tolerance=True)["summary"]["ok"]


def test_a_difference_beyond_tolerance_at_another_thread_count_is_a_mismatch(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    rewrite(
        rec / "record_000000037.npz",
        lambda m, a: a * (1 + 1e-9) if m in ("out.flux.npy", "host.applied_flux.npy") else a,
    )
    proc, report = replay_cli(rec, model, "--threads", "1", "--no-budgets")
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000037.npz"]
    assert (
        r["status"] == "mismatch" and "beyond the tolerance" in r["message"] and "rtol 1e-12" in r["message"]
    )


def test_bridge_and_torch_that_disagree_off_the_recorded_setting_are_a_mismatch():
    arrays = [{"array": "flux", "equal": False, "rel_diff": 1e-16, "rtol": 1e-12, "max_ulps": 1}]
    paths = {
        k: {
            "equal": False,
            "comparable": False,
            "reasons": ["recorded with 2 thread(s), replayed with 1"],
            "arrays": arrays,
        }
        for k in ("bridge", "torch")
    }
    status, message = outputs_verdict(7, paths, {"array": "flux", "equal": False, "max_ulps": 1})
    assert status == "mismatch" and "the bridge and torch disagree" in message
    assert outputs_verdict(7, paths, {"array": "*", "equal": True})[0] == "within_tolerance"


def _drop_closure(m, a, arrays):
    """A record as a host writes it that updates with the non-closure flux only (cells consistent)."""
    if m == "host.flux.npy":
        return arrays["host.other_flux.npy"].copy()
    if m == "host.state_after.npy":
        b, f = arrays["host.state_before.npy"], arrays["host.other_flux.npy"]
        dt, dx = arrays["host.dt.npy"], arrays["host.dx.npy"]
        return b - dt * (f[1:] - f[:-1]) / dx + dt * arrays["host.source.npy"]
    return a


def test_a_burgers_record_whose_update_leaves_out_the_closure_flux_is_a_budget_violation(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    target = rec / "record_000000041.npz"
    with zipfile.ZipFile(target) as zf:
        arrays = {
            m: np.lib.format.read_array(io.BytesIO(zf.read(m))) for m in zf.namelist() if m != "meta.json"
        }
    rewrite(target, lambda m, a: _drop_closure(m, a, arrays))
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000041.npz"]
    assert r["status"] == "budget_violation" and "not (all) in the update" in r["message"]
    assert r["budget"]["budget"]["closes"], "the planted update must be consistent with its own total flux"
    assert r["budget"]["applied_flux"]["equal"] and not r["budget"]["closure_in_total"]["equal"]
    # ... and a record of an update without other_flux cannot be signed off either
    without(rec / "record_000000045.npz", "host.other_flux.npy")
    proc, report = replay_cli(rec, model)
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000045.npz"]
    assert r["status"] == "budget_violation" and "but not other_flux: nothing ties" in r["message"]


HOST_SCRIPT = """
import sys
import numpy as np
from pyclosure.bridge import Model
model, out, drop = sys.argv[1], sys.argv[2], sys.argv[3] == "drop"
n, dt, dx = {n}, 0.04, 100.0 / {n}
m = Model(model)
m.record_start(out, every=1)
u = np.sin(2 * np.pi * np.arange(n) / n) + 0.1 * np.random.default_rng(1).standard_normal(n)
for step in range(5):
    tau = m(u[None, :].copy())[0]                    # the closure's flux at the n left faces
    ul = np.roll(u, 1)
    other = (ul * ul + ul * u + u * u) / 6.0 - 0.02 * (u - ul) / dx   # resolved + viscous, left faces
    other = np.append(other, other[0])
    applied = np.append(tau, tau[0])
    total = other.copy() if drop else other + applied
    after = u - dt * (total[1:] - total[:-1]) / dx
    for name, a in (("state_before", u), ("given_x", u), ("state_after", after), ("flux", total),
                    ("other_flux", other), ("applied_flux", tau), ("dt", np.float64(dt)), ("dx", np.float64(dx))):
        m.record_array(name, a)
    u = after
m.record_stop()
"""


@pytest.mark.parametrize("drop", [False, True])
def test_a_host_that_drops_the_closure_from_its_update_failsreplay_cli(recorded, tmp_path, drop):
    model, _ = recorded
    out = tmp_path / "host"
    proc = subprocess.run(
        [sys.executable, "-c", HOST_SCRIPT.format(n=N), str(model), str(out), "drop" if drop else "keep"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    proc, report = replay_cli(out, model)
    s = report["summary"]
    assert s["records"] == 5 and s["budgets_checked"] == 5
    if not drop:
        assert proc.returncode == 0 and s["equal"] == 5 and s["budgets_closed"] == 5, proc.stdout
        return
    assert proc.returncode == 1 and s["budget_violation"] == 5 and s["budgets_closed"] == 0, proc.stdout
    for r in report["records"]:
        assert r["paths"]["bridge"]["equal"] and r["budget"]["budget"]["closes"]  # outputs and cells all fine
        assert "not (all) in the update" in r["message"]
    with pytest.raises(AssertionError, match=r"not .all. in the update"):
        assert_replays(out, model)
