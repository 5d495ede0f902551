"""Record at the call site, replay in Python (issue: record/replay).

A Burgers run of the Fortran program ``burgers_les`` with a learned flux
closure records its closure calls and host states; ``pyclosure replay`` must
reproduce them bit for bit through the bridge and through torch, close every
budget, and catch each planted fault: one ulp in a weight, one ulp in an
input, a corrupted byte, a run killed mid-write, one ulp in a cell, a host
that applied another flux. Wrong models at other thread counts, tolerance and
a host that leaves the closure out: test_replay_signoff.py.
"""

import hashlib
import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli
from replaying import N, copy_records, next_up, record_burgers_run, replay_cli, rewrite, run_les

from pyclosure.bridge import Model
from pyclosure.errors import ArgumentError, RecordError
from pyclosure.replay import read_record
from pyclosure.testing import assert_replays


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A recorded 2-thread Burgers run (180 closure calls, every 4th recorded)."""
    return record_burgers_run(tmp_path_factory.mktemp("replay"))


def test_burgers_run_replays_bit_for_bit_through_bridge_and_torch_and_budgets_close(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = report["summary"]
    assert s["records"] == 45 and s["equal"] == 45, s  # calls 1, 5, ..., 177 of 180
    for r in report["records"]:
        assert r["paths"]["bridge"]["equal"] and r["paths"]["torch"]["equal"]
        assert r["replay_threads"] == r["recorded_threads"] == 2
        assert r["budget"]["applied_flux"]["equal"] and r["inputs_given"]["x"]["equal"]
        assert r["budget"]["closure_in_total"]["equal"] and r["budget"]["closes"]
        assert r["engines_agree"]["equal"] and r["model_matches"]
        b = r["budget"]["budget"]
        assert b["closes"] and b["cells_exact"] == N and b["domain_departure"] == 0 and b["end_faces_equal"]
    assert s["budgets_checked"] == s["budgets_closed"] == 45
    assert report["model"]["matches_recorded"] and s["verdict"] == "OK" and "replay: OK" in proc.stdout
    summary = report["recordings"][str(rec)]
    assert summary["state"] == "stopped" and summary["records"] == 45 and summary["calls_seen"] == 180
    # numpy alone reads a record, without pickle
    z = np.load(rec / "record_000000005.npz", allow_pickle=False)
    assert z["in.x"].shape == (1, N) and z["out.flux"].shape == (1, N) and z["host.flux"].shape == (N + 1,)
    assert z["host.other_flux"].shape == (N + 1,) and z["host.applied_flux"].shape == (N,)
    assert z["host.dt"].shape == () and float(z["host.dt"]) == 0.04
    meta = json.loads(z["meta.json"])
    assert meta["call"] == 5 and meta["threads"] == 2 and meta["device"] == "cpu"
    assert meta["libtorch"] == torch.__version__.split("+")[0]
    assert meta["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert meta["arrays"]["in.x.npy"]["dtype"] == "float64"


def test_one_ulp_in_one_weight_is_a_mismatch_naming_record_and_array(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    m = torch.jit.load(str(model))
    extra = {"pyclosure_contract.json": ""}
    torch.jit.load(str(model), _extra_files=extra)
    with torch.no_grad():
        w = (
            dict(m.named_parameters())["net.0.weight"]
            if "net.0.weight" in dict(m.named_parameters())
            else next(iter(m.parameters()))
        )
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(np.inf, dtype=w.dtype))
    changed = tmp_path / "changed.pt"
    torch.jit.save(m, str(changed), _extra_files=extra)
    proc, report = replay_cli(
        rec, changed
    )  # another file than recorded: refused before any output is compared
    assert proc.returncode == 1 and report["summary"]["other_model"] == 45, proc.stdout
    assert (
        not report["model"]["matches_recorded"] and "NOT the model the records were made with" in proc.stdout
    )
    assert "--allow-other-model" in report["records"][0]["message"]
    proc, report = replay_cli(rec, changed, "--allow-other-model")  # ... and when allowed, the outputs tell
    assert proc.returncode == 1 and "replay: FAILED" in proc.stdout
    bad = [r for r in report["records"] if r["status"] == "mismatch"]
    assert bad, "a one-ulp weight change went unnoticed"
    assert "output 'flux'" in bad[0]["message"] and f"call {bad[0]['call']}" in bad[0]["message"]
    assert "FAILED" in proc.stdout and Path(bad[0]["file"]).name in proc.stdout
    arrays = bad[0]["paths"]["bridge"]["arrays"]
    assert arrays[0]["array"] == "flux" and not arrays[0]["equal"] and arrays[0]["max_ulps"] >= 1


def test_one_ulp_in_one_recorded_input_is_a_mismatch(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    target = rec / "record_000000009.npz"
    rewrite(target, lambda m, a: next_up(a, 7) if m == "in.x.npy" else a)
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    by_file = {Path(r["file"]).name: r for r in report["records"]}
    r = by_file["record_000000009.npz"]
    # the model got something else than the host's state: caught whether or not
    # this closure's output moves with one ulp of one cell (for most cells it does not)
    assert (
        r["status"] == "mismatch"
        and "input 'x' is not the host's given_x (up to 1 ulp(s) apart)" in r["message"]
    )
    assert r["inputs_given"]["x"]["first_index"] == 7
    assert sum(x["status"] == "equal" for x in report["records"]) == 44
    assert "record_000000009.npz" in proc.stdout


def test_one_ulp_in_an_input_the_output_depends_on_is_an_output_mismatch(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    target = rec / "record_000000009.npz"
    z = np.load(target)
    m = torch.jit.load(str(model))
    moving = [
        i
        for i in range(N)
        if not np.array_equal(
            m(torch.from_numpy(next_up(z["in.x"].copy(), i))).detach().numpy(), z["out.flux"]
        )
    ]
    assert moving, "no single-ulp input change moves this closure's output"
    i = moving[0]
    rewrite(target, lambda name, a: next_up(a, i) if name in ("in.x.npy", "host.given_x.npy") else a)
    proc, report = replay_cli(rec, model, "--no-budgets")
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000009.npz"]
    assert r["status"] == "mismatch" and "output 'flux'" in r["message"]
    assert not r["paths"]["bridge"]["equal"] and not r["paths"]["torch"]["equal"]


def test_a_corrupted_byte_is_caught_by_the_checksum(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    target = rec / "record_000000013.npz"
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as zf:
        info = zf.getinfo("host.state_after.npy")
    pos = info.header_offset + 30 + len(info.filename) + 200  # inside the array bytes
    data[pos] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(Exception, match="checksum"):
        read_record(target)
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000013.npz"]
    assert r["status"] == "corrupt" and "host.state_after.npy" in r["message"]
    assert report["summary"]["equal"] == 44


def test_a_truncated_record_is_corrupt_not_a_crash(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    target = rec / "record_000000017.npz"
    target.write_bytes(target.read_bytes()[:-100])
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000017.npz"]
    assert r["status"] == "corrupt" and "truncated or damaged" in r["message"]


def test_one_ulp_in_one_cell_is_a_budget_violation(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    rewrite(rec / "record_000000021.npz", lambda m, a: next_up(a, 10) if m == "host.state_after.npy" else a)
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000021.npz"]
    assert r["status"] == "budget_violation"
    b = r["budget"]["budget"]
    assert not b["closes"] and b["cells_exact"] == N - 1 and b["worst_cell"] == 10 and b["worst_ulps"] == 1
    assert "cell 10" in r["message"]
    assert r["paths"]["bridge"]["equal"]  # the model's outputs are still right


def test_a_host_that_applied_another_flux_is_reported(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    rewrite(rec / "record_000000025.npz", lambda m, a: next_up(a, 3) if m == "host.applied_flux.npy" else a)
    proc, report = replay_cli(rec, model)
    assert proc.returncode == 1
    r = {Path(x["file"]).name: x for x in report["records"]}["record_000000025.npz"]
    assert r["status"] == "budget_violation" and "not the model's 'flux'" in r["message"]


KILL_SCRIPT = """
import sys, numpy as np
from pyclosure.bridge import Model
m = Model(sys.argv[1])
m.record_start(sys.argv[2], every=1, max_bytes=1 << 40)
x = np.random.default_rng(0).random((4, 3))
big = np.ones(40_000_000)
for k in range(1000):
    m(x)
    m.record_array("state", big)
    print(k, flush=True)
"""


def test_a_run_killed_mid_write_leaves_earlier_records_replayable(model_dir, tmp_path):
    rec = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(model_dir / "affine64.pt"), str(rec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if len(list(rec.glob("record_*.npz"))) >= 2 and list(rec.glob("*.partial")):
                break
            assert proc.poll() is None, "the recording process ended by itself"
            time.sleep(0.002)
        else:
            pytest.fail("never saw a record being written")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc.stdout.close()
    assert list(rec.glob("record_*.npz.partial"))
    r = subprocess.run(
        cli("replay", rec, "--model", model_dir / "affine64.pt"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads((rec / "replay_report.json").read_text())
    s = report["summary"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert s["partial"] == 1 and s["equal"] >= 2 and s["equal"] == s["records"] - 1
    partial = next(x for x in report["records"] if x["status"] == "partial")
    assert "stopped while writing" in partial["message"]
    assert report["recordings"][str(rec)]["state"] == "recording"  # never stopped: the run was killed
    assert "partial" in r.stdout


def test_size_cap_stops_recording_and_says_so(model_dir, tmp_path):
    code = f"""
import numpy as np
from pyclosure.bridge import Model
m = Model({str(model_dir / "affine64.pt")!r})
m.record_start({str(tmp_path / "rec")!r}, every=1, max_bytes=6000)
x = np.zeros((4, 3))
for k in range(20):
    y = m(x)
m.record_stop()
print("ran", k + 1)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0 and "ran 20" in proc.stdout
    assert "stopped: size cap of 6000 bytes reached" in proc.stderr
    summary = json.loads((tmp_path / "rec" / "recording.json").read_text())
    assert summary["state"] == "capped" and summary["calls_seen"] == 20
    assert 0 < summary["records"] < 20 and summary["bytes"] <= 6000
    assert len(list((tmp_path / "rec").glob("record_*.npz"))) == summary["records"]
    r = subprocess.run(
        cli("replay", tmp_path / "rec", "--model", model_dir / "affine64.pt"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0 and "capped" in r.stdout


def test_environment_variable_records_an_unmodified_host(recorded, tmp_path):
    model, _ = recorded
    run_les(
        tmp_path / "run",
        model,
        threads=1,
        nsteps=10,
        env_extra={"NN_CLOSURE_RECORD": str(tmp_path / "env"), "NN_CLOSURE_RECORD_EVERY": "3"},
    )
    (folder,) = (tmp_path / "env").iterdir()
    assert folder.name.startswith("closure-pid")
    assert len(list(folder.glob("record_*.npz"))) == 10  # calls 1, 4, ..., 28 of 30
    report = assert_replays(tmp_path / "env", model)
    assert report["summary"]["equal"] == 10 and report["summary"]["budgets_checked"] == 0


def test_testing_helper_asserts(recorded, tmp_path):
    model, rec = recorded
    rec = copy_records(rec, tmp_path)
    assert assert_replays(rec, model)["summary"]["ok"]
    rewrite(rec / "record_000000033.npz", lambda m, a: next_up(a, 1) if m == "out.flux.npy" else a)
    with pytest.raises(AssertionError, match=r"record_000000033.npz"):
        assert_replays(rec, model)


def test_recording_errors_are_clear(model_dir, tmp_path):
    m = Model(model_dir / "affine64.pt")
    m.record_array("ignored", np.zeros(3))  # not recording: a no-op
    m.record_start(tmp_path / "a")
    assert m.record_dir == str(tmp_path / "a")
    with pytest.raises(RecordError, match="already recording"):
        m.record_start(tmp_path / "b")
    m(np.zeros((2, 3)))
    with pytest.raises(ArgumentError, match="record array name 'bad name'"):
        m.record_array("bad name", np.zeros(3))
    m.record_array("state", np.zeros(3))
    with pytest.raises(ArgumentError, match="already recorded"):
        m.record_array("state", np.zeros(3))
    m.record_stop()
    assert m.record_dir is None
    with pytest.raises(RecordError, match="already holds a recording"):
        m.record_start(tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordError, match=r"not a directory|cannot create"):
        m.record_start(tmp_path / "file" / "sub")
    m(np.zeros((2, 3)))  # the model still works after every error
