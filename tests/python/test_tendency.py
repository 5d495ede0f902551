"""Tendency closures: contract meaning and certified bound, any grid, and a Fortran host."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
import torch

import pyclosure
from pyclosure.normalize import Normalizer
from pyclosure.pointwise import PointwiseClosure, StencilTendencyClosure
from pyclosure.testing import assert_replays

L96 = pathlib.Path(__file__).parents[2] / "examples" / "lorenz96"


def _pointwise(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(400, 3, dtype=torch.float64) * torch.tensor([3.0, 5.0, 2.0], dtype=torch.float64) + 4.0
    y = torch.randn(400, 1, dtype=torch.float64) * 2.0 - 1.0
    return PointwiseClosure(
        3,
        1,
        hidden=16,
        input_normalizer=Normalizer.fit(x, per="feature"),
        output_normalizer=Normalizer.fit(y, per="feature"),
    ).double().eval(), x


def _largest_ratio(f, x, pairs=2000):
    """Largest |f(a) - f(b)| / |a - b| over random nearby pairs (l2 per sample)."""
    g = torch.Generator().manual_seed(1)
    a = x[torch.randint(len(x), (pairs,), generator=g)]
    b = a + 0.5 * torch.randn(a.shape, generator=g, dtype=a.dtype)
    with torch.no_grad():
        num = (f(a) - f(b)).flatten(1).norm(dim=1)
    return float((num / (a - b).flatten(1).norm(dim=1)).max())


def test_pointwise_closure_contract_says_tendency_with_its_certified_bound(tmp_path):
    closure, x = _pointwise()
    contract = pyclosure.export(closure, tmp_path / "c.pt", example_inputs=(x[:4],))
    out = contract["outputs"][0]
    assert out["name"] == "tendency" and out["meaning"] == {"kind": "tendency", "per": "point"}
    assert contract["lipschitz_bound"] == pytest.approx(closure.lipschitz_bound())
    seen = _largest_ratio(closure, x)
    assert 0 < seen <= contract["lipschitz_bound"]


def test_stencil_tendency_closure_runs_on_any_grid_shift_equivariant_within_its_bound(tmp_path):
    torch.manual_seed(2)
    closure = StencilTendencyClosure(1, stencil=5, hidden=8).double().eval()
    contract = pyclosure.export(
        closure, tmp_path / "s.pt", example_inputs=(torch.randn(2, 16, dtype=torch.float64),)
    )
    assert contract["outputs"][0]["meaning"]["kind"] == "tendency"
    assert contract["inputs"][0]["shape"] == [-1]
    u = torch.randn(3, 24, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            closure(torch.roll(u, 5, -1)), torch.roll(closure(u), 5, -1), rtol=1e-12, atol=1e-12
        )
    assert _largest_ratio(closure, torch.randn(50, 24, dtype=torch.float64)) <= contract["lipschitz_bound"]


def test_tendency_closure_rejects_an_even_stencil():
    with pytest.raises(ValueError, match="stencil must be odd"):
        StencilTendencyClosure(stencil=4)


def _host_twin(closure, nsteps):
    """The Fortran host's coarse L96 run in numpy with the same closure (torch)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("l96", L96 / "l96.py")
    l96 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(l96)
    x = 10.0 + np.sin(np.arange(1, 9, dtype=np.float64))

    def u(v):
        with torch.no_grad():
            return closure(torch.from_numpy(l96.features(v))).numpy()[:, 0]

    for _ in range(nsteps):
        x = l96.coarse_step(x, 0.005, u)
    return x


@pytest.fixture(scope="module")
def l96_host(build_fortran):
    return build_fortran(L96 / "l96_host.f90", name="l96_host")


def test_pointwise_tendency_closure_runs_from_a_fortran_host_and_replays(l96_host, tmp_path):
    closure, x = _pointwise()
    pyclosure.export(closure, tmp_path / "c.pt", example_inputs=(x[:8],))
    env = {**os.environ, "NN_CLOSURE_RECORD": str(tmp_path / "rec"), "NN_CLOSURE_RECORD_EVERY": "7"}
    proc = subprocess.run(
        [str(l96_host), str(tmp_path / "c.pt"), "0", "40", str(tmp_path / "x.bin")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0 and "l96_host: done" in proc.stdout, proc.stdout + proc.stderr
    got = np.fromfile(tmp_path / "x.bin", dtype=np.float64)
    np.testing.assert_allclose(got, _host_twin(closure, 40), rtol=1e-12)
    report = assert_replays(tmp_path / "rec", tmp_path / "c.pt", budgets=False)
    assert report["summary"]["ok"] and len(report["records"]) == -(-160 // 7)  # calls 1, 8, ..., 155


def test_info_shows_fortran_shapes_and_extra(tmp_path):
    closure, x = _pointwise()
    pyclosure.export(closure, tmp_path / "c.pt", example_inputs=(x[:4],), extra={"experiment": "l96-k8"})
    proc = subprocess.run(
        ["pyclosure", "info", str(tmp_path / "c.pt")],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "PATH": str(pathlib.Path(os.sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        },
    )
    assert "torch (batch, 3)" in proc.stdout and "Fortran (3, ncol)" in proc.stdout
    assert json.dumps({"experiment": "l96-k8"}) in proc.stdout
