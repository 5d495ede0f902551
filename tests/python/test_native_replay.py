"""Record and replay of native programs (.nnp): ``pyclosure replay`` reruns each record
through the bridge's native engine and through the cffi twin (pyclosure._native_twin, the
same C kernels without the bridge), bit for bit; a TorchScript export of the same weights
given as ``--reference`` reports eager torch's difference as information, never a failure.

The records are made by :class:`pyclosure.bridge.Model` recording (as in test_replay.py's
size-cap test); the programs are conftest's ``native_dir`` (exported in milliseconds).
"""

import subprocess

import numpy as np
import pytest
import torch
from conftest import cli, mlp32, periodic64
from replaying import replay_cli

import pyclosure
from pyclosure import bridge
from pyclosure.bridge import Model

BATCHES = (1, 5, 64)
MODULES = {"mlp32": (mlp32, torch.float32, 30), "periodic64": (periodic64, torch.float64, 16)}


def _record(program, name, folder, threads):
    """Six calls of ``program`` recorded at ``threads`` threads, two per batch size."""
    _, dtype, width = MODULES[name]
    rng = np.random.default_rng(7)
    saved = bridge.get_num_threads()
    bridge.set_num_threads(threads)
    try:
        m = Model(program)
        m.record_start(folder)
        for batch in BATCHES * 2:
            m((rng.standard_normal((batch, width)) * 1.5).astype(str(dtype).replace("torch.", "")))
        m.record_stop()
    finally:
        bridge.set_num_threads(saved)
    return folder


@pytest.fixture(params=sorted(MODULES))
def recorded(request, native_dir, tmp_path):
    name = request.param
    return name, native_dir / f"{name}.nnp", _record(native_dir / f"{name}.nnp", name, tmp_path / "rec", 2)


def test_native_records_replay_bit_for_bit_through_the_bridge_and_the_twin(recorded):
    _, program, rec = recorded
    proc, report = replay_cli(rec, program)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["engine"] == "native" and report["summary"]["verdict"] == "OK"
    assert report["summary"]["records"] == report["summary"]["equal"] == 6
    for r in report["records"]:
        assert r["status"] == "equal" and r["recorded_engine"] == "native", r
        assert r["paths"]["bridge"]["equal"] and r["paths"]["torch"]["equal"], r  # "torch": the cffi twin
        assert r["paths"]["bridge"]["comparable"] and r["paths"]["torch"]["comparable"], r
        assert r["engines_agree"]["equal"], r
    assert "replay: OK" in proc.stdout


def test_native_records_are_bit_for_bit_at_another_thread_count(recorded):
    # The native engine's bits do not depend on the thread count: still "equal", not "within_tolerance".
    _, program, rec = recorded
    proc, report = replay_cli(rec, program, "--threads", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["summary"]["equal"] == 6 and report["summary"]["within_tolerance"] == 0
    assert all(r["replay_threads"] == 1 and r["recorded_threads"] == 2 for r in report["records"])


def test_native_replay_reports_eager_torchs_difference_as_information(recorded, tmp_path):
    # Eager torch runs other kernels (libtorch's tanh, its summation order): not bit for bit,
    # within float rounding; the replay still passes.
    name, program, rec = recorded
    make, dtype, width = MODULES[name]
    reference = tmp_path / f"{name}.pt"
    pyclosure.export(make().to(dtype).eval(), reference, torch.zeros(4, width, dtype=dtype))
    proc, report = replay_cli(rec, program, "--reference", reference)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["summary"]["equal"] == 6 and report["reference"] == str(reference)
    diffs = [r["reference"]["max_rel_diff"] for r in report["records"]]
    assert all(0 <= d < (1e-5 if dtype == torch.float32 else 1e-12) for d in diffs), diffs
    assert "largest relative difference from the records" in proc.stdout


def test_info_through_the_bridge_names_the_native_engine(native_dir):
    proc = subprocess.run(
        cli("info", native_dir / "mlp32.nnp", "--bridge"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "native engine (the native kernels, no libtorch in its calls) on cpu" in proc.stdout
