"""The MPI example (examples/mpi): every rank loads the closure in-process and runs
its own columns; a bad model path on one rank ends the job with that rank's
message and a non-zero exit code, without hanging."""

import os
import pathlib
import runpy
import shlex
import shutil
import subprocess

import numpy as np
import pytest
import torch

from pyclosure import config

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "mpi"
NFEAT, NOUT, NCOL = 16, 4, 1000
TIMEOUT = 120  # seconds; a job that hangs fails the test instead of the run

pytestmark = pytest.mark.skipif(
    shutil.which("mpif90") is None or shutil.which("mpirun") is None,
    reason="MPI is not installed (mpif90, mpirun: apt-get install openmpi-bin "
    "libopenmpi-dev; .ci/setup does this)",
)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example built as its README says, and the model its make_model.py writes."""
    out = tmp_path_factory.mktemp("mpi")
    flags = config.flags()
    cmd = [
        "mpif90",
        "-O2",
        "-Wall",
        *shlex.split(flags["fflags"]),
        str(EXAMPLE / "mpi_columns.f90"),
        "-o",
        str(out / "mpi_columns"),
        *shlex.split(flags["ldflags"]),
        *shlex.split(flags["libs"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with torch.random.fork_rng():  # the example seeds torch's global generator
        runpy.run_path(str(EXAMPLE / "make_model.py"))["make"](out / "closure.pt")
    return out


def _mpirun(example, nranks, *args):
    # Shared-memory transport without cross-process reads, which containers often forbid.
    env = {"OMPI_MCA_btl_vader_single_copy_mechanism": "none", **os.environ}
    if os.geteuid() == 0:  # Open MPI refuses root unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [
        "mpirun",
        "-np",
        str(nranks),
        "--oversubscribe",
        str(example / "mpi_columns"),
        str(example / "closure.pt"),
        str(NFEAT),
        str(NOUT),
        str(NCOL),
        *map(str, args),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)


def _torch_blocks(model_path, nranks):
    """What the ranks compute, in torch: the same inputs, the same column blocks, one thread."""
    i = np.arange(1, NFEAT + 1)[None, :]
    j = np.arange(1, NCOL + 1)[:, None]
    x = np.sin(0.37 * i + 0.011 * j) + 0.25 * np.cos(0.05 * i * j)  # torch (NCOL, NFEAT)
    module = torch.jit.load(str(model_path))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            blocks = [
                module(torch.from_numpy(x[r * NCOL // nranks : (r + 1) * NCOL // nranks].copy()))
                for r in range(nranks)
            ]
    finally:
        torch.set_num_threads(before)
    return torch.cat(blocks).numpy()


@pytest.mark.parametrize("nranks", [2, 3])
def test_each_rank_runs_its_columns_and_the_gathered_result_is_the_serial_one(example, nranks):
    out = example / f"y_{nranks}.bin"
    proc = _mpirun(example, nranks, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in range(nranks):
        assert f"mpi_columns: rank {rank} of {nranks} runs on cpu" in proc.stdout
    assert f"mpi_columns: identical on {nranks} ranks" in proc.stdout
    gathered = np.fromfile(out, dtype=np.float64).reshape(NCOL, NOUT)  # Fortran (NOUT, NCOL)
    reference = _torch_blocks(example / "closure.pt", nranks)
    assert np.array_equal(gathered, reference), f"max difference {np.abs(gathered - reference).max()}"


def test_bad_path_on_one_rank_stops_the_job_with_that_ranks_message(example, tmp_path):
    missing = tmp_path / "no_such_dir" / "closure.pt"
    proc = _mpirun(example, 2, "--bad-path-on-rank", 1, missing)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert f"mpi_columns: rank 1: nn_load('{missing}') failed: cannot open model file" in text
    assert "No such file or directory" in text
    assert "1 rank(s) could not load the model" in text
    assert "rank 0: nn_load" not in text
    assert "identical" not in text


def test_bad_input_on_one_rank_aborts_the_job_with_that_ranks_message(example):
    proc = _mpirun(example, 3, "--bad-shape-on-rank", 2)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "mpi_columns: rank 2: nn_forward failed: input 'x' (argument 1): expected shape (16, :)" in text
    assert "identical" not in text
