"""The on-device route (nnc_model_forward_on_device) for a CPU model: arrays in host
memory, wrapped in place, the guardrails scanned where the arrays live. This is the
code path a GPU model takes with GPU arrays (test_gpu.py runs it there), checked on
every machine. Arrays come as torch tensors and as __cuda_array_interface__ objects
(here over host memory, which a CPU model takes)."""

import pathlib
import subprocess

import numpy as np
import pytest
import torch
from conftest import mlp

from pyclosure._header import NNC_FLAG_NONFINITE_INPUT
from pyclosure.bridge import Model
from pyclosure.errors import ArgumentError, DtypeError, NonFiniteError


class Interface:
    """An object with only __cuda_array_interface__ (as cupy gives), over a numpy array."""

    def __init__(self, a, readonly=False, stream=None):
        self.a = a
        self.__cuda_array_interface__ = {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "data": (a.ctypes.data, readonly),
            "version": 3,
            "strides": None if a.flags.c_contiguous else a.strides,
            "stream": stream,
        }


@pytest.fixture(scope="module")
def mlp_file(model_dir):
    return model_dir / "mlp64.pt"


def columns(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 16))


def test_torch_tensors_take_the_device_route_in_place_and_match_the_host_route(mlp_file):
    m = Model(mlp_file)
    x = columns(33)
    want = m(x)
    y = torch.full((33, 4), 7.0, dtype=torch.float64)
    ptr = y.data_ptr()
    got = m(torch.from_numpy(x), out=[y], on_device=True)
    assert got[0] is y and y.data_ptr() == ptr
    assert y.numpy().tobytes() == want.tobytes()
    with torch.no_grad():
        assert torch.equal(y, mlp()(torch.from_numpy(x)))


def test_outputs_allocated_on_the_device_route_are_torch_tensors(mlp_file):
    m = Model(mlp_file)
    x = columns(5)
    y = m(torch.from_numpy(x), on_device=True)
    assert isinstance(y, torch.Tensor) and y.device.type == "cpu" and y.shape == (5, 4)
    assert y.numpy().tobytes() == m(x).tobytes()


def test_strided_tensors_are_used_by_their_strides(mlp_file):
    m = Model(mlp_file)
    x = columns(12)
    xt = torch.from_numpy(np.ascontiguousarray(x.T)).t()  # (12, 16) with Fortran-like strides
    assert not xt.is_contiguous()
    y = torch.zeros(4, 12, dtype=torch.float64).t()  # an output written through its strides
    m(xt, out=[y], on_device=True)
    # the host route on the same strided view (a strided matmul may round unlike a contiguous one)
    assert y.numpy().tobytes() == m(xt.numpy()).tobytes()
    assert np.allclose(y.numpy(), m(x), rtol=1e-12, atol=1e-14)  # and read by its strides, not garbage


def test_array_interface_objects_take_the_device_route(mlp_file):
    m = Model(mlp_file)
    x = columns(9)
    y = np.zeros((9, 4))
    m.forward(Interface(x), out=[Interface(y)])  # chosen by the interface: no on_device= needed
    assert y.tobytes() == m(x).tobytes()


def test_numpy_arrays_on_the_device_route_are_named_by_position(mlp_file):
    with pytest.raises(DtypeError, match="output 2 has dtype float16"):
        Model(mlp_file).forward(Interface(columns(3)), out=[np.zeros((3, 4)), np.zeros(3, np.float16)])


def test_read_only_interface_output_is_refused(mlp_file):
    with pytest.raises(ArgumentError, match="an output array is read-only: output 1"):
        Model(mlp_file).forward(Interface(columns(3)), out=[Interface(np.zeros((3, 4)), readonly=True)])


def test_interface_stream_zero_is_refused(mlp_file):
    with pytest.raises(ArgumentError, match="stream 0 is not allowed"):
        Model(mlp_file).forward(Interface(columns(3), stream=0), out=[np.zeros((3, 4))], on_device=True)


def test_unsupported_interface_dtype_names_it(mlp_file):
    with pytest.raises(DtypeError, match="typestr '<f2'"):
        Model(mlp_file).forward(Interface(np.zeros((3, 16), np.float16)), out=[np.zeros((3, 4))])


def test_nonfinite_input_on_device_route_names_the_column(mlp_file):
    x = columns(6)
    x[4, 7] = np.nan
    with pytest.raises(NonFiniteError, match=r"input .* has NaN in batch row 4 of 6"):
        Model(mlp_file)(torch.from_numpy(x), out=[torch.zeros(6, 4, dtype=torch.float64)], on_device=True)


def test_nonfinite_fallback_and_flags_on_device_route(mlp_file):
    m = Model(mlp_file, nonfinite="fallback")
    x = columns(6)
    x[2, 0] = -np.inf
    fb = torch.full((6, 4), -3.0, dtype=torch.float64)
    flags = torch.full((6,), 9, dtype=torch.int32)
    y = torch.zeros(6, 4, dtype=torch.float64)
    m(torch.from_numpy(x), out=[y], fallback=[fb], flags=flags, on_device=True)
    host_y, host_flags = np.zeros((6, 4)), np.zeros(6, np.int32)
    m(x, out=[host_y], fallback=[fb.numpy()], flags=host_flags)
    assert flags.tolist() == host_flags.tolist() == [0, 0, NNC_FLAG_NONFINITE_INPUT, 0, 0, 0]
    assert y[2].tolist() == [-3.0] * 4
    assert y.numpy().tobytes() == host_y.tobytes()


def test_cpu_tensors_take_the_host_route_by_default(mlp_file):
    m = Model(mlp_file)
    x = columns(4)
    y = m(torch.from_numpy(x))
    assert isinstance(y, np.ndarray) and y.tobytes() == m(x).tobytes()


def test_stats_count_device_route_calls(mlp_file):
    m = Model(mlp_file)
    m(torch.from_numpy(columns(10)), on_device=True)
    m(columns(3))
    assert (m.stats["calls"], m.stats["columns"]) == (2, 13)


def test_fortran_on_device_true_matches_the_host_route_on_the_cpu(model_dir, build_fortran):
    src = pathlib.Path(__file__).parents[1] / "fortran" / "on_device.f90"
    exe = build_fortran(src, name="on_device")
    proc = subprocess.run([str(exe), str(model_dir), "cpu"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "on_device: identical to the host route" in proc.stdout
