"""Online training from Fortran (tests/fortran/online_train.f90): a host trains its closure
with nn_train_step on a known regression, syncs the weights into the running model, and
every fault is a status, a message and a working next call."""

import hashlib
import json
import pathlib
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pyclosure

FORTRAN = pathlib.Path(__file__).parents[1] / "fortran"
NFEAT, NOUT = 4, 2


def _mlp(hidden, seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(NFEAT, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, NOUT)
        ).double()


@pytest.fixture(scope="module")
def online_run(build_fortran, tmp_path_factory):
    """Build and run the Fortran host once; the folder it wrote into."""
    d = tmp_path_factory.mktemp("online")
    pyclosure.export(_mlp(16, 0), d / "mlp.pt", torch.zeros(4, NFEAT, dtype=torch.float64))
    pyclosure.export(_mlp(8, 1), d / "other.pt", torch.zeros(4, NFEAT, dtype=torch.float64))
    (d / "raising_spec.py").write_text("def spec(ctx):\n    raise ValueError('this spec refuses to build')\n")
    exe = build_fortran(FORTRAN / "online_train.f90", name="online_train")
    proc = subprocess.run(
        [str(exe), str(d / "mlp.pt"), str(d / "other.pt"), str(d), str(d / "raising_spec.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "online training ran" in proc.stdout
    return d


def _faults(d):
    out = {}
    for line in (d / "faults.txt").read_text().splitlines():
        name, status, message = line.split(" ", 2)
        out[name] = (int(status), message)
    return out


def test_fortran_train_steps_on_a_known_regression_converge(online_run):
    losses = np.fromfile(online_run / "losses.bin")
    assert losses.shape == (300,)
    assert np.all(np.isfinite(losses))
    assert losses[-10:].mean() < losses[:10].mean() / 20, (losses[:10], losses[-10:])


def test_forward_after_sync_equals_python_model_with_saved_weights_bit_for_bit(online_run):
    ckpt = torch.load(str(online_run / "ckpt.pt"), weights_only=True)
    assert set(ckpt) == {"module", "optimizer", "steps", "version"}
    assert ckpt["steps"] == 300 and ckpt["version"] == 3
    assert "state" in ckpt["optimizer"] and ckpt["optimizer"]["state"]  # Adam's moments travel too
    module = torch.jit.load(str(online_run / "mlp.pt"))
    module.load_state_dict(ckpt["module"])
    x = np.fromfile(online_run / "x_test.bin").reshape(8, NFEAT)  # Fortran (4, 8) is torch (8, 4)
    y = np.fromfile(online_run / "y_test.bin").reshape(8, NOUT)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    assert np.array_equal(y, ref), np.abs(y - ref).max()
    untrained = torch.jit.load(str(online_run / "mlp.pt"))
    with torch.no_grad():
        assert not np.array_equal(y, untrained(torch.from_numpy(x)).numpy())  # the sync changed the model


@pytest.mark.parametrize(
    "case, status, words",
    [
        ("missing_spec", "NNC_ERR_IO", "no_such_spec.py' does not exist"),
        ("spec_raises", "NNC_ERR_TRAIN", "ValueError: this spec refuses to build"),
        ("wrong_shape", "NNC_ERR_SHAPE", "expected shape (2, 64) in Fortran order"),
        ("wrong_dtype", "NNC_ERR_DTYPE", "input 1 is float32; the trainer's module is float64"),
        ("nan_loss", "NNC_ERR_NONFINITE", "the step was not applied"),
        ("sync_other_architecture", "NNC_ERR_SHAPE", "another architecture; nothing was changed"),
    ],
)
def test_training_faults_are_a_status_and_a_message(online_run, case, status, words):
    from pyclosure.errors import STATUS_NAMES

    got, message = _faults(online_run)[case]
    assert got == STATUS_NAMES[status], message
    assert words in message


def test_every_synced_version_is_saved_with_its_sha256_and_named_by_records(online_run):
    listed = json.loads((online_run / "versions" / "versions.json").read_text())["versions"]
    assert [v["version"] for v in listed] == [1, 2, 3]
    assert [v["steps"] for v in listed] == [100, 200, 300]
    for v in listed:
        data = (online_run / "versions" / v["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == v["sha256"]
        torch.load(str(online_run / "versions" / v["file"]), weights_only=True)
    by_sha = {v["sha256"]: v["version"] for v in listed}
    seen = {}
    for rec in sorted((online_run / "records").glob("record_*.npz")):
        meta = _meta(rec)
        seen[meta["call"]] = meta.get("weights_version", 0)
        if "weights_version" in meta:
            assert by_sha[meta["weights_sha256"]] == meta["weights_version"]
    # calls 1, 51, ... 251 are recorded; syncs after steps 100 and 200 (calls 100, 200)
    assert seen == {1: 0, 51: 0, 101: 1, 151: 1, 201: 2, 251: 2}


def _meta(path):
    import zipfile

    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("meta.json"))


SPEC = """
import torch
from pyclosure.online import TrainingSpec


def spec(ctx):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    return TrainingSpec(m, torch.optim.Adam(m.parameters(), lr=ctx.get("lr", 1e-2)))
"""


def _regression(ncol=64, seed=0):
    x = np.random.default_rng(seed).standard_normal((ncol, NFEAT))
    return x, np.stack([0.5 * x[:, 0] - 0.25 * x[:, 1] + 0.1, 0.3 * x[:, 2] + 0.2 * x[:, 3] - 0.05], 1)


def _train_and_sync(tmp_path, model_file):
    """Export the seeded MLP to ``model_file``, take 50 steps of SPEC on the regression through the
    bridge and sync them into the running model: x, the model's outputs before and after, the
    losses, the synced version and the trained weights (read back from the trainer's checkpoint)."""
    from pyclosure.bridge import Model, Trainer

    (tmp_path / "spec.py").write_text(SPEC)
    pyclosure.export(_mlp(16, 0), tmp_path / model_file, torch.zeros(4, NFEAT, dtype=torch.float64))
    model = Model(tmp_path / model_file)
    trainer = Trainer(model, spec=f"{tmp_path / 'spec.py'}:spec")
    x, y = _regression()
    before = model(x)
    losses = [trainer.step(x, y) for _ in range(50)]
    version = trainer.sync(model)
    after = model(x)
    trainer.save(tmp_path / "ckpt.pt")
    weights = torch.load(str(tmp_path / "ckpt.pt"), weights_only=True)["module"]
    return SimpleNamespace(x=x, before=before, after=after, losses=losses, version=version, weights=weights)


def test_native_sync_swaps_in_the_trained_program_bit_for_bit_with_the_twin(tmp_path):
    from pyclosure import _native_twin

    run = _train_and_sync(tmp_path, "mlp.nnp")
    assert run.losses[-1] < run.losses[0] / 5
    assert run.version == 1
    module = _mlp(16, 0)
    module.load_state_dict(run.weights)
    pyclosure.export(module, tmp_path / "trained.nnp", torch.zeros(4, NFEAT, dtype=torch.float64))
    assert np.array_equal(run.after, _native_twin.Program(str(tmp_path / "trained.nnp"))(run.x))
    assert not np.array_equal(run.after, run.before)


def test_python_face_runs_the_same_path_and_reports_faults(tmp_path):
    from pyclosure.bridge import Model, Trainer
    from pyclosure.errors import DtypeError, InvalidHandleError, ShapeError

    pyclosure.export(_mlp(16, 0), tmp_path / "mlp.pt", torch.zeros(4, NFEAT, dtype=torch.float64))
    model = Model(tmp_path / "mlp.pt")
    trainer = Trainer(model, lr=0.01)
    x, y = _regression()
    with pytest.raises(ShapeError, match=r"expected shape \(64, 2\)"):
        trainer.step(x, y[:, :1])
    with pytest.raises(DtypeError, match="float32"):
        trainer.step(x.astype(np.float32), y)
    assert np.isfinite(trainer.step(x, y))  # the next call works
    trainer.close()
    trainer.close()  # idempotent
    with pytest.raises(InvalidHandleError):
        trainer.step(x, y)


def test_replay_of_an_online_run_uses_each_records_weight_version_bit_for_bit(online_run):
    from pyclosure.errors import FileAccessError
    from pyclosure.replay import replay

    report = replay(online_run / "records", online_run / "mlp.pt", versions=online_run / "versions")
    assert report["summary"]["ok"], report["summary"]
    by_call = {r["call"]: r for r in report["records"]}
    assert {c: r["weights_version"] for c, r in by_call.items()} == {
        1: 0,
        51: 0,
        101: 1,
        151: 1,
        201: 2,
        251: 2,
    }
    assert all(r["status"] == "equal" for r in by_call.values()), [r["status"] for r in by_call.values()]
    with pytest.raises(FileAccessError, match="weight version 1"):
        replay(online_run / "records", online_run / "mlp.pt")


@pytest.mark.slow
def test_aoti_sync_updates_the_package_constants_bit_for_bit_with_pythons_loader(tmp_path):
    from pyclosure._aoti import load_package

    run = _train_and_sync(tmp_path, "mlp.pt2")
    package = load_package(tmp_path / "mlp.pt2")  # Python's loader, the same weights put in the same way
    package._runner.load_constants(run.weights, check_full_update=True)
    (ref,) = package(torch.from_numpy(run.x))
    ref = ref.numpy()
    assert np.array_equal(run.after, ref), np.abs(run.after - ref).max()
    assert not np.array_equal(run.after, run.before)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")
def test_a_host_that_never_trains_never_loads_python():
    """libnnclosure and the Fortran library do not link libpython or the embedded library: only
    the first nn_train_create loads them (dlopen)."""
    from importlib import resources

    from pyclosure.testing import elf_dynamic

    lib = resources.files("pyclosure") / "lib"
    for name in ("libnnclosure.so", "libnnclosure_fortran.so"):
        needed, _ = elf_dynamic(lib / name)
        assert needed
        assert not any("libpython" in n or "pyclosure_train_embed" in n for n in needed), needed
    assert (lib / "libpyclosure_train_embed.so").is_file()


def test_replay_of_a_native_online_run_is_bit_for_bit_through_the_bridge_and_the_twin(tmp_path):
    """A .nnp model trained online: every record names its weight version, the versions folder
    holds the native program each sync put in, and replay --versions runs each record with its
    own version through the bridge and the cffi twin, bit for bit."""
    from pyclosure.bridge import Model, Trainer
    from pyclosure.cli import main
    from pyclosure.errors import FileAccessError
    from pyclosure.replay import replay

    (tmp_path / "spec.py").write_text(SPEC)
    pyclosure.export(_mlp(16, 0), tmp_path / "mlp.nnp", torch.zeros(4, NFEAT, dtype=torch.float64))
    model = Model(tmp_path / "mlp.nnp")
    model.record_start(tmp_path / "records", every=10)
    trainer = Trainer(model, spec=f"{tmp_path / 'spec.py'}:spec", versions=tmp_path / "versions")
    x, y = _regression()
    outputs = []
    for step in range(1, 61):  # forward calls 1, 11, ..., 51 recorded; syncs after steps 20 and 40
        outputs.append(model(x[:8]))
        trainer.step(x, y)
        if step % 20 == 0:
            trainer.sync(model)
    model.record_stop()
    assert not np.array_equal(outputs[0], outputs[-1])  # the syncs changed what the model runs
    listed = json.loads((tmp_path / "versions" / "versions.json").read_text())["versions"]
    assert [v["program"] for v in listed] == ["weights-v1.nnp", "weights-v2.nnp", "weights-v3.nnp"]
    report = replay(tmp_path / "records", tmp_path / "mlp.nnp", versions=tmp_path / "versions")
    assert report["summary"]["ok"], report["summary"]
    by_call = {r["call"]: r for r in report["records"]}
    assert {c: r["weights_version"] for c, r in by_call.items()} == {1: 0, 11: 0, 21: 1, 31: 1, 41: 2, 51: 2}
    for r in by_call.values():
        assert r["status"] == "equal", r
        assert r["paths"]["bridge"]["equal"] and r["paths"]["torch"]["equal"]  # "torch" is the cffi twin here
    assert (
        main(
            [
                "replay",
                str(tmp_path / "records"),
                "--model",
                str(tmp_path / "mlp.nnp"),
                "--versions",
                str(tmp_path / "versions"),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    (tmp_path / "versions" / "weights-v2.nnp").write_bytes(b"not the program")
    with pytest.raises(FileAccessError, match="weight version 2"):
        replay(tmp_path / "records", tmp_path / "mlp.nnp", versions=tmp_path / "versions")


def test_data_parallel_backend_is_gloo_on_cpu_and_nccl_for_cuda_tensors(monkeypatch):
    """Every rank picks the backend alone, from what torch has: gloo where there is no CUDA,
    gloo for CPU tensors and NCCL for CUDA tensors where there is (not run on a GPU here)."""
    import torch
    import torch.distributed as dist

    from pyclosure.online import dist_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dist_backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    assert dist_backend() == "cpu:gloo,cuda:nccl"
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    assert dist_backend() == "gloo"
