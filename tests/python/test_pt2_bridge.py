"""AOTInductor packages (.pt2) through the bridge: Fortran and C hosts built with
``pyclosure config`` flags get exactly what Python's AOTInductor loader gets;
a package is unpacked under $TMPDIR and nothing of it is left there; a trusted
list refuses a package before its library is loaded.

The packages are conftest's ``pt2_dir`` (compiled once per session); nothing
here compiles one.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from conftest import missing_cpu_feature

from pyclosure import _aoti, errors
from pyclosure.bridge import Model
from pyclosure.contract import read_contract

TESTS = pathlib.Path(__file__).parents[1]
BATCHES = [1, 2, 3, 7, 64, 256, 4096]
PACKAGES = ["mlp32.pt2", "mlp64.pt2", "two_in_two_out.pt2"]
pytestmark = pytest.mark.slow  # every test waits for pt2_dir's compiles


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _split(raw, contract, batch):
    """The arrays of one host call, in the file's order: the inputs, then the outputs (C order)."""
    arrays, offset = [], 0
    for io in contract["inputs"] + contract["outputs"]:
        dtype = np.dtype(io["dtype"])
        shape = (batch, *io["shape"])
        count = int(np.prod(shape))
        arrays.append(np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape))
        offset += count * dtype.itemsize
    assert offset == len(raw), "the host wrote another amount of data than the contract implies"
    return arrays[: len(contract["inputs"])], arrays[len(contract["inputs"]) :]


def _assert_as_python_loader(pt2_dir, name, files, threads=1):
    """Every host call's outputs equal pyclosure._aoti.load_package's on its inputs, bit for bit,
    with the host's thread count (the bridge's default is one): a package's GEMM may sum in
    another order on another thread count (on AVX-512 machines torch's does, at 7 rows)."""
    contract = read_contract(pt2_dir / name)
    package = _aoti.load_package(pt2_dir / name)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _compare_calls(package, contract, name, files)
    finally:
        torch.set_num_threads(before)


def _compare_calls(package, contract, name, files):
    for batch, path in files.items():
        inputs, outputs = _split(path.read_bytes(), contract, batch)
        expected = package(*[torch.from_numpy(x.copy()) for x in inputs])
        assert len(expected) == len(outputs)
        for k, (got, want) in enumerate(zip(outputs, expected)):
            assert got.tobytes() == want.numpy().tobytes(), f"{name}, batch {batch}, output {k}"


def test_fortran_host_gets_python_aoti_loaders_outputs_bit_for_bit(pt2_dir, build_fortran, tmp_path):
    exe = build_fortran(TESTS / "fortran" / "model_host.f90", name="model_host", extra=["-std=f2018"])
    proc = subprocess.run(
        [str(exe), str(pt2_dir), str(tmp_path), "1", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model_host: done" in proc.stdout
    for name in PACKAGES:
        assert f"engine {name} aotinductor" in proc.stdout
        stem = name.removesuffix(".pt2")
        _assert_as_python_loader(pt2_dir, name, {n: tmp_path / f"{stem}_{n}.bin" for n in BATCHES})


@pytest.mark.parametrize("name", PACKAGES)
def test_c_host_gets_python_aoti_loaders_outputs_bit_for_bit(pt2_dir, build_c, tmp_path, name):
    exe = build_c(TESTS / "c" / "pt2_run.c", name="pt2_run", extra=["-lm"])
    prefix = tmp_path / name.removesuffix(".pt2")
    proc = subprocess.run(
        [str(exe), str(pt2_dir / name), str(prefix), *map(str, BATCHES)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == "engine aotinductor" and "pt2_run: done" in proc.stdout
    _assert_as_python_loader(pt2_dir, name, {n: pathlib.Path(f"{prefix}_{n}.bin") for n in BATCHES})


BAD_PACKAGES = [
    "truncated.pt2",
    "torchscript_named.pt2",
    "export_archive.pt2",
    "no_contract.pt2",
    "needs_missing_feature.pt2",
    "needs_made_up_feature.pt2",
    "built_for_cuda.pt2",
    "garbage_library.pt2",
]
# Run in a fresh process whose TMPDIR is the test's folder: prints what the
# folder holds before anything is loaded, while packages are loaded, after
# they are freed, and after each failed load.
SCRATCH_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pyclosure.bridge import Model
    from pyclosure.errors import ClosureError
    tmp, d = os.environ["TMPDIR"], sys.argv[1]
    seen = {"before": sorted(os.listdir(tmp))}
    models = [Model(os.path.join(d, name)) for name in json.loads(sys.argv[2])]
    seen["loaded"] = sorted(os.listdir(tmp))
    for m in models:
        m.close()
    seen["freed"] = sorted(os.listdir(tmp))
    for name in json.loads(sys.argv[3]):
        try:
            Model(os.path.join(d, name)).close()
            seen[name] = "loaded"
        except ClosureError as e:
            seen[name] = [e.status, sorted(os.listdir(tmp))]
    print(json.dumps(seen))
""")


def test_packages_leave_nothing_in_tmpdir_after_free_or_failed_load(pt2_dir, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    good = ["plain_affine64.pt2", "cells64.pt2", "mlp64.pt2"]
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRATCH_SCRIPT, str(pt2_dir), json.dumps(good), json.dumps(BAD_PACKAGES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["before"] == []
    # one private folder per loaded package, where the bridge says it unpacks them
    assert len(seen["loaded"]) == len(good) and all(n.startswith("pyclosure-pt2-") for n in seen["loaded"])
    assert seen["freed"] == []
    format_error = errors.STATUS_NAMES["NNC_ERR_FORMAT"]
    for name in BAD_PACKAGES:
        if name == "needs_missing_feature.pt2" and not missing_cpu_feature():
            continue  # this CPU has every feature the case could ask for: no such package
        assert seen[name] == [format_error, []], name


def _host(build_fortran):
    # tests/fortran/host_program.f90 as it is: loads its argument, runs W x + b, checks it by hand
    return build_fortran(TESTS / "fortran" / "host_program.f90", name="host_program_pt2")


def _run_host(exe, package, trusted=None):
    env = {k: v for k, v in os.environ.items() if k != "PYCLOSURE_TRUSTED_SHA256"}
    if trusted is not None:
        env["PYCLOSURE_TRUSTED_SHA256"] = trusted
    return subprocess.run(
        [str(exe), str(package)], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_unedited_fortran_host_refuses_a_package_not_on_the_trusted_list_in_its_environment(
    pt2_dir, build_fortran
):
    exe = _host(build_fortran)
    package = pt2_dir / "plain_affine64.pt2"
    ran = _run_host(exe, package)
    assert ran.returncode == 0 and "host_program flux:" in ran.stdout, ran.stdout + ran.stderr
    refused = _run_host(exe, package, trusted=_sha256(pt2_dir / "mlp64.pt2"))
    assert refused.returncode != 0 and "host_program flux:" not in refused.stdout
    assert "is not on the trusted list" in refused.stderr and _sha256(package) in refused.stderr
    trusted = _run_host(exe, package, trusted=f"{_sha256(pt2_dir / 'mlp64.pt2')}:{_sha256(package)}")
    assert trusted.returncode == 0 and "host_program flux:" in trusted.stdout, trusted.stdout + trusted.stderr


def test_trusted_list_refuses_a_package_before_its_library_is_loaded(pt2_dir, build_fortran, monkeypatch):
    # garbage_library.pt2: plain_affine64.pt2 with its wrapper .so replaced by garbage bytes.
    # Loading its library fails; a trusted list without it refuses it before that.
    bad, other = pt2_dir / "garbage_library.pt2", _sha256(pt2_dir / "plain_affine64.pt2")
    monkeypatch.delenv("PYCLOSURE_TRUSTED_SHA256", raising=False)
    statuses = {}
    for label, trusted in [("no list", None), ("list without it", other), ("list with it", _sha256(bad))]:
        with pytest.raises(errors.ClosureError) as e:
            Model(bad, trusted_sha256=trusted)
        statuses[label] = (e.value.status, str(e.value))
    for label in ("no list", "list with it"):
        status, message = statuses[label]
        assert status == errors.STATUS_NAMES["NNC_ERR_FORMAT"], message
        assert "the AOTInductor package could not be loaded" in message and "invalid ELF header" in message
    assert statuses["list without it"][0] == errors.STATUS_NAMES["NNC_ERR_UNTRUSTED"]
    assert "nothing of it was loaded" in statuses["list without it"][1]
    # the same through the environment of the unedited Fortran host
    exe = _host(build_fortran)
    assert "the AOTInductor package could not be loaded" in _run_host(exe, bad).stderr
    assert "is not on the trusted list" in _run_host(exe, bad, trusted=other).stderr
    assert "the AOTInductor package could not be loaded" in _run_host(exe, bad, trusted=_sha256(bad)).stderr


def test_package_with_a_record_outside_its_folder_is_refused_and_writes_nothing(
    pt2_dir, tmp_path, monkeypatch
):
    # A zip member named <archive>/../../../escaped.txt: unpacked as named, it would
    # land beside $TMPDIR, outside the package's private folder (a "zip slip").
    package = pt2_dir / "plain_affine64.pt2"
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(package) as old, zipfile.ZipFile(evil, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info))
        archive = old.namelist()[0].split("/")[0]
        new.writestr(f"{archive}/../../../escaped.txt", b"written outside the package's folder\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    with pytest.raises(errors.ModelFormatError, match=r"record '\.\./\.\./\.\./escaped\.txt'"):
        Model(evil)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(scratch.iterdir()) == []
