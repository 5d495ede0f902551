"""Column, down-gradient and non-negative closures as native programs (arith/2): agreement
with eager torch, the same bits whatever the batch, column range, thread count or
instruction set, softplus's special values and accuracy, the bridge equal to the twin with
the surface flux as a second input, and the refusals of the converter and the loader.

Tolerances as tests/python/test_native.py: the native program rounds differently from
torch (its own dense order, tanh and softplus), 2e-6 of max |y| in float32 and 1e-14 in
float64 (measured here: at most 1.9e-7 and 6.2e-16). softplus against log1p(exp(x)) in
float64: 3 ulps of the float32 result, 4 of the float64 one (measured by
tests/c/native_softplus_ulp.c: 2.58 and 2.16 ulp).
"""

import re

import numpy as np
import pytest
import torch
from torch import nn

from pyclosure import _native
from pyclosure._native import GRADIENT, Op, encode, export_native, program_of
from pyclosure._native_twin import ISAS, Program, activation, available_isas
from pyclosure.bridge import Model
from pyclosure.errors import ModelFormatError
from pyclosure.models import (
    ColumnDownGradientClosure,
    ColumnFluxClosure,
    DownGradientClosure,
    InsulatedColumnFluxClosure,
    NonNegative,
    PeriodicFluxClosure,
    ResidualClosure,
    mlp,
)
from pyclosure.normalize import Normalizer

TOL = {torch.float32: 2e-6, torch.float64: 1e-14}
SIMD = [name for name in ISAS if name not in ("auto", "scalar")]  # each skipped where this CPU lacks it


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _norm(shape):
    return Normalizer(torch.randn(shape), torch.rand(shape) + 0.5)


def _scale():
    return Normalizer(torch.tensor([0.1]), torch.tensor([2.0]))


# name: (make module, channels (0: an MLP of 5 inputs), takes the surface flux)
CLOSURES = {
    "column_replicate": (
        lambda: ColumnFluxClosure(
            None, 2, 6, 16, 2, input_normalizer=_norm((2, 1)), output_normalizer=_scale()
        ),
        2,
        True,
    ),
    "column_zeros": (
        lambda: ColumnFluxClosure(None, 1, 4, 16, 2, padding="zeros", input_normalizer=_norm((1, 1))),
        1,
        True,
    ),
    "column_mlp": (
        lambda: ColumnFluxClosure(
            12, 2, variant="mlp", hidden=16, input_normalizer=_norm((2, 1)), output_normalizer=_scale()
        ),
        2,
        True,
    ),
    "insulated": (
        lambda: InsulatedColumnFluxClosure(None, 1, 4, 16, 2, input_normalizer=_norm((1, 1))),
        1,
        False,
    ),
    "down_gradient": (
        lambda: DownGradientClosure(1, 4, 16, 2, dx=0.3, k_scale=0.7, input_normalizer=_norm((1, 1))),
        1,
        False,
    ),
    "column_down_gradient": (
        lambda: ColumnDownGradientClosure(2, 4, 16, 2, dx=0.3, k_scale=1.3, input_normalizer=_norm((2, 1))),
        2,
        True,
    ),
    "non_negative_mlp": (lambda: NonNegative(nn.Sequential(*mlp(5, 3, 16))), 0, False),
    "non_negative_periodic": (lambda: NonNegative(PeriodicFluxClosure(1, 4, 16)), 1, False),
    "non_negative_insulated": (
        lambda: NonNegative(InsulatedColumnFluxClosure(None, 1, 4, 16), "relu"),
        1,
        False,
    ),
}


def _inputs(channels, surface, batch, ncells, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    if channels == 0:
        x = torch.randn(batch, 5, generator=g, dtype=dtype)
    else:
        x = torch.randn(
            (batch, ncells) if channels == 1 else (batch, channels, ncells), generator=g, dtype=dtype
        )
    return (x, torch.randn(batch, generator=g, dtype=dtype)) if surface else (x,)


def _case(name, dtype, tmp_path):
    make, channels, surface = CLOSURES[name]
    torch.manual_seed(1)
    module = make().to(dtype).eval()
    path = tmp_path / f"{name}.nnp"
    export_native(module, path, tuple(a[:4] for a in _inputs(channels, surface, 4, 12, dtype)))
    return module, Program(path), channels, surface


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CLOSURES))
def test_closure_matches_eager_torch(name, dtype, tmp_path):
    module, program, channels, surface = _case(name, dtype, tmp_path)
    for ncells in (12,) if name == "column_mlp" or channels == 0 else (2, 5, 12, 64):
        args = _inputs(channels, surface, 40, ncells, dtype, seed=ncells)
        with torch.no_grad():
            want = module(*args).numpy()
        got = program(*(a.numpy() for a in args))
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= TOL[dtype] * np.abs(want).max(), (name, ncells)


def test_column_outputs_carry_the_surface_flux_and_a_zero_lid_exactly(tmp_path):
    _, program, _, _ = _case("column_down_gradient", torch.float64, tmp_path)
    x, surface = (a.numpy() for a in _inputs(2, True, 9, 7, torch.float64))
    y = program(x, surface)
    assert np.array_equal(y[:, 0], surface) and not np.signbit(y[:, -1]).any() and (y[:, -1] == 0).all()


def test_down_gradient_flux_never_runs_up_the_gradient(tmp_path):
    _, program, _, _ = _case("down_gradient", torch.float64, tmp_path)
    u = np.random.default_rng(2).standard_normal((200, 16)) * 5
    flux = program(u)
    assert (flux * (u - np.roll(u, 1, axis=-1)) <= 0).all()


@pytest.fixture(
    scope="module",
    params=[
        "column_down_gradient-32",
        "column_zeros-64",
        "down_gradient-32",
        "column_mlp-64",
        "non_negative_insulated-32",
    ],
)
def case(request, tmp_path_factory):
    name, bits = request.param.split("-")
    dtype = torch.float32 if bits == "32" else torch.float64
    _, program, channels, surface = _case(name, dtype, tmp_path_factory.mktemp("columns"))
    return program, [
        a.numpy() for a in _inputs(channels, surface, 1000, 12 if name == "column_mlp" else 23, dtype)
    ]


def test_column_bits_do_not_depend_on_batch_size_or_position(case):
    program, args = case
    full = program(*args)
    for n in (1, 2, 3, 7, 48, 49, 999):
        for start in (0, 1000 - n, 13 % (1001 - n)):
            part = program(*(a[start : start + n] for a in args))
            assert np.array_equal(part, full[start : start + n]), (n, start)


@pytest.mark.parametrize("threads", [2, 4])
def test_column_bits_do_not_depend_on_threads(case, threads):
    program, args = case
    assert np.array_equal(program(*args, threads=threads), program(*args))


@pytest.mark.parametrize("isa", SIMD)
def test_scalar_and_simd_kernels_give_the_same_bits(case, isa):
    if isa not in available_isas():
        pytest.skip(f"this CPU does not run the {isa} kernels")
    program, args = case
    program.isa = "scalar"
    ref = program(*args)
    program.isa = isa
    try:
        assert program.isa == isa
        assert np.array_equal(program(*args), ref)
        for n in (1, 2, 3, 5):
            assert np.array_equal(program(*(a[:n] for a in args)), ref[:n]), n
    finally:
        program.isa = "auto"


@pytest.mark.parametrize("isa", SIMD)
@pytest.mark.parametrize("dtype,ulps", [(np.float32, 3), (np.float64, 4)])
def test_softplus_special_values_accuracy_and_simd(dtype, ulps, isa):
    if isa not in available_isas():
        pytest.skip(f"this CPU does not run the {isa} kernels")
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 21.0, -1000.0], dtype)
    got = activation("softplus", special, isa=isa)
    assert np.isnan(got[0]) and got[1] == 0 and got[2] == np.inf and got[5] == 21.0 and got[6] == 0
    assert got[3] == got[4] == dtype(np.log(2.0))
    sweep = np.concatenate(
        [np.linspace(-80, 20, 400_001), np.geomspace(1e-30, 20, 1000), -np.geomspace(1e-30, 80, 1000)]
    ).astype(dtype)
    fast, ref = activation("softplus", sweep, isa=isa), activation("softplus", sweep, isa="scalar")
    assert np.array_equal(fast, ref)
    exact = np.log1p(np.exp(sweep.astype(np.longdouble)))
    ulp = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    assert (np.abs(fast - exact) / ulp).max() <= ulps


def test_bridge_runs_a_two_input_column_program_with_the_twins_bits(tmp_path):
    from pyclosure import bridge

    _, program, _, _ = _case("column_down_gradient", torch.float64, tmp_path)
    model = Model(tmp_path / "column_down_gradient.nnp")
    assert model.engine == "native"
    n = bridge.get_num_threads()
    try:
        for batch in (1, 7, 300):
            x, surface = (a.numpy() for a in _inputs(2, True, batch, 17, torch.float64, seed=batch))
            want = program(x, surface).tobytes()
            for threads in (1, 2, 4):
                bridge.set_num_threads(threads)
                assert model(x, surface).tobytes() == want, (batch, threads)
    finally:
        bridge.set_num_threads(n)


@pytest.mark.parametrize(
    "module,message",
    [
        (lambda: ResidualClosure(), "ResidualClosure: the native engine runs"),
        (
            lambda: nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2.0)),
            "1: Softplus(beta=2.0, threshold=20.0)",
        ),
        (lambda: ColumnFluxClosure(None, 1, 4, 8, 2, "gelu"), "net.1: activation GELU"),
        (
            lambda: NonNegative(NonNegative(InsulatedColumnFluxClosure(None))),
            "NonNegative: a second activation after a gradient or column frame",
        ),
        (lambda: DownGradientClosure(1, 4, 8, 2, "silu"), "k_net.net.1: activation SiLU"),
    ],
)
def test_converter_names_what_it_does_not_run(module, message):
    with pytest.raises(_native.NotNativeError, match=re.escape(message)):
        program_of(module().eval())


def test_export_says_how_many_inputs_a_column_program_takes(tmp_path):
    module = ColumnFluxClosure(None).double().eval()
    with pytest.raises(_native.NotNativeError, match="takes 2 input"):
        export_native(module, tmp_path / "c.nnp", torch.zeros(4, 8, dtype=torch.float64), input_names=["x"])


def _window(boundary=2):
    w = np.ones(3, np.float32)
    return [Op(5, [1, 2, 1, boundary]), Op(3, [2, 1], w)]


BAD_PROGRAMS = {
    "gradient in a dense program": (
        [Op(3, [2, 1], np.ones(3, np.float32)), Op(GRADIENT, [], np.ones(2, np.float32))],
        "op 1: a gradient product comes once",
    ),
    "gradient dx": (
        _window(1) + [Op(GRADIENT, [], np.array([1, 0], np.float32))],
        "op 2: gradient dx 0 is not > 0",
    ),
    "frame on a periodic window": (_window(1) + [Op(7, [0])], "op 2: a frame needs a column window"),
    "frame surface": (_window() + [Op(7, [2])], "op 2: bad frame (surface 2)"),
    "dense after the frame": (
        _window() + [Op(7, [0]), Op(3, [1, 1], np.ones(2, np.float32))],
        "op 3: kind 3 after the gradient, frame or tail activation",
    ),
    "two tail activations": (
        _window() + [Op(7, [0]), Op(4, [3]), Op(4, [2])],
        "op 4: kind 4 after the gradient",
    ),
    "boundary": (_window(4), "bad window (channels 1, width 2, left 1, boundary 4)"),
}


@pytest.mark.parametrize("name", sorted(BAD_PROGRAMS))
def test_loader_refuses_bad_structure_with_a_message(name):
    ops, message = BAD_PROGRAMS[name]
    with pytest.raises(ModelFormatError, match=re.escape(message)):
        Program(encode(ops, torch.float32, {"x": 1}))


def test_a_column_window_needs_two_cells():
    program = Program(encode(_window() + [Op(7, [1])], torch.float32, {"x": 1}))
    assert program.num_inputs == 2 and program.sizes(5) == (5, 6)
    with pytest.raises(Exception, match="needs at least 1"):
        program.sizes(1)


def test_replay_of_a_column_program_with_its_surface_input_is_bit_for_bit(tmp_path):
    from replaying import replay_cli

    _case("column_down_gradient", torch.float64, tmp_path)
    path = tmp_path / "column_down_gradient.nnp"
    model = Model(path)
    model.record_start(tmp_path / "rec")
    for batch in (1, 5, 64):
        model(*(a.numpy() for a in _inputs(2, True, batch, 17, torch.float64, seed=batch)))
    model.record_stop()
    proc, report = replay_cli(tmp_path / "rec", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["engine"] == "native" and report["summary"]["records"] == report["summary"]["equal"] == 3
    assert all(r["paths"]["bridge"]["equal"] and r["paths"]["torch"]["equal"] for r in report["records"])
