"""One loaded model called from several threads at once: OpenMP threads in a
Fortran host (tests/fortran/omp_columns.f90) and Python threads through the
cffi bridge give the serial result bit for bit, and each thread gets its own
error message."""

import itertools
import os
import pathlib
import subprocess
import threading
import time

import numpy as np
import pytest

from pyclosure import errors
from pyclosure.bridge import Model, get_num_threads, set_num_threads

FORTRAN = pathlib.Path(__file__).parents[1] / "fortran"
NFEAT, NOUT = 16, 4  # conftest's mlp64.pt: Fortran (16, ncol) -> (4, ncol)


@pytest.fixture(scope="module")
def omp_exe(build_fortran):
    return build_fortran(FORTRAN / "omp_columns.f90", name="omp_columns", extra=["-fopenmp", "-std=f2018"])


def _run_omp(exe, model_dir, host_threads, torch_threads, ncol=4000, nblock=16, rounds=8, name="mlp64.pt"):
    # Passive waiting: more threads than cores must not spin against each other.
    env = {**os.environ, "OMP_NUM_THREADS": str(host_threads), "OMP_WAIT_POLICY": "passive"}
    cmd = [
        str(exe),
        str(model_dir / name),
        str(NFEAT),
        str(NOUT),
        str(ncol),
        str(nblock),
        str(rounds),
        str(host_threads),
        str(torch_threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return proc, values


# 2 threads on this kind of 2-core machine, and 4 (oversubscribed); libtorch's
# own thread count left as it is (0) or set to 1 with nn_set_num_threads.
@pytest.mark.parametrize("host_threads", [2, 4])
@pytest.mark.parametrize("torch_threads", [0, 1])
def test_openmp_threads_on_column_blocks_equal_serial_run_bit_for_bit(
    omp_exe, model_dir, host_threads, torch_threads
):
    proc, v = _run_omp(omp_exe, model_dir, host_threads, torch_threads)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "omp_columns: identical" in proc.stdout
    assert int(v["omp_team_size"]) == host_threads  # the blocks really ran in parallel
    assert int(v["mismatched_rounds"]) == 0
    assert int(v["other_blocks_failed"]) == 0


@pytest.mark.slow  # waits for pt2_dir's compiles
@pytest.mark.parametrize("torch_threads", [0, 1])
def test_openmp_threads_on_one_pt2_package_equal_serial_run_bit_for_bit(omp_exe, pt2_dir, torch_threads):
    # The same as above for conftest's mlp64 compiled by AOTInductor: the package's
    # runners serve concurrent callers, and a thread's bad block (a wrong shape,
    # refused by the bridge since the package checks nothing) fails alone.
    proc, v = _run_omp(omp_exe, pt2_dir, 2, torch_threads, name="mlp64.pt2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "omp_columns: identical" in proc.stdout
    assert int(v["omp_team_size"]) == 2
    assert int(v["mismatched_rounds"]) == 0
    assert int(v["other_blocks_failed"]) == 0
    assert v["error_block_wrong_status"] == "0" and v["error_block_wrong_message"] == "0"


def test_openmp_thread_with_bad_input_gets_its_own_status_and_message(omp_exe, model_dir):
    # In every round one block has a wrong shape: that thread sees NN_ERR_SHAPE and
    # "expected shape"; the threads running at the same moment see NN_OK and "".
    proc, v = _run_omp(omp_exe, model_dir, 2, 0, rounds=16)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert v["error_block_wrong_status"] == "0"
    assert v["error_block_wrong_message"] == "0"
    assert v["other_blocks_failed"] == "0"


def test_libtorch_shares_the_hosts_openmp_thread_count(omp_exe, model_dir):
    # With gfortran -fopenmp there is one OpenMP runtime in the process (libgomp):
    # nn_set_num_threads(n) sets the calling thread's OpenMP thread count to n (a
    # call alone gives the host's count back when it returns). docs/threads-mpi.md says so;
    # hosts size their teams with a num_threads clause.
    proc, v = _run_omp(omp_exe, model_dir, 4, 1, rounds=1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert v["omp_max_threads_at_start"] == "4"
    assert v["omp_max_threads_after_set_num_threads"] == "1"
    assert v["torch_threads_main"] == "1"
    # Inside the host's parallel region libtorch runs on the calling thread only:
    # no thread was started beyond the host's team (which reuses the pool that
    # libtorch's serial-region calls had started).
    assert int(v["process_threads"]) <= max(int(v["process_threads_before"]), 4)


@pytest.fixture
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def _blocks(n, nblock):
    edges = np.linspace(0, n, nblock + 1).astype(int)
    return list(itertools.pairwise(edges))


def _python_threads_share_one_model_bit_for_bit(path):
    model = Model(path)
    x = np.random.default_rng(5).standard_normal((3000, NFEAT))
    blocks = _blocks(len(x), 24)
    ref = np.empty((len(x), NOUT))
    for a, b in blocks:  # the serial reference: the same blocks, one after another
        model(x[a:b], out=[ref[a:b]])
    for torch_threads in (1, 2):
        set_num_threads(torch_threads)
        for _ in range(5):
            out = np.full_like(ref, np.nan)

            def run(k, out=out):
                for a, b in blocks[k::4]:
                    model(x[a:b], out=[out[a:b]])

            workers = [threading.Thread(target=run, args=(k,)) for k in range(4)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert np.array_equal(out.view(np.int64), ref.view(np.int64)), f"torch threads {torch_threads}"


def test_python_threads_share_one_model_bit_for_bit(model_dir, restore_threads):
    _python_threads_share_one_model_bit_for_bit(model_dir / "mlp64.pt")


@pytest.mark.slow  # waits for pt2_dir's compiles
def test_python_threads_share_one_pt2_package_bit_for_bit(pt2_dir, restore_threads):
    _python_threads_share_one_model_bit_for_bit(pt2_dir / "mlp64.pt2")


def test_python_threads_get_their_own_errors(model_dir):
    model = Model(model_dir / "mlp64.pt")
    x, bad = np.ones((50, NFEAT)), np.ones((50, NFEAT + 1))
    ref = model(x)
    results = {}

    def run(k):
        got = []
        for _ in range(200):
            try:
                y = model(bad if k % 2 else x)
                got.append("ok" if np.array_equal(y, ref) else "wrong numbers")
            except errors.ClosureError as e:
                got.append(f"{type(e).__name__}: {e}")
        results[k] = set(got)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results[0] == results[2] == {"ok"}
    assert len(results[1]) == len(results[3]) == 1
    (message,) = results[1]
    assert message.startswith("ShapeError: ") and "expected shape (:, 16), got (50, 17)" in message


def test_thread_count_set_in_main_thread_reaches_threads_started_later(restore_threads):
    set_num_threads(1)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]


def test_thread_count_set_later_reaches_a_thread_that_already_ran(model_dir, restore_threads):
    # The bridge runs every call with its own count (set, else NN_CLOSURE_NUM_THREADS,
    # else 1), whichever thread calls and whenever it first ran.
    set_num_threads(3)
    model = Model(model_dir / "mlp64.pt")
    ran, go_on, seen = threading.Event(), threading.Event(), []

    def worker():
        model(np.ones((512, NFEAT)))
        seen.append(get_num_threads())
        ran.set()
        go_on.wait(timeout=60)
        model(np.ones((512, NFEAT)))
        seen.append(get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    ran.wait(timeout=60)
    set_num_threads(1)
    go_on.set()
    thread.join()
    assert get_num_threads() == 1
    assert seen == [3, 1]


def test_models_loaded_and_freed_in_threads_while_another_thread_runs(model_dir):
    shared = Model(model_dir / "mlp64.pt")
    x = np.random.default_rng(6).standard_normal((40, NFEAT))
    ref = shared(x)
    problems = []

    def churn():
        for _ in range(40):
            with Model(model_dir / "mlp64.pt") as own:
                if not np.array_equal(own(x), ref):
                    problems.append("own model: wrong numbers")

    def steady():
        for _ in range(400):
            if not np.array_equal(shared(x), ref):
                problems.append("shared model: wrong numbers")

    workers = [threading.Thread(target=churn) for _ in range(3)] + [threading.Thread(target=steady)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert problems == []


def test_cffi_calls_release_the_gil(tmp_path, restore_threads):
    # While one thread is inside a long nnc_model_forward, the main thread keeps
    # running Python: the bridge call does not hold the GIL. (One libtorch thread:
    # the main thread's loop then has a core of its own.)
    set_num_threads(1)
    import torch

    import pyclosure

    class Busy(torch.nn.Module):
        def forward(self, x):
            for _ in range(3000):  # about 0.1-0.2 s on a current core
                x = torch.tanh(x @ x.t() @ x * 1e-3)
            return x

    pyclosure.export(Busy(), tmp_path / "busy.pt", torch.ones(64, 64, dtype=torch.float64))
    model = Model(tmp_path / "busy.pt")
    x = np.ones((64, 64)) * 0.01
    model(x)
    model(x)  # TorchScript optimises on the first calls; time a warm one
    span, stamps = {}, []

    def work():
        span["start"] = time.perf_counter()
        model(x)
        span["end"] = time.perf_counter()

    worker = threading.Thread(target=work)
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
    worker.join()
    inside = sum(span["start"] < s < span["end"] for s in stamps)
    assert span["end"] - span["start"] > 0.02, "the call was too short to tell"
    assert inside > 100, (
        f"the main thread ran {inside} times during a {span['end'] - span['start']:.3f} s call"
    )
