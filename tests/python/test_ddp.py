"""``torchrun --nproc_per_node 2`` (gloo, CPU) trains like one process, and only rank 0 writes.

Both runs train in float64 with the same global batches (``fit`` gives each rank every other
sample of a global batch; the stream deals fixed lanes to ranks), so they differ only by the
order in which DDP's all-reduce adds the two ranks' gradients: a rounding difference of about
1e-16 per step, which 4 epochs of Adam keep far below the stated tolerance ATOL = 1e-9.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("xarray")

from ddp_train import mlp
from streamdata import fields, write_netcdf

HERE = Path(__file__).parent
ATOL = 1e-9
MODELS = ("memory", "stream", "a_posteriori")


def run(args, tmp_path, **kw):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=tmp_path,
        **kw,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    data = write_netcdf(tmp / "data.nc", fields(96, 8, dtype="float64"), chunk=12)
    one = run([str(HERE / "ddp_train.py"), str(data), str(tmp / "one")], tmp)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run(
        [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "--log-dir",
            str(tmp / "logs"),
            "--redirects",
            "3",
            str(HERE / "ddp_train.py"),
            str(data),
            str(tmp / "two"),
        ],
        tmp,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp


@pytest.mark.parametrize("name", MODELS)
def test_two_processes_give_the_one_process_weights(runs, name):
    one = torch.load(runs / "one" / "weights-1.pt", weights_only=True)[name]
    two = torch.load(runs / "two" / "weights-2.pt", weights_only=True)[name]
    start = mlp(8).state_dict()
    assert one.keys() == two.keys()
    for k in one:
        diff = float((one[k] - two[k]).abs().max())
        assert diff <= ATOL, f"{name} {k}: 2 ranks differ from 1 by {diff:.3g}"
    assert float((one["0.weight"] - start["0.weight"]).abs().max()) > 1e-3  # trained at all


def test_only_rank_zero_writes_files_and_shows_progress(runs):
    written = sorted(p.name for p in (runs / "two" / "rank0").iterdir())
    assert written == sorted(f"{m}{s}" for m in MODELS for s in (".pt", ".history.json", ".resume.pt"))
    assert list((runs / "two" / "rank1").iterdir()) == []
    logs = {p.parent.name: p.read_text() for p in (runs / "logs").rglob("stderr.log")}
    assert set(logs) == {"0", "1"}
    assert "a priori" in logs["0"] and "a posteriori" in logs["0"]
    assert "a priori" not in logs["1"] and "a posteriori" not in logs["1"]
