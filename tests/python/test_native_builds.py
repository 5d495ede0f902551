"""The native kernels compiled other ways give the installed twin's bits, and the loader
survives a short fuzzing run under AddressSanitizer and UBSan.

Builds (cbridge/native sources, -ffp-contract=off as always): -O0; -O2 for plain x86-64
(SSE2, so the scalar reference's fma is libm's software fma); -O3 -march=native. Each runs
the scalar kernels and, where the CPU has them, the AVX2 and AVX-512 ones (those files are
always compiled with -mavx2 -mfma and -mavx512f -mavx512dq -mfma). The fuzzer
(tests/c/native_fuzz.c) mutates programs written by export_native for a few seconds; any
out-of-bounds read or undefined behaviour fails it.
"""

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import torch

from pyclosure._native import export_native
from pyclosure._native_twin import ISAS, Program, available_isas
from pyclosure.models import (
    ColumnDownGradientClosure,
    InsulatedColumnFluxClosure,
    NonNegative,
    PeriodicFluxClosure,
    mlp,
)
from pyclosure.normalize import Normalizer

ROOT = pathlib.Path(__file__).parents[2]
NATIVE = ROOT / "cbridge" / "native"
SOURCES = ["load.c", "run.c", "kernels_scalar.c", "sha256.c"]
# the SIMD kernels, each compiled only with its own instruction set's flags (as meson does)
ISA_FLAGS = {"kernels_avx2.c": ["-mavx2", "-mfma"], "kernels_avx512.c": ["-mavx512f", "-mavx512dq", "-mfma"]}
BUILDS = {"O0": ["-O0"], "sse2": ["-O2", "-march=x86-64"], "native": ["-O3", "-march=native"]}

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


def _compile(out, name, main, flags, extra=()):
    objects = []
    for src in SOURCES + [*ISA_FLAGS, str(main)]:
        path = NATIVE / src if not src.startswith("/") else pathlib.Path(src)
        obj = out / f"{name}-{path.stem}.o"
        isa = ISA_FLAGS.get(src, [])
        subprocess.run(
            [
                "cc",
                "-std=c11",
                "-ffp-contract=off",
                *flags,
                *isa,
                *extra,
                f"-I{NATIVE}",
                "-c",
                str(path),
                "-o",
                str(obj),
            ],
            check=True,
            capture_output=True,
        )
        objects.append(str(obj))
    exe = out / name
    subprocess.run(["cc", *extra, *objects, "-lm", "-o", str(exe)], check=True, capture_output=True)
    return exe


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """Programs (MLP with and without a normaliser, periodic, column down-gradient with its
    surface input, a non-negative insulated column, float32 and float64) with inputs."""
    out = tmp_path_factory.mktemp("native_builds")
    torch.manual_seed(7)
    cases = {}
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).split(".")[-1]
        m = torch.nn.Sequential(Normalizer(torch.randn(30), torch.rand(30) + 0.5), *mlp(30, 31, 128, 2))
        cases[f"mlp-{name}"] = (m.to(dtype).eval(), torch.randn(97, 30, dtype=dtype) * 3, 0)
        plain = torch.nn.Sequential(*mlp(30, 31, 128, 2))  # its first dense layer reads the input in place
        cases[f"plain-{name}"] = (plain.to(dtype).eval(), torch.randn(97, 30, dtype=dtype), 0)
        norm = Normalizer(torch.randn(2, 1), torch.rand(2, 1) + 1)
        p = PeriodicFluxClosure(2, 6, 32, 2, input_normalizer=norm)
        cases[f"periodic-{name}"] = (p.to(dtype).eval(), torch.randn(13, 2, 41, dtype=dtype), 41)
        c = ColumnDownGradientClosure(2, 4, 16, padding="zeros", input_normalizer=norm)
        cases[f"column-{name}"] = (c, (torch.randn(11, 2, 23, dtype=dtype), torch.randn(11, dtype=dtype)), 23)
        insulated = NonNegative(InsulatedColumnFluxClosure(None, 1, 4, 16), "relu")
        cases[f"insulated-{name}"] = (insulated, torch.randn(7, 19, dtype=dtype), 19)
    result = {}
    for key, (module, x, ncells) in cases.items():
        path = out / f"{key}.nnp"
        inputs = x if isinstance(x, tuple) else (x,)
        export_native(module.to(inputs[0].dtype).eval(), path, tuple(a[:4] for a in inputs))
        for k, a in enumerate(inputs):
            a.numpy().tofile(out / f"{key}.x{k}")
        result[key] = (path, [a.numpy() for a in inputs], ncells)
    return out, result


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_other_builds_give_the_twins_bits(programs, build):
    out, cases = programs
    exe = _compile(out, f"run-{build}", ROOT / "tests" / "c" / "native_run.c", BUILDS[build])
    for key, (path, x, ncells) in cases.items():
        want = Program(path)(*x)
        for isa in (1, 2, 3):  # NNN_ISA_SCALAR, NNN_ISA_AVX2, NNN_ISA_AVX512
            y = out / f"{key}-{build}-{isa}.y"
            args = [path, isa, ncells, len(x[0]), out / f"{key}.x0", y] + (
                [out / f"{key}.x1"] if len(x) > 1 else []
            )
            proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
            if proc.returncode and "not on this CPU" in proc.stderr:
                continue
            assert proc.returncode == 0, proc.stderr
            got = np.fromfile(y, dtype=x[0].dtype).reshape(want.shape)
            assert np.array_equal(got, want), (key, build, isa)


@pytest.mark.parametrize("build", ["sse2", "native"])
def test_simd_kernels_give_the_scalar_bits_on_every_tile_shape(tmp_path, build):
    # tests/c/native_kernels.c: 1 to 29 rows x 1 to 10 output blocks x 10 input widths, each
    # activation, both dtypes, for every SIMD kernel table this CPU runs
    exe = _compile(tmp_path, f"kernels-{build}", ROOT / "tests" / "c" / "native_kernels.c", BUILDS[build])
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    names = {v: k for k, v in ISAS.items()}
    assert [names[i] for i in doc["isas"]] == [n for n in available_isas() if n != "scalar"]
    assert doc["mismatches"] == 0 and doc["cases"] == len(doc["isas"]) * 4 * 2 * (29 * 10 * 10 + 41)


def test_loader_fuzzing_under_sanitizers_finds_nothing(programs):
    out, cases = programs
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    try:
        exe = _compile(out, "fuzz", ROOT / "tests" / "c" / "native_fuzz.c", flags, extra=flags[2:])
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no sanitizer build here: {exc.stderr.decode()[-200:]}")
    seeds = [str(p) for p, _, _ in cases.values()]
    proc = subprocess.run([str(exe), "3", *seeds], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    counts = json.loads(proc.stdout)
    assert counts["refused"] > 0 and counts["accepted"] > 0 and counts["ran"] == counts["accepted"]
