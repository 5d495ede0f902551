"""Data-parallel online training over MPI (tests/fortran/online_mpi.f90): two ranks end
with identical weights that agree with one process trained on the concatenated columns,
and a bad spec on one rank ends the job with that rank's message, without hanging."""

import os
import shlex
import shutil
import subprocess

import pytest
import torch
from test_online import FORTRAN, NFEAT, _mlp

import pyclosure
from pyclosure import config
from pyclosure.online import OnlineTrainer, SpecContext

TIMEOUT = 300
pytestmark = pytest.mark.skipif(
    shutil.which("mpif90") is None or shutil.which("mpirun") is None,
    reason="MPI is not installed (mpif90, mpirun)",
)


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    d = tmp_path_factory.mktemp("online_mpi")
    flags = config.flags()
    cmd = [
        "mpif90",
        "-O2",
        *shlex.split(flags["fflags"]),
        str(FORTRAN / "online_mpi.f90"),
        "-o",
        str(d / "online_mpi"),
        *shlex.split(flags["ldflags"]),
        *shlex.split(flags["libs"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=d, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pyclosure.export(_mlp(16, 0), d / "mlp.pt", torch.zeros(4, NFEAT, dtype=torch.float64))
    return d


def _mpirun(host, out, spec=""):
    env = {"OMPI_MCA_btl_vader_single_copy_mechanism": "none", **os.environ}
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out.mkdir()
    cmd = [
        "mpirun",
        "-np",
        "2",
        "--oversubscribe",
        str(host / "online_mpi"),
        str(host / "mlp.pt"),
        str(out),
        str(out / "rendezvous"),
        spec,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)


def _one_process(model_path, steps=20, ncol=32, nranks=2):
    """The same steps in one process on both ranks' columns together."""
    ctx = SpecContext(str(model_path), "torchscript", None, {"lr": "0.01"})
    trainer = OnlineTrainer("", ctx)
    i = torch.arange(1, NFEAT + 1, dtype=torch.float64)[None, :]
    col = torch.arange(1, nranks * ncol + 1, dtype=torch.float64)[:, None]
    for step in range(1, steps + 1):
        x = torch.sin(0.7 * i + 1.3 * col + 0.37 * step)
        y = torch.stack([0.5 * x[:, 0] - 0.25 * x[:, 1] + 0.1, 0.3 * x[:, 2] + 0.2 * x[:, 3] - 0.05], dim=1)
        trainer.step([x], [y])
    return trainer.weights()


def test_two_ranks_end_with_identical_weights_equal_to_one_process(host, tmp_path):
    proc = _mpirun(host, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "online mpi ran" in proc.stdout
    w0 = torch.load(str(tmp_path / "run" / "ckpt_rank0.pt"), weights_only=True)["module"]
    w1 = torch.load(str(tmp_path / "run" / "ckpt_rank1.pt"), weights_only=True)["module"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # bit for bit: the same averaged gradients
    ref = _one_process(host / "mlp.pt")
    # The ranks sum two half-batch gradients where one process sums one batch: rounding only,
    # amplified a little by 20 Adam steps (measured about 1e-15 relative).
    for k in ref:
        torch.testing.assert_close(w0[k], ref[k], rtol=1e-11, atol=1e-13)
    start = torch.jit.load(str(host / "mlp.pt")).state_dict()
    assert not torch.equal(w0["0.weight"], start["0.weight"])


def test_bad_spec_on_one_rank_ends_the_job_with_its_message(host, tmp_path):
    bad = tmp_path / "raising.py"
    bad.write_text("def spec(ctx):\n    raise RuntimeError('rank-local spec failure')\n")
    proc = _mpirun(host, tmp_path / "run", f"bad:{bad}:spec")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "rank 1: the training code raised RuntimeError: rank-local spec failure" in text
