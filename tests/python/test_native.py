"""The native engine's kernels through their Python twin: agreement with eager torch,
accuracy against float64, identical bits whatever the batch, column range, thread count or
instruction set, and the converter's and loader's refusals.

Tolerances: the native program and torch round differently (torch sums dense layers in its
own blocked order and has its own tanh), so they agree to a few float32 ulps of the
output's scale: 2e-6 of max |y| in float32 (measured: 4.8e-7 for the MLP, 3.8e-7 for the
periodic closure), 1e-14 in float64 (measured: 7.9e-16, 5.5e-16). Accuracy: against the
same network in float64 on 1e5 columns, the native float32 error is at most 1.25 times
torch's own float32 error (measured: max 6.9e-7 against torch's 6.6e-7, mean 5.2e-8
against 5.1e-8, outputs of size ~1).
"""

import hashlib
import re
import struct

import numpy as np
import pytest
import torch
from torch import nn

from pyclosure import _native
from pyclosure._native import Op, encode, export_native, program_of
from pyclosure._native_twin import ISAS, Program, activation, available_isas
from pyclosure.errors import ArgumentError, ModelFormatError
from pyclosure.models import PeriodicFluxClosure, mlp
from pyclosure.normalize import Normalizer

DTYPES = [torch.float32, torch.float64]
SIMD = [name for name in ISAS if name not in ("auto", "scalar")]  # each skipped where this CPU lacks it
TOL = {torch.float32: 2e-6, torch.float64: 1e-14}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _mlp(dtype, lipschitz=None, act="tanh", nin=30, nout=31):
    torch.manual_seed(3)
    norm = Normalizer(torch.randn(nin) * 2, torch.rand(nin) + 0.5)
    return nn.Sequential(norm, *mlp(nin, nout, 128, 2, act, lipschitz)).to(dtype).eval()


def _periodic(dtype, channels=1, lipschitz=None):
    torch.manual_seed(4)
    shape = (channels, 1)
    return (
        PeriodicFluxClosure(
            channels,
            6,
            32,
            2,
            "tanh",
            lipschitz,
            dx=0.5,
            input_normalizer=Normalizer(torch.randn(shape), torch.rand(shape) + 0.5),
            output_normalizer=Normalizer(torch.tensor([0.2]), torch.tensor([3.0])),
        )
        .to(dtype)
        .eval()
    )


def _program(module, x, tmp_path):
    path = tmp_path / "m.nnp"
    export_native(module, path, x)
    return Program(path)


def _close(got, want, dtype):
    assert np.abs(got - want).max() <= TOL[dtype] * np.abs(want).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lipschitz", [None, 4.0])
def test_mlp_with_normaliser_matches_torch(dtype, lipschitz, tmp_path):
    module = _mlp(dtype, lipschitz)
    x = torch.randn(300, 30, dtype=dtype) * 3
    with torch.no_grad():
        _close(_program(module, x[:4], tmp_path)(x.numpy()), module(x).numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels,lipschitz", [(1, None), (2, None), (1, 3.0)])
def test_periodic_flux_closure_matches_torch_at_any_cell_count(dtype, channels, lipschitz, tmp_path):
    module = _periodic(dtype, channels, lipschitz)
    shape = (4, 16) if channels == 1 else (4, channels, 16)
    program = _program(module, torch.randn(shape, dtype=dtype), tmp_path)
    for ncells in (1, 3, 7, 128):
        x = torch.randn((25, ncells) if channels == 1 else (25, channels, ncells), dtype=dtype)
        with torch.no_grad():
            want = module(x).numpy() if ncells >= module.left else None
        got = program(x.numpy())
        assert got.shape == (25, ncells)
        if want is not None:  # torch's circular pad needs N >= the pad; ours wraps for any N
            _close(got, want, dtype)


def test_float32_accuracy_is_no_worse_than_torchs_best_against_float64(tmp_path):
    """Max |error| on 1e5 inputs against float64: torch's is least one column per call."""
    module = _mlp(torch.float32)
    x = torch.randn(100_000, 30) * 3
    with torch.no_grad():
        exact = _mlp(torch.float64)(x.double()).numpy()  # the same float32 weights, exactly
        batched = np.abs(module(x).double().numpy() - exact).max()
        one = np.abs(torch.cat([module(x[i : i + 1]) for i in range(len(x))]).double().numpy() - exact).max()
    native_err = np.abs(_program(module, x[:4], tmp_path)(x.numpy()).astype(np.float64) - exact).max()
    assert native_err <= min(batched, one), (native_err, batched, one)


@pytest.fixture(scope="module", params=["mlp32", "mlp64", "plain32", "periodic32", "periodic64"])
def case(request, tmp_path_factory):
    """A program and 4096 columns of input for it (plain: an MLP without a normaliser, whose
    first dense layer reads the caller's input in place)."""
    dtype = torch.float32 if request.param.endswith("32") else torch.float64
    torch.manual_seed(5)
    if request.param.startswith("mlp"):
        module, x = _mlp(dtype), torch.randn(4096, 30, dtype=dtype) * 3
    elif request.param.startswith("plain"):
        module, x = nn.Sequential(*_mlp(dtype)[1:]).eval(), torch.randn(4096, 30, dtype=dtype)
    else:
        module, x = _periodic(dtype, 2), torch.randn(4096, 2, 37, dtype=dtype)
    return _program(module, x[:4], tmp_path_factory.mktemp("native")), x.numpy()


def test_column_bits_do_not_depend_on_batch_size_or_position(case):
    program, x = case
    before = x.copy()
    full = program(x)
    assert np.array_equal(x, before)  # the input is read, never written
    for n in (1, 2, 5, 6, 7, 13, 47, 48, 49, 97, 1000, 4095):
        for start in (0, 4096 - n, 17 % (4097 - n)):
            assert np.array_equal(program(x[start : start + n]), full[start : start + n]), (n, start)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_column_bits_do_not_depend_on_threads(case, threads):
    program, x = case
    assert np.array_equal(program(x, threads=threads), program(x, threads=1))


def _runs(isa):
    if isa not in available_isas():
        pytest.skip(f"this CPU does not run the {isa} kernels")


@pytest.mark.parametrize("isa", SIMD)
def test_scalar_and_simd_kernels_give_the_same_bits(case, isa):
    # every tile shape of the SIMD kernels: 1 to 13 rows, uneven splits of a chunk's 48 rows
    _runs(isa)
    program, x = case
    program.isa = "scalar"
    ref = program(x)
    program.isa = isa
    try:
        assert program.isa == isa
        assert np.array_equal(program(x), ref)
        for n in (*range(1, 14), 23, 25, 37, 47, 49, 61):
            assert np.array_equal(program(x[:n]), ref[:n]), n
    finally:
        program.isa = "auto"


def test_auto_runs_the_widest_kernels_and_others_are_refused(case):
    program, _ = case
    assert program.isa == available_isas()[-1] and available_isas()[0] == "scalar"
    for isa in set(SIMD) - set(available_isas()):
        with pytest.raises(ArgumentError, match="not on this CPU"):
            program.isa = isa
        assert program.isa == available_isas()[-1]


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_special_values_and_simd_agree_on_a_sweep(dtype, isa):
    _runs(isa)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 30.0, -30.0], dtype)
    got = activation("tanh", special, isa=isa)
    assert np.array_equal(np.signbit(got[:2]), [False, True]) and list(got[2:4]) == [1.0, -1.0]
    assert np.isnan(got[4]) and got[5] == special[5] and list(got[7:]) == [1.0, -1.0]
    sweep = np.linspace(-12, 12, 200_001, dtype=dtype)
    fast, ref = activation("tanh", sweep, isa=isa), activation("tanh", sweep, isa="scalar")
    assert np.array_equal(fast, ref)
    assert np.array_equal(activation("tanh", sweep[:-3], isa=isa), ref[:-3])  # a part-register tail
    assert np.abs(fast - np.tanh(sweep.astype(np.float64))).max() <= 3 * np.finfo(dtype).eps


@pytest.mark.parametrize(
    "module,message",
    [
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Linear(4, 1)), "1: activation SiLU"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4)), "1: LayerNorm is not a module"),
        (lambda: nn.Sequential(nn.Linear(3, 4, bias=False)), "0: a layer without bias"),
        (lambda: PeriodicFluxClosure(1, 4, 8, 2, "silu"), "net.1: activation SiLU"),
        (
            lambda: PeriodicFluxClosure(2, 4, input_normalizer=Normalizer(torch.zeros(2), torch.ones(2))),
            "normalizer: Normalizer of shape (2,)",
        ),
    ],
)
def test_converter_names_what_it_does_not_run(module, message):
    with pytest.raises(_native.NotNativeError, match=re.escape(message)):
        program_of(module().eval())


def test_converter_refuses_training_mode():
    with pytest.raises(_native.NotNativeError, match="training mode"):
        program_of(nn.Sequential(nn.Linear(2, 2)))


def test_export_writes_contract_with_native_format(tmp_path):
    module = _periodic(torch.float64)
    contract = export_native(module, tmp_path / "p.nnp", torch.randn(2, 8, dtype=torch.float64))
    assert [p.name for p in tmp_path.iterdir()] == ["p.nnp"]
    read = Program(tmp_path / "p.nnp").contract
    assert read == contract and read["format"] == "native" and read["engine"]["arith"] == _native.ARITH
    assert read["inputs"][0]["shape"] == [-1] and read["outputs"][0]["shape"][0]["offset"] == 0


def _ops():
    w = np.arange(6, dtype=np.float32) / 10
    return [Op(3, [2, 2], np.concatenate([w[:4], w[4:]])), Op(4, [1]), Op(3, [2, 1], w[:3])]


def _redigest(data):
    data = bytes(data)
    return data[:-32] + hashlib.sha256(data[:-32]).digest()


def _patched(offset, fmt, value):
    data = bytearray(encode(_ops(), torch.float32, {"x": 1}))
    struct.pack_into(fmt, data, offset, value)
    return _redigest(data)


def _op_table(ops, patch):
    data = bytearray(encode(ops, torch.float32, {"x": 1}))
    start = struct.unpack_from("<Q", data, 88)[0]
    for index, field, value in patch:
        struct.pack_into("<I" if field < 6 else "<Q", data, start + 32 * index + 4 * field, value)
    return _redigest(data)


GOOD = encode(_ops(), torch.float32, {"x": 1})
BAD_FILES = {
    "truncated": (GOOD[:100], "truncated"),
    "cut": (GOOD[:-1], "the header says"),
    "magic": (b"X" + GOOD[1:], "magic"),
    "version": (_patched(8, "<I", 2), "format version 2"),
    "arith": (
        _patched(16, "<24s", b"pyclosure.native.arith/1"),  # a file of the earlier contract
        "arithmetic contract 'pyclosure.native.arith/1'; this library implements "
        "'pyclosure.native.arith/2': export the closure again with pyclosure",
    ),
    "digest": (GOOD[:200] + bytes([GOOD[200] ^ 1]) + GOOD[201:], "SHA-256"),
    "dtype": (_patched(12, "<I", 3), "element type"),
    "ops": (_patched(96, "<I", 1000), "1000 ops"),
    "sections": (_patched(112, "<Q", 2**63), "section offsets"),
    "unknown op": (_op_table(_ops(), [(1, 0, 9)]), "op 1: unknown op kind 9"),
    "activation": (_op_table(_ops(), [(1, 1, 7)]), "op 1: unknown activation 7"),
    "absurd": (_op_table(_ops(), [(0, 2, 2**20 + 1)]), "op 0: bad dense sizes"),
    "overflow": (_op_table(_ops(), [(0, 1, 2**32 - 1)]), "op 0: bad dense sizes"),
    "chain": (_op_table(_ops(), [(2, 1, 3)]), "op 2: dense layer takes 3 inputs, gets 2"),
    "outside": (_op_table(_ops(), [(2, 6, 2**40)]), "op 2: its 3 parameters"),
    "misaligned": (_op_table(_ops(), [(2, 6, 2)]), "op 2: its 3 parameters"),
    "nonfinite": (
        encode([Op(3, [1, 1], np.array([np.inf, 0], np.float32))], torch.float32, {}),
        "not finite",
    ),
    "std": (
        encode(
            [Op(1, [1], np.array([0, 0], np.float32)), Op(3, [1, 1], np.ones(2, np.float32))],
            torch.float32,
            {},
        ),
        "std 0 is not > 0",
    ),
    "no dense": (encode([Op(4, [1])], torch.float32, {}), "activation before any dense"),
    "window late": (
        encode(_ops() + [Op(5, [1, 2, 1, 1])], torch.float32, {}),
        "op 0: a dense layer before the window",
    ),
    "boundary": (
        encode([Op(5, [1, 2, 1, 4]), Op(3, [2, 1], np.ones(3, np.float32))], torch.float32, {}),
        "bad window",
    ),
    "contract": (encode(_ops(), torch.float32, []), "not a JSON object"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_loader_refuses_bad_files_with_a_message(name):
    data, message = BAD_FILES[name]
    with pytest.raises(ModelFormatError, match=re.escape(message)):
        Program(data)


def test_good_file_of_the_rejection_cases_loads():
    assert Program(GOOD)(np.ones((1, 2), np.float32)).shape == (1, 1)
