"""Native programs (.nnp) through the bridge: the native engine runs the same C as the
cffi twin (pyclosure._native_twin), so a Fortran host built with ``pyclosure config``
flags, and Python's Model, get the twin's bits at every batch size and thread count;
strided, Fortran-ordered and guarded calls give the same bits as a dense one.

The programs are conftest's ``native_dir`` (exported in milliseconds).
"""

import pathlib
import subprocess

import numpy as np
import pytest
import torch

import pyclosure
from pyclosure import _native, bridge, errors
from pyclosure._native_twin import Program
from pyclosure.bridge import Model
from pyclosure.contract import describe, read_contract

TESTS = pathlib.Path(__file__).parents[1]
BATCHES = [1, 2, 3, 7, 64, 256, 4096]
SHAPES = {"mlp32": ((30,), (31,)), "mlp64": ((16,), (4,)), "periodic64": ((16,), (16,))}


@pytest.fixture
def threads():
    n = bridge.get_num_threads()
    yield bridge.set_num_threads
    bridge.set_num_threads(n)


def _columns(name, batch, seed=0):
    rng = np.random.default_rng(seed + batch)
    dtype = np.float32 if name.endswith("32") else np.float64
    return (rng.standard_normal((batch, *SHAPES[name][0])) * 1.5).astype(dtype)


def _split(raw, name, batch):
    """A host call's (input, output) from its file: Fortran x(n, batch) is C (batch, n)."""
    dtype = np.dtype(np.float32 if name.endswith("32") else np.float64)
    (n_in,), (n_out,) = SHAPES[name]
    x = np.frombuffer(raw, dtype=dtype, count=batch * n_in).reshape(batch, n_in)
    y = np.frombuffer(raw, dtype=dtype, offset=batch * n_in * dtype.itemsize).reshape(batch, n_out)
    return x, y


@pytest.mark.parametrize("threads_arg", [1, 4])
def test_fortran_host_gets_the_twins_bits_at_every_batch(native_dir, build_fortran, tmp_path, threads_arg):
    exe = build_fortran(TESTS / "fortran" / "model_host.f90", name="model_host", extra=["-std=f2018"])
    files = [f"{name}.nnp" for name in SHAPES]
    proc = subprocess.run(
        [str(exe), str(native_dir), str(tmp_path), str(threads_arg), *files],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model_host: done" in proc.stdout
    for name in SHAPES:
        assert f"engine {name}.nnp native" in proc.stdout
        program = Program(native_dir / f"{name}.nnp")
        for batch in BATCHES:
            x, y = _split((tmp_path / f"{name}_{batch}.bin").read_bytes(), name, batch)
            assert y.tobytes() == program(x).tobytes(), f"{name}, batch {batch}"


@pytest.mark.parametrize("name", list(SHAPES))
def test_python_model_equals_the_twin_bit_for_bit_at_1_2_4_threads(native_dir, threads, name):
    model, program = Model(native_dir / f"{name}.nnp"), Program(native_dir / f"{name}.nnp")
    assert model.engine == "native" and model.device == "cpu"
    for batch in [1, 5, 63, 64, 65, 1000, 4096]:
        x = _columns(name, batch)
        want = program(x).tobytes()
        for n in (1, 2, 4):
            threads(n)
            assert model(x).tobytes() == want, f"batch {batch}, {n} threads"


def test_strided_and_fortran_ordered_inputs_give_the_dense_bits(native_dir):
    model, program = Model(native_dir / "mlp64.nnp"), Program(native_dir / "mlp64.nnp")
    wide = _columns("mlp64", 300)
    want = program(np.ascontiguousarray(wide[::3])).tobytes()
    assert model(wide[::3]).tobytes() == want
    out = np.full((4, 100), -1.0).T  # a Fortran-ordered output: written through scratch
    model.forward(wide[::3], out=(out,))
    assert np.ascontiguousarray(out).tobytes() == want
    assert model(np.asfortranarray(wide[::3])).tobytes() == want


def test_nonfinite_columns_fall_back_to_the_host_and_are_flagged(native_dir):
    model = Model(native_dir / "mlp64.nnp", nonfinite="fallback")
    x = _columns("mlp64", 10)
    x[3, 2] = np.nan
    host = np.full((10, 4), 7.0)
    flags = np.zeros(10, np.int32)
    y = model.forward(x, fallback=(host,), flags=flags)
    assert (y[3] == 7.0).all() and flags[3] == 3 and np.count_nonzero(flags) == 1  # NaN in, so NaN out
    clean = np.delete(np.arange(10), 3)
    assert y[clean].tobytes() == Program(native_dir / "mlp64.nnp")(x)[clean].tobytes()
    with pytest.raises(errors.NonFiniteError, match=r"input 'input' \(argument 1\) has NaN in batch row 3"):
        Model(native_dir / "mlp64.nnp")(x)
    stats = model.stats
    assert stats["calls"] == 1 and stats["nonfinite_input_columns"] == 1 and stats["fallback_columns"] == 1


def test_plain_affine_gives_the_numbers_known_by_hand(native_dir):
    x = np.arange(15, dtype=np.float64).reshape(5, 3) / 4.0
    w, b = np.arange(1, 7).reshape(2, 3) / 8.0, np.array([-0.5, -0.25])
    assert np.array_equal(Model(native_dir / "plain_affine64.nnp")(x), x @ w.T + b)


def test_export_picks_native_from_the_suffix_and_info_reads_it_without_running(native_dir, tmp_path):
    contract = read_contract(native_dir / "periodic64.nnp")
    assert contract["format"] == "native" and contract["engine"]["arith"] == _native.ARITH
    assert contract["inputs"][0]["shape"] == [-1] and contract["module"] == "PeriodicFluxClosure"
    assert "format: native, a program of" in describe(contract)
    with pytest.raises(TypeError, match=r"Linear: the native engine runs nn.Sequential MLPs, PeriodicFlux"):
        pyclosure.export(torch.nn.Linear(3, 2).eval(), tmp_path / "c.nnp", torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"1: activation GELU is not in arithmetic contract"):
        pyclosure.export(
            torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.GELU()).eval(),
            tmp_path / "g.nnp",
            torch.zeros(2, 3),
        )
    with pytest.raises(ValueError, match="a native program must be named"):
        pyclosure.export(
            torch.nn.Sequential(torch.nn.Linear(3, 2)).eval(),
            tmp_path / "g.pt",
            torch.zeros(2, 3),
            format="native",
        )
    assert not list(tmp_path.iterdir())
