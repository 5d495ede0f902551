"""No leaks: resident memory stays flat over 100,000 forward calls, 1,000 loads
and frees, and 10,000 failing calls (tests/c/leak_check.c, and the same through
Python), and the C contract program runs clean under valgrind memcheck."""

import gc
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from pyclosure.bridge import Model, get_num_threads, set_num_threads

C_DIR = pathlib.Path(__file__).parents[1] / "c"
# Thresholds in kB of VmRSS growth after warm-up. A leak of 10 bytes per call
# would grow 100,000 calls by ~1000 kB; a leaked model (module, contract,
# strings) is far more than 1 kB per load.
FLAT_KB = 1024


@pytest.fixture(scope="module")
def leak_check(build_c):
    return build_c(C_DIR / "leak_check.c", name="leak_check")


def _measure(exe, mode, model_dir, n, leak_bytes=0):
    proc = subprocess.run(
        [str(exe), mode, str(model_dir), str(n), str(leak_bytes)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    print(
        f"{mode}: {n} rounds, VmRSS {values['rss_before_kb']} -> {values['rss_after_kb']} kB "
        f"(growth {values['rss_growth_kb']} kB) in {values['seconds']} s"
    )
    return int(values["rss_growth_kb"])


@pytest.mark.parametrize("mode, n", [("forward", 100_000), ("load", 1_000), ("errors", 10_000)])
def test_resident_memory_stays_flat(leak_check, model_dir, mode, n):
    growth = _measure(leak_check, mode, model_dir, n)
    assert growth < FLAT_KB, f"{mode}: VmRSS grew by {growth} kB over {n} rounds"


def test_rss_measurement_sees_a_leak_of_64_bytes_per_call(leak_check, model_dir):
    # The same program leaking 64 bytes per forward call on purpose: the growth
    # shows (at least the 6250 kB leaked), so a flat reading above means something.
    growth = _measure(leak_check, "forward", model_dir, 100_000, leak_bytes=64)
    assert growth >= 64 * 100_000 // 1024 > FLAT_KB


def _rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_python_models_created_and_collected_keep_memory_flat(model_dir):
    x, out = np.ones((64, 3)), np.empty((64, 2))

    def load_run_drop():
        Model(model_dir / "affine64.pt")(x)  # freed by ffi.gc when collected

    def load_run_close():
        with Model(model_dir / "affine64.pt") as m:
            m(x)

    model = Model(model_dir / "affine64.pt")
    threads = get_num_threads()
    set_num_threads(1)  # small calls; spare them thread wake-ups on busy cores
    try:
        for what, step, n in [
            ("load, run, drop", load_run_drop, 1000),
            ("load, run, close", load_run_close, 1000),
            ("forward with out=", lambda: model(x, out=[out]), 20_000),
        ]:
            for _ in range(n // 10):
                step()
            gc.collect()
            before = _rss_kb()
            for _ in range(n):
                step()
            gc.collect()
            growth = _rss_kb() - before
            print(f"python {what}: {n} rounds, VmRSS growth {growth} kB")
            assert growth < FLAT_KB, f"{what}: VmRSS grew by {growth} kB over {n} rounds"
    finally:
        set_num_threads(threads)


VALGRIND = [
    "valgrind",
    "--tool=memcheck",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
    "--show-leak-kinds=definite",
    "--num-callers=40",
    "--error-exitcode=97",
]


def run_under_valgrind(exe, *args):
    """Run a program under memcheck: no memory errors, no definite leaks; returns its stdout."""
    proc = subprocess.run(
        [*VALGRIND, str(exe), *map(str, args)], capture_output=True, text=True, timeout=600, check=False
    )
    summary = [
        line for line in proc.stderr.splitlines() if "ERROR SUMMARY" in line or "definitely lost" in line
    ]
    print("\n".join(summary))
    assert proc.returncode != 97, f"valgrind found errors or definite leaks:\n{proc.stderr[-20000:]}"
    assert proc.returncode == 0, proc.stdout + proc.stderr[-5000:]
    assert "ERROR SUMMARY: 0 errors" in proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (.ci/setup installs it)"
)
def test_c_contract_program_runs_clean_under_valgrind(model_dir, build_c):
    # Every path of the header, successes and failures, with memcheck watching:
    # no invalid reads or writes, no use of uninitialised values, nothing
    # definitely lost. About 30 s: libtorch is large.
    exe = build_c(C_DIR / "test_header.c", name="test_header_vg", extra=["-g", "-lm"])
    out = run_under_valgrind(exe, model_dir)
    assert ", 0 failed" in out


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None, reason="valgrind is not installed (.ci/setup installs it)"
)
def test_valgrind_check_sees_a_definite_leak(model_dir, leak_check):
    # The harness itself: a program that leaks 64 bytes per call on purpose fails it.
    proc = subprocess.run(
        [*VALGRIND, str(leak_check), "forward", str(model_dir), "10", "64"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 97, proc.stderr[-5000:]
    assert "definitely lost: " in proc.stderr and "definitely lost: 0 bytes" not in proc.stderr
