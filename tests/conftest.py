"""Shared fixtures: fixture models with known weights, built into a temp dir at
test time (no committed .pt files), and helpers that compile C and Fortran
programs against the installed bridge using only ``pyclosure config``."""

import importlib.resources
import json
import math
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import uuid
import warnings
import zipfile

import pytest
import torch

import pyclosure
from pyclosure import config

HERE = pathlib.Path(__file__).parent


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: takes more than ten seconds (valgrind, AOTInductor compiles); skip with -m 'not slow'",
    )


class Affine(torch.nn.Module):
    """y = tanh(W x + b) over the last dim (or W x + b with plain=True); W, b known by hand."""

    def __init__(self, nin, nout, dtype, plain=False):
        super().__init__()
        w = torch.arange(1, nin * nout + 1, dtype=dtype).reshape(nout, nin) / 8.0
        self.register_buffer("w", w)
        self.register_buffer("b", torch.arange(nout, dtype=dtype) / 4.0 - 0.5)
        self.plain = plain

    def forward(self, x):
        y = x @ self.w.t() + self.b
        return y if self.plain else torch.tanh(y)


class Pointwise(torch.nn.Module):
    """Rank-1 closure: one scalar per sample, y = tanh(2 x + 1)."""

    def forward(self, x):
        return torch.tanh(2.0 * x + 1.0)


class TwoInTwoOut(torch.nn.Module):
    """(u (3,), t (2,)) -> (flux (3,), s (1,)): several inputs and outputs."""

    def forward(self, u, t):
        flux = torch.sin(u) * t.sum(dim=1, keepdim=True)
        s = (u * u).sum(dim=1, keepdim=True) - t[:, :1]
        return flux, s


class CellsToFaces(torch.nn.Module):
    """A local stencil over a variable number of cells: q (ncell,) -> faces (ncell + 1,), the mean of
    the two neighbouring cells inside and 0 at the two ends (exact for dyadic q)."""

    def forward(self, q):
        pad = torch.zeros(q.shape[0], 1, dtype=q.dtype)
        return torch.cat([pad, 0.5 * (q[:, 1:] + q[:, :-1]), pad], dim=1)


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test (restored after): for files of many tiny operations,
    where threads only add synchronisation (on a busy two-core machine 200 s with them, 10 s
    without), and for comparisons with kernels that sum in one order. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smooth_fields(n, cells=32, amp=1.0, shift=0.0, noise=0.0, seed=0):
    """``n`` random periodic fields of ``cells`` cells (float32): 4 Fourier modes with 1/k amplitudes,
    times ``amp``, plus ``shift`` and white noise of standard deviation ``noise``."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(1, 5, dtype=torch.float64)
    a = torch.randn(n, 4, generator=g, dtype=torch.float64) / k
    phase = 2 * math.pi * torch.rand(n, 4, generator=g, dtype=torch.float64)
    xg = torch.arange(cells, dtype=torch.float64) * 2 * math.pi / cells
    u = amp * (a[:, :, None] * torch.cos(k[None, :, None] * xg + phase[:, :, None])).sum(1)
    if shift:
        u = u + shift
    if noise:
        u = u + noise * torch.randn(n, cells, generator=g, dtype=torch.float64)
    return u.float()


def mlp(nin=16, nhidden=64, nout=4, seed=0):
    """A float64 MLP with seeded weights: enough arithmetic for thread and MPI tests."""
    with torch.random.fork_rng():  # leaves the global generator as it was
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(nin, nhidden),
            torch.nn.Tanh(),
            torch.nn.Linear(nhidden, nhidden),
            torch.nn.Tanh(),
            torch.nn.Linear(nhidden, nout),
        ).double()


def mlp32(seed=0):
    """A float32 MLP 30-128-128-31 (tanh) with seeded weights: the size of a column closure."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(30, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 128),
            torch.nn.Tanh(),
            torch.nn.Linear(128, 31),
        )


def _export(module, path, example, **kw):
    pyclosure.export(module, path, example, **kw)
    return str(path)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """Fixture model files, exported once per test session."""
    d = tmp_path_factory.mktemp("models")
    f64, f32 = torch.float64, torch.float32
    _export(Affine(3, 2, f64), d / "affine64.pt", torch.zeros(4, 3, dtype=f64))
    _export(Affine(3, 2, f32), d / "affine32.pt", torch.zeros(4, 3, dtype=f32))
    _export(Affine(3, 2, f64, plain=True), d / "plain_affine64.pt", torch.zeros(4, 3, dtype=f64))
    _export(Affine(3, 2, f64), d / "affine_rank3.pt", torch.zeros(6, 4, 3, dtype=f64))
    _export(Pointwise(), d / "pointwise64.pt", torch.zeros(5, dtype=f64))
    _export(mlp(), d / "mlp64.pt", torch.zeros(8, 16, dtype=f64))  # (16, ncol) -> (4, ncol) from Fortran
    _export(
        TwoInTwoOut(),
        d / "two_in_two_out.pt",
        (torch.zeros(4, 3, dtype=f64), torch.zeros(4, 2, dtype=f64)),
        output_names=["flux", "s"],
    )
    with torch.no_grad():  # a plain TorchScript file, as FTorch users make them
        torch.jit.save(torch.jit.script(Affine(3, 2, f64)), str(d / "no_contract.pt"))
    (d / "not_torchscript.pt").write_text("this is not a model\n")
    good = (d / "affine64.pt").read_bytes()
    (d / "truncated.pt").write_bytes(good[: len(good) // 2])
    return d


def with_metadata(change):
    """For rewrite_zip: apply ``change(record)`` to both of the package's metadata records."""

    def rewrite(name, data):
        if not name.endswith("_metadata.json"):
            return data
        record = json.loads(data)
        change(record)
        return json.dumps(record).encode()

    return rewrite


#: CPU features the bridge knows, widest last: the missing-feature case asks for the first this
#: CPU lacks (avx512f on an AVX2 machine; the AVX-512 FP16 or AMX extensions on an AVX-512 one).
MAYBE_MISSING_CPU_FEATURES = ("avx512f", "avx512_fp16", "amx_tile")


def missing_cpu_feature():
    """The first of MAYBE_MISSING_CPU_FEATURES this CPU lacks (its /proc/cpuinfo flags), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    return next((name for name in MAYBE_MISSING_CPU_FEATURES if name not in flags), None)


def needing_cpu_features(*features):
    """For rewrite_zip: a contract whose engine also needs ``features``."""

    def change(record):
        contract = json.loads(record["pyclosure_contract"])
        contract["engine"]["cpu_features"] = contract["engine"]["cpu_features"] + list(features)
        record["pyclosure_contract"] = json.dumps(contract)

    return with_metadata(change)


def garbage_library(name, data):
    """For rewrite_zip: the package's wrapper library replaced by bytes no loader accepts."""
    return b"not a shared library\n" * 64 if name.endswith(".so") else data


def rewrite_zip(src, dst, change):
    """Copy zip ``src`` to ``dst``, member by member through ``change(name, data)`` (bytes, or None to drop)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info, data)
    return dst


def without_contract(name, data):
    """For rewrite_zip: the package's metadata records without the pyclosure contract."""
    if name.endswith("_metadata.json"):
        record = json.loads(data)
        record.pop("pyclosure_contract", None)
        return json.dumps(record).encode()
    return data


def periodic64(seed=4):
    """A float64 PeriodicFluxClosure (one channel, stencil 6, hidden 32) with seeded weights and
    normalisers: x (batch, N) -> flux (batch, N) on any grid."""
    from pyclosure.models import PeriodicFluxClosure
    from pyclosure.normalize import Normalizer

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return (
            PeriodicFluxClosure(
                1,
                6,
                32,
                2,
                "tanh",
                dx=0.5,
                input_normalizer=Normalizer(torch.tensor([[0.3]]), torch.tensor([[1.7]])),
                output_normalizer=Normalizer(torch.tensor([0.2]), torch.tensor([3.0])),
            )
            .double()
            .eval()
        )


def _redigest(data):
    """A native program's bytes with the digest recomputed (after an edit of the header)."""
    import hashlib

    return data[:-32] + hashlib.sha256(data[:-32]).digest()


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory, model_dir):
    """Native programs (.nnp, milliseconds each) and bad ones derived from them.

    plain_affine64.nnp is model_dir's plain_affine64.pt as one dense layer (y = W x + b,
    known by hand); mlp32/mlp64 are conftest's MLPs; periodic64 a PeriodicFluxClosure."""
    import struct

    from pyclosure._native import _OP

    d = tmp_path_factory.mktemp("native")
    f64 = torch.float64
    affine = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        affine.weight.copy_(torch.arange(1, 7, dtype=f64).reshape(2, 3) / 8.0)
        affine.bias.copy_(torch.arange(2, dtype=f64) / 4.0 - 0.5)
    _export(
        torch.nn.Sequential(affine).eval(),
        d / "plain_affine64.nnp",
        torch.zeros(4, 3, dtype=f64),
        input_names=["x"],
    )
    _export(mlp32().eval(), d / "mlp32.nnp", torch.zeros(4, 30))
    _export(mlp().eval(), d / "mlp64.nnp", torch.zeros(4, 16, dtype=f64))
    _export(periodic64(), d / "periodic64.nnp", torch.zeros(4, 16, dtype=f64))
    good = (d / "plain_affine64.nnp").read_bytes()
    (d / "truncated.nnp").write_bytes(good[: len(good) // 2])
    length = struct.unpack_from("<Q", good, 80)[0]  # the contract's length, 8 more: sections overlap
    (d / "bad_sizes.nnp").write_bytes(_redigest(good[:80] + struct.pack("<Q", length + 8) + good[88:]))
    arith = b"pyclosure.native.arith/9".ljust(48, b"\0")
    (d / "wrong_arith.nnp").write_bytes(_redigest(good[:16] + arith + good[64:]))
    table = struct.unpack_from("<Q", good, 88)[0]  # the dense op: 3 -> 2^30 outputs
    op = list(_OP.unpack_from(good, table))
    op[1:3] = [3, 1 << 30]
    (d / "absurd_dims.nnp").write_bytes(_redigest(good[:table] + _OP.pack(*op) + good[table + _OP.size :]))
    shutil.copyfile(model_dir / "plain_affine64.pt", d / "torchscript_named.nnp")
    return d


@pytest.fixture(scope="session")
def pt2_dir(tmp_path_factory, model_dir):
    """AOTInductor packages, compiled once per test session (five compiles, about two minutes),
    and bad .pt2 files derived from them without compiling.

    plain_affine64.pt2 is model_dir's plain_affine64.pt (y = W x + b, known by hand);
    cells64.pt2 is CellsToFaces, whose cell dim is variable (range [2, null]).

    ``cache/`` holds the inductor cache of these compiles; ``exported.json`` the contracts
    export returned, its timings, the package sizes and the environment's
    TORCHINDUCTOR_CACHE_DIR before and after; every contract's ``extra`` has a
    session ``token`` to find its compile output by.
    """
    d = tmp_path_factory.mktemp("pt2")
    f64 = torch.float64
    token = uuid.uuid4().hex
    cases = {
        "mlp32.pt2": (mlp32(), torch.zeros(8, 30), {}),
        "mlp64.pt2": (mlp(), torch.zeros(8, 16, dtype=f64), {}),
        "two_in_two_out.pt2": (
            TwoInTwoOut(),
            (torch.zeros(4, 3, dtype=f64), torch.zeros(4, 2, dtype=f64)),
            {"output_names": ["flux", "s"]},
        ),
        "plain_affine64.pt2": (Affine(3, 2, f64, plain=True), torch.zeros(4, 3, dtype=f64), {}),
        "cells64.pt2": (
            CellsToFaces(),
            torch.zeros(4, 8, dtype=f64),
            {"input_names": ["q"], "output_names": ["faces"], "variable_dims": {"q": [0]}},
        ),
    }
    env_before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    record = {"token": token, "env_before": env_before, "packages": {}}
    for name, (module, example, kw) in cases.items():
        timings = {}
        contract = pyclosure.export(
            module, d / name, example, cache_dir=d / "cache", timings=timings, extra={"token": token}, **kw
        )
        record["packages"][name] = {
            "contract": contract,
            "timings": timings,
            "bytes": (d / name).stat().st_size,
        }
    record["env_after"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    (d / "exported.json").write_text(json.dumps(record, indent=1))

    good = (d / "mlp32.pt2").read_bytes()
    (d / "truncated.pt2").write_bytes(good[: len(good) // 2])
    shutil.copyfile(model_dir / "affine64.pt", d / "torchscript_named.pt2")
    program = torch.export.export(Affine(3, 2, f64), (torch.zeros(4, 3, dtype=f64),))
    torch.export.save(program, str(d / "export_archive.pt2"))
    rewrite_zip(d / "mlp32.pt2", d / "no_contract.pt2", without_contract)
    lacking = missing_cpu_feature()
    if lacking:
        rewrite_zip(d / "plain_affine64.pt2", d / "needs_missing_feature.pt2", needing_cpu_features(lacking))
    rewrite_zip(d / "plain_affine64.pt2", d / "needs_made_up_feature.pt2", needing_cpu_features("warp_drive"))
    rewrite_zip(
        d / "plain_affine64.pt2",
        d / "built_for_cuda.pt2",
        with_metadata(lambda record: record.update(AOTI_DEVICE_KEY="cuda")),
    )
    rewrite_zip(d / "plain_affine64.pt2", d / "garbage_library.pt2", garbage_library)
    return d


def roundtrip(module, tmp_path):
    """Script, save and reload a module, as an exported closure would be."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        path = tmp_path / "m.pt"
        torch.jit.save(torch.jit.script(module), str(path))
        return torch.jit.load(str(path))


def cli(*args):
    """The installed `pyclosure` command of this Python (works in a venv not on PATH)."""
    script = pathlib.Path(sys.executable).parent / "pyclosure"
    return [str(script) if script.exists() else "pyclosure", *map(str, args)]


def run_demo(tmp_path_factory, program, *args, timeout):
    """Run ``pyclosure demo --quick ARGS --out DIR`` once (the installed CLI, in a subprocess)
    into a fresh folder: ``(process, report.json as a dict, DIR)``. ``program`` is the
    example's Fortran program the demo drives (``burgers_les``, ``column_scm``): a build
    that lacks it fails here, by name."""
    path = pathlib.Path(str(importlib.resources.files("pyclosure"))) / "bin" / program
    assert path.exists(), f"{path} is not built"
    out = tmp_path_factory.mktemp(program)
    proc = subprocess.run(
        cli("demo", "--quick", *args, "--out", out),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert (out / "report.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads((out / "report.json").read_text()), out


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def build_fortran(tmp_path_factory):
    """Compile Fortran sources outside the source tree with only `pyclosure config` flags."""
    if shutil.which("gfortran") is None:
        pytest.fail("gfortran is required (apt-get install gfortran)")
    out = tmp_path_factory.mktemp("fortran_build")
    flags = config.flags()

    def build(*sources, name, extra=()):
        exe = out / name
        cmd = [
            "gfortran",
            "-O2",
            "-Wall",
            *shlex.split(flags["fflags"]),
            *map(str, sources),
            "-o",
            str(exe),
            *extra,
            *shlex.split(flags["ldflags"]),
            *shlex.split(flags["libs"]),
        ]
        _run(cmd, cwd=out)
        return exe

    return build


@pytest.fixture(scope="session")
def build_c(tmp_path_factory):
    """Compile C sources with only `pyclosure config` flags."""
    out = tmp_path_factory.mktemp("c_build")
    flags = config.flags()

    def build(*sources, name, extra=()):
        exe = out / name
        cmd = [
            "cc",
            "-O2",
            "-Wall",
            "-Wextra",
            "-std=c11",
            *shlex.split(flags["cflags"]),
            *map(str, sources),
            "-o",
            str(exe),
            *extra,
            *shlex.split(flags["ldflags"]),
            *shlex.split(flags["clibs"]),
        ]
        _run(cmd, cwd=out)
        return exe

    return build
