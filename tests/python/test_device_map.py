"""device="auto": the local MPI rank picks a GPU round robin over the visible ones.

The mapping is the bridge's own torch-free function (cbridge/src/device_map.cpp),
compiled here with a small driver that gives it an environment and a GPU count,
so it is checked on machines without a GPU. The summary test checks that the
statistics summary names the device and why it was chosen.
"""

import pathlib
import shutil
import subprocess

import pytest

from pyclosure.bridge import Model
from pyclosure.errors import BadDeviceError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "cbridge" / "src"


@pytest.fixture(scope="module")
def device_map(tmp_path_factory):
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    exe = tmp_path_factory.mktemp("device_map") / "device_map"
    subprocess.run(
        [
            "c++",
            "-std=c++20",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{SRC}",
            f"-I{ROOT / 'cbridge/include'}",
            str(ROOT / "tests/c/device_map.cpp"),
            str(SRC / "device_map.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
    )

    def choose(gpus, **env):
        r = subprocess.run(
            [str(exe), str(gpus), *(f"{k}={v}" for k, v in env.items())], capture_output=True, text=True
        )
        return r.stdout.strip().split("|")

    return choose


@pytest.mark.parametrize(
    "rank, gpus, device",
    [
        (0, 4, "cuda:0"),
        (3, 4, "cuda:3"),
        (4, 4, "cuda:0"),
        (5, 4, "cuda:1"),
        (7, 2, "cuda:1"),
        (6, 1, "cuda:0"),
    ],
)
def test_auto_maps_local_rank_round_robin_over_visible_gpus(device_map, rank, gpus, device):
    got, reason = device_map(gpus, OMPI_COMM_WORLD_LOCAL_RANK=rank)
    assert got == device
    assert f"local rank {rank} (OMPI_COMM_WORLD_LOCAL_RANK) mod {gpus} visible CUDA device(s)" in reason


@pytest.mark.parametrize(
    "var",
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "MV2_COMM_WORLD_LOCAL_RANK",
        "SLURM_LOCALID",
        "PALS_LOCAL_RANKID",
    ],
)
def test_auto_reads_each_launchers_local_rank_variable(device_map, var):
    assert device_map(8, **{var: 6})[:1] == ["cuda:6"]
    assert var in device_map(8, **{var: 6})[1]


def test_auto_prefers_the_first_rank_variable_in_order(device_map):
    got, reason = device_map(4, SLURM_LOCALID=2, OMPI_COMM_WORLD_LOCAL_RANK=1)
    assert got == "cuda:1" and "OMPI_COMM_WORLD_LOCAL_RANK" in reason


def test_auto_without_rank_variable_is_rank_zero(device_map):
    got, reason = device_map(2)
    assert got == "cuda:0" and "no local rank variable set" in reason


def test_auto_without_gpu_is_cpu_and_says_why(device_map):
    got, reason = device_map(0, OMPI_COMM_WORLD_LOCAL_RANK=3)
    assert got == "cpu" and "no CUDA device visible" in reason and "local rank 3" in reason


def test_auto_reason_names_cuda_visible_devices(device_map):
    got, reason = device_map(2, SLURM_LOCALID=3, CUDA_VISIBLE_DEVICES="2,3")
    assert got == "cuda:1" and "CUDA_VISIBLE_DEVICES=2,3" in reason


@pytest.mark.parametrize("value", ["", "-1", "one", "1.5", "99999999999"])
def test_auto_refuses_a_rank_that_is_not_a_count(device_map, value):
    status, code, message = device_map(2, MPI_LOCALRANKID=value)
    assert (status, code) == ("error", "3")  # NNC_ERR_BAD_DEVICE
    assert f"MPI_LOCALRANKID='{value}' is not a non-negative integer" in message


def test_bad_rank_variable_fails_the_load_with_bad_device(model_dir, monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "x")
    with pytest.raises(BadDeviceError, match="OMPI_COMM_WORLD_LOCAL_RANK='x'"):
        Model(model_dir / "affine64.pt", device="auto")


def test_stats_summary_names_the_device_and_why(model_dir, monkeypatch):
    assert Model(model_dir / "affine64.pt").stats_summary().endswith("; device cpu (requested)")
    monkeypatch.setenv("SLURM_LOCALID", "5")
    summary = Model(model_dir / "affine64.pt", device="auto").stats_summary()
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        assert f"device cuda:{5 % n} (auto: local rank 5 (SLURM_LOCALID) mod {n} visible" in summary
    else:
        assert summary.endswith(
            "; device cpu (auto: no CUDA device visible, so the CPU for local rank 5 (SLURM_LOCALID))"
        )
