"""The Fortran face (use nn_closure): bit-for-bit against torch, layout, sections, errors."""

import json
import pathlib
import subprocess

import numpy as np
import pytest
import torch

FORTRAN = pathlib.Path(__file__).parents[1] / "fortran"


def _run_program(name, done_line, model_dir, build_fortran, tmp_path_factory):
    """Build tests/fortran/<name>.f90 (with its case_support module), run it on the fixture models; the
    folder it wrote its arrays to."""
    exe = build_fortran(FORTRAN / "case_support.f90", FORTRAN / f"{name}.f90", name=name)
    out = tmp_path_factory.mktemp(f"{name}_out")
    proc = subprocess.run([str(exe), str(model_dir), str(out)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert done_line in proc.stdout
    return out


@pytest.fixture(scope="module")
def forward_run(model_dir, build_fortran, tmp_path_factory):
    return _run_program("forward_cases", "all cases ran", model_dir, build_fortran, tmp_path_factory)


def _read(out, name, fortran_shape, dtype=np.float64):
    """A Fortran array written as a raw stream, viewed as torch sees it (shape reversed)."""
    flat = np.fromfile(out / f"{name}.bin", dtype=dtype)
    return flat.reshape(fortran_shape[::-1])


def _torch(model_dir, name, *arrays):
    torch.set_num_threads(torch.get_num_threads())
    module = torch.jit.load(str(model_dir / name))
    with torch.no_grad():
        out = module(*[torch.from_numpy(a.copy()) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize(
    "case, model, xshape, yshape, dtype",
    [
        ("rank2_64", "affine64.pt", (3, 5), (2, 5), np.float64),
        ("rank2_32", "affine32.pt", (3, 5), (2, 5), np.float32),
        ("rank1", "pointwise64.pt", (7,), (7,), np.float64),
        ("rank3", "affine_rank3.pt", (3, 4, 6), (2, 4, 6), np.float64),
    ],
)
def test_fortran_forward_equals_torch_bit_for_bit(forward_run, model_dir, case, model, xshape, yshape, dtype):
    x = _read(forward_run, f"{case}_x", xshape, dtype)
    y = _read(forward_run, f"{case}_y", yshape, dtype)
    (ref,) = _torch(model_dir, model, x)
    assert ref.shape == y.shape
    assert np.array_equal(y, ref), f"max diff {np.abs(y - ref).max()}"


def test_fortran_two_inputs_two_outputs_equal_torch_bit_for_bit(forward_run, model_dir):
    u = _read(forward_run, "multi_u", (3, 4))
    t = _read(forward_run, "multi_t", (2, 4))
    flux = _read(forward_run, "multi_flux", (3, 4))
    s = _read(forward_run, "multi_s", (1, 4))
    ref_flux, ref_s = _torch(model_dir, "two_in_two_out.pt", u, t)
    assert np.array_equal(flux, ref_flux)
    assert np.array_equal(s, ref_s)


# plain_affine64.pt: y = W x + b over the features, known by hand
W, B = np.arange(1.0, 7.0).reshape(2, 3) / 8, np.array([-0.5, -0.25])


def test_fortran_layout_is_shape_reversed_without_transpose(forward_run):
    # x(3, 5) in Fortran holds x[j][i] in memory: torch sees (5 columns, 3 features),
    # and nn_forward writes y(k, j) = sum_i W(k, i) x(i, j) + b(k) into y(2, 5).
    x = _read(forward_run, "plain_x", (3, 5))
    assert x.shape == (5, 3)
    assert np.array_equal(x, np.arange(1.0, 16.0).reshape(5, 3))  # Fortran x(i, j) = i + 3 (j - 1)
    y = _read(forward_run, "plain_y", (2, 5))
    for j in range(5):
        for k in range(2):
            assert y[j, k] == x[j] @ W[k] + B[k], f"Fortran y({k + 1}, {j + 1})"


ERROR_CASES = {
    "missing_file": "NN_ERR_IO",
    "not_torchscript": "NN_ERR_FORMAT",
    "truncated": "NN_ERR_FORMAT",
    "wrong_rank": "NN_ERR_RANK",
    "wrong_shape": "NN_ERR_SHAPE",
    "wrong_dtype": "NN_ERR_DTYPE",
    "wrong_nargs": "NN_ERR_NARGS",
    "unloaded": "NN_ERR_HANDLE",
    "freed": "NN_ERR_HANDLE",
    "double_free": "NN_OK",
    "cuda_without_cuda": "NN_ERR_NO_DEVICE",
    "malformed_device": "NN_ERR_BAD_DEVICE",
    "rank6": "NN_ERR_RANK",
    "no_contract_wrong_nargs": "NN_ERR_NARGS",
    "no_contract_runs": "NN_OK",
    "record_into_a_file": "NN_ERR_RECORD",
    "record_every_zero": "NN_ERR_ARGUMENT",
    "record_twice": "NN_ERR_RECORD",
    "record_bad_name": "NN_ERR_ARGUMENT",
    "record_rank6": "NN_ERR_RANK",
    "record_stop": "NN_OK",
}
MESSAGE_WORDS = {
    "missing_file": "cannot open",
    "not_torchscript": "not a loadable TorchScript",
    "truncated": "not a loadable TorchScript",
    "wrong_rank": "expected rank 2",
    "wrong_shape": "expected shape (3, :) in Fortran order, got (4, 5)",
    "wrong_dtype": "expected float64, got float32",
    "wrong_nargs": "expected 1 input(s) (x), got 2",
    "unloaded": "model handle is NULL: not loaded, or already freed",
    "freed": "model handle is not a live model",
    "cuda_without_cuda": "CUDA is not available",
    "malformed_device": "malformed device string 'gpu:0'",
    "rank6": "rank 6",
    "no_contract_wrong_nargs": "forward takes 1 input(s), got 2",
    "record_into_a_file": "not_a_dir",
    "record_every_zero": "every must be >= 1",
    "record_twice": "already recording into 'records_f'",
    "record_bad_name": "record array name 'no spaces'",
    "record_rank6": "rank 6",
}


@pytest.fixture(scope="module")
def error_run(model_dir, build_fortran, tmp_path_factory):
    exe = build_fortran(FORTRAN / "error_cases.f90", name="error_cases")
    proc = subprocess.run(
        [str(exe), str(model_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path_factory.mktemp("error_cases"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _parse(stdout):
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("case|"):
            _, name, status, recovered, message = line.split("|", 4)
            rows[name.strip()] = (int(status), recovered.strip(), message.strip())
    return rows


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_fortran_bad_input_gives_its_status_and_message_and_next_call_works(error_run, case):
    from pyclosure.errors import STATUS_NAMES

    rows = _parse(error_run)
    assert case in rows, f"case {case} did not run:\n{error_run}"
    status, recovered, message = rows[case]
    assert status == STATUS_NAMES[ERROR_CASES[case].replace("NN_", "NNC_")], message
    if case in MESSAGE_WORDS:
        assert MESSAGE_WORDS[case] in message
    assert recovered == "next-call-ok"


def test_fortran_without_stat_stops_with_message_and_nonzero_exit(model_dir, build_fortran):
    exe = build_fortran(FORTRAN / "stop_without_stat.f90", name="stop_without_stat")
    proc = subprocess.run(
        [str(exe), str(model_dir / "missing.pt")], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "nn_load: cannot open model file" in proc.stderr + proc.stdout
    assert "unreachable" not in proc.stdout


def test_fortran_records_calls_and_host_arrays_numpy_reads_them(model_dir, build_fortran, tmp_path):
    exe = build_fortran(FORTRAN / "record_arrays.f90", name="record_arrays")
    proc = subprocess.run(
        [str(exe), str(model_dir / "affine64.pt"), str(tmp_path / "rec")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "recorded" in proc.stdout, proc.stdout + proc.stderr
    files = sorted(p.name for p in (tmp_path / "rec").glob("record_*.npz"))
    assert files == ["record_000000001.npz", "record_000000003.npz"]
    i, j = np.meshgrid(np.arange(1, 5), np.arange(1, 7), indexing="ij")
    g = (i + 10 * j).astype(np.float64)  # g(i, j) in Fortran index order
    x = np.array([[0.1 * a + b for a in range(1, 4)] for b in range(1, 6)])  # torch order (5, 3)
    first = np.load(tmp_path / "rec" / "record_000000001.npz", allow_pickle=False)
    assert first["host.grid"].shape == (4, 6) and np.array_equal(first["host.grid"], g)
    assert np.array_equal(first["host.section"], g[0:4:2, ::-1])
    assert first["host.dt"].shape == () and first["host.dt"] == 0.5
    assert np.array_equal(first["in.x"], x)
    assert np.array_equal(
        first["out.output0" if "out.output0" in first else "out.y"],
        torch.jit.load(str(model_dir / "affine64.pt"))(torch.from_numpy(x)).numpy(),
    )
    third = np.load(tmp_path / "rec" / "record_000000003.npz", allow_pickle=False)
    assert sorted(third.files) == sorted(
        ["meta.json", "in.x", next(k for k in first.files if k.startswith("out."))]
    )
    # an expression as input (2 * x): gfortran 12 gives it lower bounds 0 inside nn_closure
    assert np.array_equal(third["in.x"], 2 * x)
    out = next(k for k in first.files if k.startswith("out."))
    assert np.array_equal(
        third[out], torch.jit.load(str(model_dir / "affine64.pt"))(torch.from_numpy(2 * x)).numpy()
    )
    summary = json.loads((tmp_path / "rec" / "recording.json").read_text())
    assert summary["state"] == "stopped" and summary["calls_seen"] == 3 and summary["max_bytes"] == 16 << 20


@pytest.fixture(scope="module")
def fallback_run(model_dir, build_fortran, tmp_path_factory):
    return _run_program("fallback_forms", "all forms ran", model_dir, build_fortran, tmp_path_factory)


def _flags(out, name):
    return np.fromfile(out / f"{name}.bin", dtype="<i4").tolist()


def test_fortran_single_array_form_gives_the_fallback_in_the_nan_column_only(fallback_run):
    # nn_forward(m, x, y, fallback=fb, flags=f) on plain_affine64, NaN in column 3
    x = _read(fallback_run, "single_x", (3, 5))
    y = _read(fallback_run, "single_y", (2, 5))
    fb = _read(fallback_run, "single_fb", (2, 5))
    assert np.isnan(x[2]).any() and np.isfinite(np.delete(x, 2, axis=0)).all()
    assert np.array_equal(y[2], fb[2]) and np.array_equal(fb[2], [105.0, 106.0])
    for j in (0, 1, 3, 4):
        assert np.array_equal(y[j], x[j] @ W.T + B), f"column {j + 1}"
    assert _flags(fallback_run, "single_flags") == [0, 0, 3, 0, 0]  # NaN input, hence NaN output


@pytest.mark.parametrize("form", ["two", "one"])
def test_fortran_general_form_gives_each_fallback_array_to_its_output(fallback_run, model_dir, form):
    # two_in_two_out (u, t) -> (flux, s) under nonfinite=fallback, NaN in column 2 of u;
    # "two": a fallback array per output; "one": for flux only, s keeps the network's NaN
    u, t = _read(fallback_run, "multi_u", (3, 4)), _read(fallback_run, "multi_t", (2, 4))
    flux, s = _read(fallback_run, f"{form}_flux", (3, 4)), _read(fallback_run, f"{form}_s", (1, 4))
    fb_flux, fb_s = _read(fallback_run, "multi_fb_flux", (3, 4)), _read(fallback_run, "multi_fb_s", (1, 4))
    assert np.array_equal(flux[1], fb_flux[1]) and np.array_equal(fb_flux[1], [204.0, 205.0, 206.0])
    if form == "two":
        assert s[1, 0] == fb_s[1, 0] == 302.0
    else:
        assert np.isnan(s[1, 0])
    clean = [0, 2, 3]
    ref_flux, _ = _torch(model_dir, "two_in_two_out.pt", u, t)  # the same batch, as the bridge ran it
    assert np.array_equal(flux[clean], ref_flux[clean])
    assert np.array_equal(s[clean], (u[clean] ** 2).sum(1, keepdims=True) - t[clean, :1])  # dyadic: exact
    assert _flags(fallback_run, f"{form}_flags") == [0, 3, 0, 0]
