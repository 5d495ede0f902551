"""End-to-end test of ``pyclosure bench --quick --json`` (the installed CLI, in a subprocess).

The quick run (two models, batches 1 and 256, one thread, every route, about 10-20 s
on 2 cores, plus one AOTInductor compile of mlp32, 30-70 s, unless
``PYCLOSURE_BENCH_CACHE`` holds it) must produce a complete JSON document, every route
must give its reference's output bit for bit (the floor's; for the bridge's .pt2
routes Python's ``aoti_load_package``'s; for the native routes the cffi twin's), and
the allocation counter must have counted (the native routes from C and Fortran: 0).
No timing is asserted: the numbers depend on the machine and on what else runs on it.
"""

import json
import os
import pathlib
import subprocess

import pytest
import torch
from conftest import cli

from pyclosure._native_twin import available_isas
from pyclosure.bench import pt2

TORCHSCRIPT = {"floor", "c", "fortran", "python", "embedded"}
ALL_PT2 = {"c_pt2", "fortran_pt2", "python_pt2"}
PT2 = ALL_PT2 if pt2.unsupported_reason() is None else set()  # packages are built for x86-64-v3
NATIVE = {"c_native", "fortran_native", "python_native"}  # both quick models have a native program
ROUTES = TORCHSCRIPT | PT2 | NATIVE


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "bench.json"
    # One package (mlp32) is compiled per test session, unless the caller names a cache holding it;
    # inductor's compile output goes to the temporary folder too, unless the caller names one.
    env = {
        "PYCLOSURE_BENCH_CACHE": str(folder / "pt2-cache"),
        "PYCLOSURE_CACHE_DIR": str(folder / "inductor"),
        **os.environ,
    }
    proc = subprocess.run(
        cli("bench", "--quick", "--json", out),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def _routes(doc, model):
    """The routes a model ran: the .pt2 ones only for models with a package (quick: mlp32)."""
    has_pt2 = next(m for m in doc["models"] if m["name"] == model)["pt2"]
    return ROUTES if has_pt2 else TORCHSCRIPT | NATIVE


def _configs(doc):
    s = doc["settings"]
    return {(m, t, b) for m in s["models"] for t in s["threads"] for b in s["batches"]}


def test_bench_quick_runs_every_route(quick):
    _, doc = quick
    assert set(doc["routes"]) == ROUTES, doc["skipped_routes"]
    assert set(doc["skipped_routes"]) == (ALL_PT2 - PT2) | {"python_device"}
    assert doc["skipped_routes"]["python_device"] == "arrays on the GPU: only with --device cuda:N"
    assert doc["settings"]["quick"] is True


def test_bench_quick_builds_one_package(quick):
    _, doc = quick
    if not PT2:
        pytest.skip(pt2.unsupported_reason())
    assert {m["name"]: m["pt2"] for m in doc["models"]} == {"mlp32": True, "burgers": False}
    assert all(m["pt2_error"] is None for m in doc["models"])


def test_bench_json_has_every_route_and_config_once(quick):
    _, doc = quick
    got = [(r["model"], r["threads"], r["batch"], r["route"]) for r in doc["results"]]
    want = {(m, t, b, r) for (m, t, b) in _configs(doc) for r in _routes(doc, m)}
    assert sorted(got) == sorted(want)


def test_bench_medians_are_positive_and_ratios_computed(quick):
    _, doc = quick
    floor = {
        (r["model"], r["threads"], r["batch"]): r["median_ns"]
        for r in doc["results"]
        if r["route"] == "floor"
    }
    for r in doc["results"]:
        assert r["calls"] >= 3 and r["rounds"] >= 3
        assert 0 < r["p10_ns"] <= r["median_ns"] <= r["p90_ns"]
        assert r["gflops"] > 0
        assert r["ratio_to_floor"] == pytest.approx(
            r["median_ns"] / floor[(r["model"], r["threads"], r["batch"])]
        )
        if r["route"] == "floor":
            assert r["ratio_to_floor"] == 1.0


def _reference(route):
    return {"c_pt2": "python_pt2", "fortran_pt2": "python_pt2"}.get(
        route, "twin" if route in NATIVE else "floor"
    )


def test_bench_every_route_gives_its_references_output_bit_for_bit(quick):
    _, doc = quick
    got = {(a["model"], a["threads"], a["batch"], a["route"]) for a in doc["agreement"]}
    # "twin": the cffi twin on the native program, compared with the floor for information
    assert got == {(m, t, b, r) for (m, t, b) in _configs(doc) for r in _routes(doc, m) | {"twin"}}
    for a in doc["agreement"]:
        assert a["reference"] == _reference(a["route"]), a
        assert a["must_equal"] == (a["route"] not in ("python_pt2", "twin")), a
        if a["must_equal"]:
            assert a["bitwise_equal"], a
        assert a["values"] > 0


def test_bench_pt2_package_is_close_to_the_torchscript_floor(quick):
    # Other kernels (inductor's, not libtorch's), so not bit for bit: float32 rounding only.
    _, doc = quick
    rows = [a for a in doc["agreement"] if a["route"] == "python_pt2"]
    assert len(rows) == (2 if PT2 else 0)
    for a in rows:
        assert a["max_abs_diff"] < 1e-5, a


def test_bench_native_bridge_routes_equal_the_cffi_twin(quick):
    # The bridge's native engine and the twin run the same C kernels on the same program.
    _, doc = quick
    rows = [a for a in doc["agreement"] if a["route"] in NATIVE]
    assert {(a["model"], a["batch"]) for a in rows} == {
        (m, b) for m in ("mlp32", "burgers") for b in (1, 256)
    }
    assert all(a["bitwise_equal"] and a["must_equal"] for a in rows), rows


def test_bench_native_program_is_close_to_the_torchscript_floor(quick):
    # Other kernels (the native ones: a polynomial tanh, another summation order), so not bit for
    # bit; cbridge/native/README.md bounds the difference in ulps of each layer, far below these.
    _, doc = quick
    rows = [a for a in doc["agreement"] if a["route"] == "twin"]
    assert len(rows) == 4
    for a in rows:
        assert a["max_abs_diff"] < (1e-5 if a["model"] == "mlp32" else 1e-12), a


def test_bench_counts_allocations_of_every_route(quick):
    _, doc = quick
    rows = doc["allocations"]
    assert {r["route"] for r in rows} == ROUTES
    for r in rows:
        if r["route"] in ("c_native", "fortran_native"):
            continue  # nothing to count: see the next test
        assert r["allocs_per_call"] is not None and r["allocs_per_call"] > 0, r
        assert r["bytes_per_call"] > 0


def test_bench_native_routes_allocate_nothing_per_call(quick):
    # The native engine's call path from C and Fortran: buffers made at load, none per call.
    _, doc = quick
    rows = [r for r in doc["allocations"] if r["route"] in ("c_native", "fortran_native")]
    assert {(r["route"], r["batch"]) for r in rows} == {
        (route, b) for route in ("c_native", "fortran_native") for b in (1, 16)
    }
    for r in rows:
        assert r["allocs_per_call"] == 0 and r["bytes_per_call"] == 0, r
    assert next(t for t in doc["targets"] if "native program" in t["target"])["met"] is True


def test_bench_bridge_on_torchscript_allocates_about_what_the_floor_does(quick):
    # Measured: 56 per mlp32 call on each of the floor, C and Fortran (libtorch 2.13);
    # before the per-call vectors and strings of the checks went, C 80 and Fortran 86.
    # The slack of 2 leaves room for another libtorch, not for a vector per call.
    _, doc = quick
    allocs = {(r["batch"], r["route"]): r["allocs_per_call"] for r in doc["allocations"]}
    for (batch, route), n in allocs.items():
        if route in ("c", "fortran"):
            assert n <= allocs[(batch, "floor")] + 2, (batch, route, n, allocs[(batch, "floor")])


def test_bench_prints_the_table_and_the_targets(quick):
    proc, doc = quick
    assert "| threads | batch | floor us | floor GFLOP/s |" in proc.stdout
    assert "targets:" in proc.stdout
    assert len(doc["targets"]) == 7
    assert all(t["met"] is not None for t in doc["targets"][: 6 if PT2 else 4])
    assert doc["targets"][6]["met"] is not None
    if PT2:
        assert "AOTInductor package (.pt2) against TorchScript" in proc.stdout
    assert "Native engine (.nnp) through the bridge" in proc.stdout


def test_bench_reports_the_native_routes_against_the_machine_limits(quick):
    # Ratios to the floor and to TorchScript per batch, and the fractions of the core's FMA peak
    # and L2 stream (measured in the same run where bench_native runs: x86-64 with AVX2 and FMA).
    _, doc = quick
    assert {m["name"]: m["native"] for m in doc["models"]} == {"mlp32": True, "burgers": True}
    rows = [r for r in doc["results"] if r["route"] in NATIVE]
    assert len(rows) == 3 * 2 * 2
    if doc["limits"] is None:
        pytest.skip("no machine limits here (bench_native not built, or no AVX2 and FMA)")
    assert doc["limits"]["peak_gflops_f32"] > 0 and doc["limits"]["stream_gbs"] > 0
    assert doc["limits"]["isa"] == available_isas()[-1]
    for r in rows:
        assert 0 < r["fma_fraction"] and 0 < r["l2_fraction"], r


def test_native_bench_times_each_instruction_set_in_the_same_rounds(tmp_path):
    # python -m pyclosure.bench.native --isa ...: a row per batch and ISA, naming the kernels
    # that ran; the machine's peak is the widest vectors', each width's beside it
    from pyclosure.bench import drivers, native

    if drivers.missing_reason("floor") or not (drivers.package_dir() / "bin" / "bench_native").exists():
        pytest.skip("bench_floor or bench_native is not built")
    isas = available_isas()
    rows, limits = native.measure(
        ["mlp32"],
        [1, 7],
        rounds=2,
        block_seconds=0.002,
        folder=tmp_path,
        progress=lambda line: None,
        isas=["auto", *isas],
    )
    assert [(r["batch"], r["isa"]) for r in rows] == [(b, i) for b in (1, 7) for i in [isas[-1], *isas]]
    assert all(r["ratio"] > 0 and r["max_rel_diff"] < 1e-5 for r in rows)
    assert limits["isa"] == isas[-1]
    if "avx512" in isas:
        assert limits["peak_gflops_f32"] == max(
            limits["peak_avx2_gflops_f32"], limits["peak_avx512_gflops_f32"]
        )
        assert limits["stream_gbs"] == max(limits["stream_avx2_gbs"], limits["stream_avx512_gbs"])
    elif "avx2" in isas:
        assert (
            limits["peak_gflops_f64"] == limits["peak_avx2_gflops_f64"]
            and "peak_avx512_gflops_f64" not in limits
        )


def test_bench_kernels_runs_from_the_source_tree_and_reports_limits_and_load(tmp_path):
    # From the repository root, where `python -m pyclosure.bench.native` would import the
    # unbuilt source package: the installed command runs the kernels' bench there too.
    root = pathlib.Path(__file__).parents[2]
    out = tmp_path / "kernels.json"
    proc = subprocess.run(
        cli("bench", "--kernels", "--models", "mlp32", "--batches", "1", "5", "--rounds", "1", "--json", out),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=root,
    )
    if proc.returncode and "bench_native is not built" in proc.stderr:
        pytest.skip("bench_native is not built")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [(r["model"], r["batch"]) for r in doc["rows"]] == [("mlp32", 1), ("mlp32", 5)]
    assert all(r["ratio"] > 0 and r["max_rel_diff"] < 1e-5 for r in doc["rows"]), doc["rows"]
    assert len(doc["load_average"]) == 2 and "load average" in proc.stdout
    if doc["limits"] is not None:
        assert all(r["fma_fraction"] > 0 and r["l2_fraction"] > 0 for r in doc["rows"])
    refused = subprocess.run(
        cli("bench", "--kernels", "--threads", "2"), capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 2 and "takes no --threads" in refused.stderr


def test_bench_refuses_a_gpu_it_does_not_have():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = subprocess.run(
        cli("bench", "--quick", "--device", "cuda:0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_heap_does_not_grow_with_the_calls_of_the_bridge_routes(quick):
    # The heap in use (mallinfo2) after the counted calls of the C and Fortran routes,
    # minus before: 0 in most runs; a one-off few hundred bytes have been seen (560 once
    # in a quick run on a busy machine), never anything that grows with the calls. A leak
    # of one small block (8 bytes or more) per call would exceed the limit.
    _, doc = quick
    bridge = {"c", "fortran", "c_native", "fortran_native"} | (PT2 - {"python_pt2"})
    rows = [r for r in doc["allocations"] if r["route"] in bridge]
    assert {(r["route"], r["batch"]) for r in rows} == {(route, b) for route in bridge for b in (1, 16)}
    for r in rows:
        assert r["calls"] >= 100, r
        assert 0 <= r["heap_growth_bytes"] < 8 * r["calls"], r


def test_gpu_table_puts_copies_apart_and_the_device_route_beside_the_host_route():
    from pyclosure.bench import report

    def row(route, us, copy=None):
        r = {"model": "mlp32", "threads": 1, "batch": 4096, "route": route, "median_ns": us * 1e3}
        return r | ({"copy_median_ns": copy * 1e3} if copy is not None else {})

    doc = {
        "settings": {"device": "cuda:0", "threads": [1], "batches": [4096]},
        "routes": ["floor", "c", "python_device"],
        "models": [{"name": "mlp32"}],
        "results": [row("floor", 300.0, copy=220.0), row("c", 310.0), row("python_device", 95.0)],
    }
    lines = report.gpu_table(doc)
    assert "| mlp32 | 1 | 4096 | 300.0 | 220.0 | 80.0 | 310.0 | 95.0 | 215.0 |" in lines
    assert report.gpu_table(doc | {"settings": doc["settings"] | {"device": "cpu"}}) == []
