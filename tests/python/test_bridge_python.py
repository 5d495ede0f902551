"""The cffi path (pyclosure.bridge): bit-for-bit against torch, and every bad input."""

import numpy as np
import pytest
import torch

from pyclosure import errors
from pyclosure.bridge import Model, get_num_threads, set_num_threads, version


def _torch(path, *arrays):
    module = torch.jit.load(str(path))
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize(
    "name, shape, dtype",
    [
        ("affine64.pt", (9, 3), np.float64),
        ("affine32.pt", (9, 3), np.float32),
        ("pointwise64.pt", (11,), np.float64),
        ("affine_rank3.pt", (6, 4, 3), np.float64),
    ],
)
def test_cffi_forward_equals_torch_bit_for_bit(model_dir, name, shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    with Model(model_dir / name) as model:
        y = model(x)
    (ref,) = _torch(model_dir / name, x)
    assert y.dtype == ref.dtype and np.array_equal(y, ref)


def test_cffi_several_inputs_and_outputs_equal_torch(model_dir):
    rng = np.random.default_rng(2)
    u, t = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    model = Model(model_dir / "two_in_two_out.pt")
    assert model.input_names == ["u", "t"] and model.output_names == ["flux", "s"]
    flux, s = model(u, t)
    ref_flux, ref_s = _torch(model_dir / "two_in_two_out.pt", u, t)
    assert np.array_equal(flux, ref_flux) and np.array_equal(s, ref_s)


def test_cffi_fortran_ordered_and_strided_arrays_give_the_same_numbers(model_dir):
    x = np.random.default_rng(3).standard_normal((10, 6))
    model = Model(model_dir / "affine64.pt")
    view = x[::2, ::2]  # strided, not contiguous
    ref = model(np.ascontiguousarray(view))
    assert np.array_equal(model(view), ref)
    assert np.array_equal(model(np.asfortranarray(view)), ref)
    out = np.zeros((5, 4))
    model(view, out=[out[:, 1:3]])  # strided output
    assert np.array_equal(out[:, 1:3], ref) and not out[:, [0, 3]].any()
    assert np.array_equal(model(view[::-1]), ref[::-1])  # negative strides


def test_cffi_plain_torchscript_needs_out_and_runs(model_dir):
    model = Model(model_dir / "no_contract.pt")
    assert model.contract is None
    x = np.ones((4, 3))
    with pytest.raises(errors.ArgumentError, match="out="):
        model(x)
    y = np.empty((4, 2))
    model(x, out=[y])
    assert np.array_equal(y, _torch(model_dir / "no_contract.pt", x)[0])


@pytest.mark.parametrize(
    "case, exc, words",
    [
        ("missing_file", errors.FileAccessError, "cannot open model file"),
        ("not_torchscript", errors.ModelFormatError, "not a loadable TorchScript"),
        ("truncated", errors.ModelFormatError, "not a loadable TorchScript"),
        ("cuda_without_cuda", errors.DeviceUnavailableError, "CUDA is not available"),
        ("malformed_device", errors.BadDeviceError, "malformed device string"),
        ("wrong_rank", errors.RankError, "expected rank 2"),
        ("wrong_shape", errors.ShapeError, "expected shape (:, 3), got (4, 5)"),
        ("wrong_dtype", errors.DtypeError, "expected float64, got float32"),
        ("unsupported_numpy_dtype", errors.DtypeError, "float16"),
        ("wrong_nargs", errors.ArgumentCountError, "expected 1 input(s) (x), got 2"),
        ("freed", errors.InvalidHandleError, "model handle is NULL: not loaded, or already freed"),
    ],
)
def test_cffi_bad_input_raises_its_error_and_next_call_works(model_dir, case, exc, words):
    if case == "cuda_without_cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    good = Model(model_dir / "affine64.pt")
    x = np.ones((4, 3))
    actions = {
        "missing_file": lambda: Model(model_dir / "missing.pt"),
        "not_torchscript": lambda: Model(model_dir / "not_torchscript.pt"),
        "truncated": lambda: Model(model_dir / "truncated.pt"),
        "cuda_without_cuda": lambda: Model(model_dir / "affine64.pt", device="cuda:0"),
        "malformed_device": lambda: Model(model_dir / "affine64.pt", device="cuda0"),
        "wrong_rank": lambda: good(np.ones((4, 3, 1))),
        "wrong_shape": lambda: good(np.ones((4, 5))),
        "wrong_dtype": lambda: good(x.astype(np.float32), out=[np.empty((4, 2))]),
        "unsupported_numpy_dtype": lambda: good(x.astype(np.float16), out=[np.empty((4, 2))]),
        "wrong_nargs": lambda: good(x, x, out=[np.empty((4, 2))]),
    }
    if case == "freed":
        other = Model(model_dir / "affine64.pt")
        other.close()
        other.close()  # double free is fine
        actions["freed"] = lambda: other(x, out=[np.empty((4, 2))])
    with pytest.raises(exc) as info:
        actions[case]()
    assert words in str(info.value)
    assert info.value.status == exc.status
    assert np.array_equal(good(x), _torch(model_dir / "affine64.pt", x)[0])


def test_version_and_threads_round_trip():
    bridge, libtorch = version()
    assert bridge.count(".") == 2 and libtorch.startswith(torch.__version__.split("+")[0])
    before = get_num_threads()
    set_num_threads(1)
    assert get_num_threads() == 1
    set_num_threads(before)
    with pytest.raises(errors.ArgumentError):
        set_num_threads(0)


def test_several_models_loaded_at_once_run_independently(model_dir):
    # Two files with the same contract (x (3,) -> (2,)) but different functions, a third
    # of another kind, called in turn: each gives its own known values, and freeing one
    # leaves the others as they were.
    plain, tanh = Model(model_dir / "plain_affine64.pt"), Model(model_dir / "affine64.pt")
    point = Model(model_dir / "pointwise64.pt")
    x = np.arange(12.0).reshape(4, 3) / 4 - 1  # dyadic: W x + b exact in any summation order
    w, b = np.arange(1.0, 7.0).reshape(2, 3) / 8, np.array([-0.5, -0.25])
    p = np.linspace(-1, 1, 5)
    want_tanh, want_point = (
        _torch(model_dir / "affine64.pt", x)[0],
        _torch(model_dir / "pointwise64.pt", p)[0],
    )
    assert not np.array_equal(want_tanh, x @ w.T + b)
    for _ in range(2):
        assert np.array_equal(plain(x), x @ w.T + b)
        assert np.array_equal(tanh(x), want_tanh)
        assert np.array_equal(point(p), want_point)
    tanh.close()
    assert np.array_equal(plain(x), x @ w.T + b) and np.array_equal(point(p), want_point)
    with pytest.raises(errors.InvalidHandleError):
        tanh(x)
    assert (plain.stats["calls"], point.stats["calls"]) == (3, 3)
