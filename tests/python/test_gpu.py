"""CUDA: the bridge on a GPU, from Python, C and Fortran. Every test skips, with
the reason, where torch has no CUDA or sees no GPU (CI); examples/gpu/check.sh
runs them on a GPU machine.

What is checked there: a model loads on "cuda:0"; its outputs through the
bridge equal the same file run by Python torch on the same GPU bit for bit
(TorchScript, and a .pt2 package compiled for CUDA against aoti_load_package);
the on-device route takes torch CUDA tensors and __cuda_array_interface__
objects in place and gives the host route's bits; arrays in the wrong memory
are refused naming it; guardrails work on the GPU; "auto" maps the local rank.
"""

import pathlib
import subprocess

import numpy as np
import pytest
import torch
from conftest import mlp32

import pyclosure
from pyclosure.bridge import Model
from pyclosure.errors import ArgumentError, ModelFormatError, NonFiniteError

HAVE_CUDA = torch.cuda.is_available()
WHY = "torch has no CUDA (a CPU build)" if torch.version.cuda is None else "torch finds no CUDA device"
pytestmark = pytest.mark.skipif(not HAVE_CUDA, reason=f"needs a GPU: {WHY}")
HERE = pathlib.Path(__file__).parent


class Interface:
    """Only __cuda_array_interface__ (as cupy gives), over a torch CUDA tensor."""

    def __init__(self, t):
        self.t = t
        self.__cuda_array_interface__ = t.__cuda_array_interface__


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpu_models")
    x = torch.zeros(8, 30)
    pyclosure.export(mlp32(), d / "mlp32.pt", x)
    return d


def columns(n, seed=3):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 30)).astype(np.float32))


def torch_on_gpu(path, x):
    module = torch.jit.load(str(path), map_location="cuda:0").eval()
    with torch.inference_mode():
        return module(x.to("cuda:0")).cpu()


@pytest.mark.parametrize("batch", [1, 256, 4096])
def test_bridge_on_cuda_equals_python_torch_on_cuda_bit_for_bit(files, batch):
    m = Model(files / "mlp32.pt", "cuda:0")
    assert m.device == "cuda:0"
    x = columns(batch)
    got = m(x.numpy())
    assert got.tobytes() == torch_on_gpu(files / "mlp32.pt", x).numpy().tobytes()


def test_device_route_takes_cuda_tensors_in_place_with_the_host_routes_bits(files):
    m = Model(files / "mlp32.pt", "cuda:0")
    x = columns(4096)
    xd = x.to("cuda:0")
    yd = torch.full((4096, 31), 5.0, device="cuda:0")
    ptr = yd.data_ptr()
    m(xd, out=[yd])
    assert yd.data_ptr() == ptr and yd.device.type == "cuda"
    assert yd.cpu().numpy().tobytes() == m(x.numpy()).tobytes()
    assert yd.cpu().numpy().tobytes() == torch_on_gpu(files / "mlp32.pt", x).numpy().tobytes()


def test_device_route_allocates_cuda_outputs(files):
    y = Model(files / "mlp32.pt", "cuda:0")(columns(7).to("cuda:0"))
    assert isinstance(y, torch.Tensor) and str(y.device) == "cuda:0" and y.shape == (7, 31)


def test_device_route_takes_cuda_array_interface_objects(files):
    m = Model(files / "mlp32.pt", "cuda:0")
    x = columns(64)
    yd = torch.zeros(64, 31, device="cuda:0")
    m.forward(Interface(x.to("cuda:0")), out=[Interface(yd)])
    assert yd.cpu().numpy().tobytes() == m(x.numpy()).tobytes()


def test_device_route_takes_cupy_arrays(files):
    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    m = Model(files / "mlp32.pt", "cuda:0")
    x = columns(32)
    y = cupy.zeros((32, 31), dtype=cupy.float32)
    m.forward(cupy.asarray(x.numpy()), out=[y])
    assert cupy.asnumpy(y).tobytes() == m(x.numpy()).tobytes()


def test_device_route_refuses_host_memory_for_a_cuda_model(files):
    m = Model(files / "mlp32.pt", "cuda:0")
    with pytest.raises(
        ArgumentError, match=r"input .*\(argument 1\) is host memory, but the on-device route"
    ):
        m.forward(columns(3).numpy(), out=[np.zeros((3, 31), np.float32)], on_device=True)


def test_device_route_refuses_gpu_memory_for_a_cpu_model(files):
    m = Model(files / "mlp32.pt", "cpu")
    with pytest.raises(ArgumentError, match="is in the memory of cuda:0, but the model runs on the CPU"):
        m(columns(3).to("cuda:0"))


def test_device_route_refuses_another_gpus_memory(files):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    m = Model(files / "mlp32.pt", "cuda:1")
    with pytest.raises(ArgumentError, match="is in the memory of cuda:0, but the model runs on cuda:1"):
        m(columns(3).to("cuda:0"))


def test_nonfinite_guard_on_the_gpu_names_the_column_and_falls_back(files):
    x = columns(10)
    x[6, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="has NaN in batch row 6 of 10"):
        Model(files / "mlp32.pt", "cuda:0")(x.to("cuda:0"))
    m = Model(files / "mlp32.pt", "cuda:0", nonfinite="fallback")
    fb = torch.full((10, 31), -1.0, device="cuda:0")
    flags = torch.zeros(10, dtype=torch.int32, device="cuda:0")
    y = m(x.to("cuda:0"), fallback=[fb], flags=flags)
    assert flags.cpu().tolist() == [0] * 6 + [3] + [0] * 3
    assert torch.equal(y[6].cpu(), torch.full((31,), -1.0))
    assert torch.isfinite(y).all()


def test_auto_maps_the_local_rank_to_a_gpu(files, monkeypatch):
    n = torch.cuda.device_count()
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", str(n + 0))
    m = Model(files / "mlp32.pt", "auto")
    assert m.device == "cuda:0"
    assert (
        f"(auto: local rank {n} (OMPI_COMM_WORLD_LOCAL_RANK) mod {n} visible CUDA device(s)"
        in m.stats_summary()
    )


@pytest.fixture(scope="module")
def cuda_package(files):
    path = files / "mlp32_cuda.pt2"
    pyclosure.export(mlp32(), path, torch.zeros(8, 30), device="cuda")
    return path


def test_pt2_compiled_for_cuda_equals_aoti_load_package_bit_for_bit(cuda_package):
    from torch._inductor import aoti_load_package

    x = columns(256)
    m = Model(cuda_package, "cuda:0")
    assert m.engine == "aotinductor" and m.contract["engine"]["device"] == "cuda"
    ref = aoti_load_package(str(cuda_package), device_index=0)
    with torch.inference_mode():
        want = ref(x.to("cuda:0")).cpu().numpy()
    assert m(x.numpy()).tobytes() == want.tobytes()
    yd = torch.empty(256, 31, device="cuda:0")
    m(x.to("cuda:0"), out=[yd])
    assert yd.cpu().numpy().tobytes() == want.tobytes()


def test_pt2_compiled_for_cuda_is_refused_on_the_cpu(cuda_package):
    with pytest.raises(ModelFormatError, match="was compiled for device 'cuda' and cannot run on 'cpu'"):
        Model(cuda_package, "cpu")


def test_c_host_loads_on_cuda_and_matches_torch(files, build_c, tmp_path):
    exe = build_c(HERE.parent / "c" / "gpu_run.c", name="gpu_run")
    x = columns(512)
    x.numpy().tofile(tmp_path / "x.bin")
    proc = subprocess.run(
        [
            str(exe),
            str(files / "mlp32.pt"),
            "cuda:0",
            str(tmp_path / "x.bin"),
            str(tmp_path / "y.bin"),
            "512",
            "30",
            "31",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "device cuda:0" in proc.stdout
    got = np.fromfile(tmp_path / "y.bin", dtype=np.float32)
    assert got.tobytes() == torch_on_gpu(files / "mlp32.pt", x).numpy().ravel().tobytes()


def test_fortran_on_device_with_host_arrays_is_refused_on_cuda(model_dir, build_fortran):
    exe = build_fortran(HERE.parent / "fortran" / "on_device.f90", name="on_device")
    proc = subprocess.run([str(exe), str(model_dir), "cuda:0"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "host arrays refused on cuda:0" in proc.stdout
