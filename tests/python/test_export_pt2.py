"""pyclosure.export(format="pt2"): AOTInductor packages, their contract, reading them without loading them.

The packages are compiled once per session by the ``pt2_dir`` fixture (five
compiles); the other tests here compile nothing.
"""

import contextlib
import json
import os
import re
import subprocess

import numpy as np
import pytest
import torch
from conftest import Affine, TwoInTwoOut, cli, mlp, mlp32, rewrite_zip

import pyclosure
from pyclosure import _aoti, _pt2
from pyclosure.contract import describe, read_contract, read_package_metadata
from pyclosure.errors import ArgumentCountError, DtypeError, ModelFormatError, ShapeError
from pyclosure.export import weights_sha256

V3 = ["sse4_2", "avx", "avx2", "fma", "f16c", "bmi", "bmi2"]
AVX512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"]
slow = pytest.mark.slow  # tests that use pt2_dir wait for its compiles


def _exported(pt2_dir):
    return json.loads((pt2_dir / "exported.json").read_text())


class FacesFromCells(torch.nn.Module):
    """N cells -> N + 1 faces: an output dim that follows a variable input dim."""

    def forward(self, q):
        pad = torch.zeros(q.shape[0], 1, dtype=q.dtype)
        return torch.cat([pad, 0.5 * (q[:, 1:] + q[:, :-1]), pad], dim=1)


def test_cuda_package_engine_pins_no_cpu_level():
    info, configs = _pt2.engine("x86-64-v3", machine="x86_64", device="cuda")
    assert configs == {} and (info["device"], info["cpu_isa"], info["cpu_features"]) == ("cuda", None, [])


@pytest.mark.parametrize(
    "fmt, device, message",
    [
        ("pt2", "gpu", "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ("pt2", "cuda:x", "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ("torchscript", "cuda", "device= applies to format='pt2' only"),
        ("native", "cuda", "device= applies to format='pt2' only"),
    ],
)
def test_export_device_is_checked_before_any_work(tmp_path, fmt, device, message):
    suffix = {"pt2": ".pt2", "torchscript": ".pt", "native": ".nnp"}[fmt]
    with pytest.raises(ValueError, match=re.escape(message)):
        pyclosure.export(mlp32(), tmp_path / f"m{suffix}", torch.zeros(2, 30), device=device)
    assert list(tmp_path.iterdir()) == []


@slow
def test_pt2_contract_reads_back_as_exported_without_torch(pt2_dir):
    for name, entry in _exported(pt2_dir)["packages"].items():
        assert read_contract(pt2_dir / name) == entry["contract"], name
    c = read_contract(pt2_dir / "two_in_two_out.pt2")
    assert c["schema"] == "pyclosure.contract/1" and c["format"] == "pt2"
    assert [i["name"] for i in c["inputs"]] == ["u", "t"] and [o["name"] for o in c["outputs"]] == [
        "flux",
        "s",
    ]
    assert c["inputs"][0]["shape"] == [3] and c["outputs"][1]["shape"] == [1]
    assert c["inputs"][0]["dtype"] == "float64"
    assert read_contract(pt2_dir / "mlp32.pt2")["inputs"][0]["dtype"] == "float32"
    assert c["module"] == "TwoInTwoOut" and c["weights_sha256"] == weights_sha256(TwoInTwoOut())


@slow
def test_pt2_ranges_batch_from_one_unbounded_and_fixed_dims_null(pt2_dir):
    c = read_contract(pt2_dir / "two_in_two_out.pt2")
    assert c["batch_range"] == [1, None]
    assert [i["ranges"] for i in c["inputs"]] == [[None], [None]]
    assert read_contract(pt2_dir / "mlp64.pt2")["inputs"][0]["ranges"] == [None]


def test_variable_dim_range_is_read_from_the_exported_program():
    q = torch.zeros(1, 8, dtype=torch.float64)  # batch 1 is traced as 2 (export specialises 1)
    program, traced, seconds = _pt2.export_program(FacesFromCells(), (q,), ["q"], {"q": [0]})
    assert traced[0].shape == (2, 8) and seconds > 0
    batch, per_input = _pt2.ranges(program)
    assert batch == [1, None]
    # torch.export infers 2.. for the cell dim of this module (its slices guard 1 out), not 1..
    assert per_input == [[[2, None]]]


@slow
def test_pt2_engine_records_the_x86_64_v3_default(pt2_dir):
    engine = read_contract(pt2_dir / "mlp32.pt2")["engine"]
    if engine["machine"] != "x86_64":
        pytest.skip("the ISA levels are x86-64 only")
    assert engine == {
        "name": "aotinductor",
        "device": "cpu",
        "machine": "x86_64",
        "cpu_isa": "x86-64-v3",
        "cpu_features": V3,
        "simdlen": 256,
        "torch_version": torch.__version__,
    }
    aoti = read_package_metadata(pt2_dir / "mlp32.pt2")
    assert aoti["AOTI_DEVICE_KEY"] == "cpu" and aoti["AOTI_MACHINE"] == "x86_64"
    assert aoti["AOTI_CPU_ISA"] == ("AVX2" if set(V3) <= set(_pt2.host_cpu_features()) else "INVALID VEC ISA")
    assert "pt2, an AOTInductor package: native cpu code for x86_64 x86-64-v3" in describe(
        read_contract(pt2_dir / "mlp32.pt2")
    )


def test_isa_levels_map_to_march_simdlen_and_cpu_features(tmp_path):
    levels = {"x86-64-v2": (128, ["sse4_2"]), "x86-64-v3": (256, V3), "x86-64-v4": (512, V3 + AVX512)}
    for level, (simdlen, features) in levels.items():
        lacking = not set(features) <= set(_pt2.host_cpu_features())
        with pytest.warns(UserWarning, match="cannot run here") if lacking else contextlib.nullcontext():
            info, configs = _pt2.engine(level, machine="x86_64")
        assert configs == {"cpp.march": level, "cpp.simdlen": simdlen}
        assert (info["cpu_isa"], info["simdlen"], info["cpu_features"]) == (level, simdlen, features)
    info, configs = _pt2.engine("x86-64-v4", machine="aarch64")  # other machines build for themselves
    assert configs == {} and (info["machine"], info["cpu_isa"], info["cpu_features"]) == (
        "aarch64",
        "native",
        [],
    )
    with pytest.raises(ValueError, match="cpu_isa must be one of"):
        _pt2.engine("haswell")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 bmi1 bmi2 fma avx512f\n")
    assert _pt2.host_cpu_features(cpuinfo) == ["sse4_2", "avx", "avx2", "fma", "bmi", "bmi2", "avx512f"]
    assert _pt2.host_cpu_features(tmp_path / "absent") == []


@slow
def test_pt2_compile_output_goes_to_the_chosen_cache_dir_only(pt2_dir):
    record = _exported(pt2_dir)
    assert record["env_after"] == record["env_before"]  # set for the compile only
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == record["env_before"]
    ours = [p for p in (pt2_dir / "cache").rglob("*_metadata.json") if record["token"] in p.read_text()]
    assert len(ours) >= 3, "each compile's metadata should be in the chosen cache dir"
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    default = os.path.join(default_cache_dir(), "")
    strays = [p for p in _walk(default) if p.endswith("_metadata.json") and record["token"] in _read(p)]
    assert strays == [], f"compile output in inductor's default cache {default}"


def _walk(top):
    for root, _, files in os.walk(top):
        yield from (os.path.join(root, f) for f in files)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def test_cache_dir_is_the_argument_then_the_environment_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PYCLOSURE_CACHE_DIR", raising=False)
    assert _pt2.cache_dir() == str(tmp_path / ".cache" / "pyclosure" / "inductor")
    monkeypatch.setenv("PYCLOSURE_CACHE_DIR", str(tmp_path / "env"))
    assert _pt2.cache_dir() == str(tmp_path / "env")
    assert _pt2.cache_dir(tmp_path / "arg") == str(tmp_path / "arg")


@pytest.mark.parametrize("env_before", [None, "/elsewhere"])
def test_failed_compile_leaves_no_package_no_temp_and_the_environment_as_it_was(
    monkeypatch, tmp_path, env_before
):
    seen = {}

    def half_written(program, package_path, inductor_configs):
        seen["cache"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        seen["configs"] = inductor_configs
        with open(package_path, "wb") as f:
            f.write(b"PK\x03\x04 half a package")
        raise RuntimeError("compiler crashed")

    if env_before is None:  # inductor (even torch.export) sets it when unset: export must unset it again
        monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", env_before)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", half_written)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="AOTInductor could not compile Sequential: compiler crashed"):
        pyclosure.export(mlp32(), out / "m.pt2", torch.zeros(4, 30), cache_dir=tmp_path / "cache")
    assert list(out.iterdir()) == []
    assert (
        seen["cache"] == str(tmp_path / "cache") and os.environ.get("TORCHINDUCTOR_CACHE_DIR") == env_before
    )
    contract = json.loads(seen["configs"]["aot_inductor.metadata"]["pyclosure_contract"])
    assert contract["format"] == "pt2" and contract["module"] == "Sequential"
    assert seen["configs"]["cpp.dynamic_threads"] is True


def test_a_module_torch_export_rejects_is_named_and_leaves_no_file(tmp_path):
    class NotExportable(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.sin(x.numpy()))  # leaves the graph: export cannot trace it

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match=r"torch.export could not export NotExportable"):
        pyclosure.export(NotExportable(), out / "bad.pt2", torch.zeros(2, 3), cache_dir=tmp_path / "cache")
    assert list(out.iterdir()) == []


def test_format_follows_the_suffix_and_rejects_mismatched_keywords(tmp_path):
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"must be named \*\.pt2"):
        pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt", x, format="pt2")
    with pytest.raises(ValueError, match=r"a .pt2 name is for AOTInductor packages"):
        pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt2", x, format="torchscript")
    with pytest.raises(ValueError, match="method= applies to format='torchscript' only"):
        pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt2", x, method="trace")
    with pytest.raises(ValueError, match="apply to format='pt2' only"):
        pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt", x, cpu_isa="native")
    with pytest.raises(ValueError, match="cpu_isa must be one of"):
        pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt2", x, cpu_isa="avx2")
    timings = {}
    c = pyclosure.export(Affine(3, 2, torch.float64), tmp_path / "a.pt", x, timings=timings)
    assert c["format"] == "torchscript" and "engine" not in c and list(timings) == ["export_s"]
    assert list(tmp_path.iterdir()) == [tmp_path / "a.pt"]


@slow
def test_timings_and_sizes_are_recorded(pt2_dir):
    for name, entry in _exported(pt2_dir)["packages"].items():
        assert entry["timings"]["export_s"] > 0 and entry["timings"]["compile_s"] > 0, name
        assert entry["bytes"] == (pt2_dir / name).stat().st_size


@slow
def test_read_contract_says_what_a_bad_pt2_file_is(pt2_dir):
    with pytest.raises(ModelFormatError, match=r"not a readable AOTInductor package .truncated or corrupt"):
        read_contract(pt2_dir / "truncated.pt2")
    with pytest.raises(ModelFormatError, match=r"a TorchScript file named .pt2"):
        read_contract(pt2_dir / "torchscript_named.pt2")
    with pytest.raises(
        ModelFormatError,
        match=r"a torch.export archive, not an AOTInductor package; compile it "
        r"with pyclosure.export\(..., format='pt2'\)",
    ):
        read_contract(pt2_dir / "export_archive.pt2")
    assert read_contract(pt2_dir / "no_contract.pt2") is None
    assert read_package_metadata(pt2_dir / "no_contract.pt2")["AOTI_DEVICE_KEY"] == "cpu"


@slow
def test_info_reads_a_package_without_loading_its_library(pt2_dir, tmp_path):
    def garbage_library(name, data):
        return b"\x7fELF not a library" if name.endswith(".so") else data

    broken = rewrite_zip(pt2_dir / "mlp32.pt2", tmp_path / "mlp32.pt2", garbage_library)
    with pytest.raises(Exception):  # noqa: B017 (the library is what a load would run; torch names no error type)
        torch._inductor.aoti_load_package(str(broken))
    proc = subprocess.run(cli("info", broken), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "an AOTInductor package (native code, not loaded to read this)" in proc.stdout
    assert "batch sizes: 1.." in proc.stdout and "float32  torch (batch, 30)" in proc.stdout
    out = subprocess.run(
        cli("info", pt2_dir / "no_contract.pt2"), capture_output=True, text=True, check=True
    ).stdout
    assert "no pyclosure contract" in out
    proc = subprocess.run(
        cli("info", pt2_dir / "export_archive.pt2"), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "a torch.export archive" in proc.stderr


def _max_rel_diff(got, want):
    return max(float((g - w).abs().max() / w.abs().max().clamp_min(1e-300)) for g, w in zip(got, want))


@slow
def test_package_outputs_match_eager_torch_for_batches_1_to_4096(pt2_dir):
    cases = {
        "mlp32.pt2": (mlp32(), [30], torch.float32, 1e-6),
        "mlp64.pt2": (mlp(), [16], torch.float64, 1e-13),
        "two_in_two_out.pt2": (TwoInTwoOut(), [3, 2], torch.float64, 1e-13),
    }
    gen = torch.Generator().manual_seed(0)
    for name, (module, widths, dtype, rtol) in cases.items():
        package = _aoti.load_package(pt2_dir / name)
        worst = 0.0
        for batch in (1, 2, 3, 17, 256, 4096):
            args = [torch.randn(batch, w, generator=gen, dtype=dtype) for w in widths]
            with torch.no_grad():
                want = module(*args)
            want = want if isinstance(want, tuple) else (want,)
            got = package(*args)
            assert [g.shape for g in got] == [w.shape for w in want]
            worst = max(worst, _max_rel_diff(got, want))
        assert worst <= rtol, f"{name}: max relative difference {worst:.3g} over batches 1..4096"


@slow
def test_load_package_checks_calls_and_the_machine_against_the_contract(pt2_dir, tmp_path):
    package = _aoti.load_package(pt2_dir / "two_in_two_out.pt2")
    u, t = torch.zeros(5, 3, dtype=torch.float64), torch.zeros(5, 2, dtype=torch.float64)
    with pytest.raises(ArgumentCountError):
        package(u)
    with pytest.raises(DtypeError, match=r"input t: dtype torch.float32"):
        package(u, t.float())
    with pytest.raises(ShapeError, match="input t: extent 4 of dim 1, the contract says 2"):
        package(u, torch.zeros(5, 4, dtype=torch.float64))
    with pytest.raises(ModelFormatError, match="without a pyclosure contract"):
        _aoti.load_package(pt2_dir / "no_contract.pt2")

    def other_machine(name, data):
        if not name.endswith("_metadata.json"):
            return data
        record = json.loads(data)
        contract = json.loads(record["pyclosure_contract"])
        contract["engine"]["machine"] = "riscv64"
        record["pyclosure_contract"] = json.dumps(contract)
        return json.dumps(record).encode()

    moved = rewrite_zip(pt2_dir / "mlp32.pt2", tmp_path / "mlp32.pt2", other_machine)
    with pytest.raises(ModelFormatError, match="built for riscv64"):
        _aoti.load_package(moved)


def test_describe_shows_the_engine_and_the_sizes_a_package_accepts():
    contract = {
        "schema": "pyclosure.contract/1",
        "format": "pt2",
        "batch_range": [1, None],
        "engine": {
            "device": "cpu",
            "machine": "x86_64",
            "cpu_isa": "x86-64-v2",
            "cpu_features": ["sse4_2"],
            "simdlen": 128,
            "torch_version": "2.13.0",
        },
        "inputs": [{"name": "q", "dtype": "float64", "shape": [-1, 3], "ranges": [[2, None], None]}],
        "outputs": [{"name": "f", "dtype": "float64", "shape": [{"input": "q", "dim": 0, "offset": 1}]}],
    }
    text = describe(contract)
    assert "native cpu code for x86_64 x86-64-v2 (needs sse4_2; simdlen 128)" in text
    assert "batch sizes: 1.." in text and "torch (batch, :, 3)  sizes dim 0: 2.." in text
    assert "format: torchscript" in describe({**contract, "format": "torchscript", "engine": None})
