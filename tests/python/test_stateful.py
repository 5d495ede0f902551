"""Stateful closures: AR(1) red noise and delays, state carried by the host, replayed bit for bit."""

import json
import os
import pathlib
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import pyclosure
from pyclosure.bridge import Model
from pyclosure.contract import EXTRA_FILE, read_contract
from pyclosure.errors import ModelFormatError
from pyclosure.stateful import DelayClosure, RedNoiseClosure, fit_ar1, initial_history
from pyclosure.testing import assert_replays

L96 = pathlib.Path(__file__).parents[2] / "examples" / "lorenz96"


class Zero(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 2, dtype=x.dtype)


class Linear3(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1).double()

    def forward(self, x):
        return self.lin(x)


def _run(module, x, steps, state=None):
    n_out = 2 if isinstance(module.deterministic, Zero) else 1
    state = torch.zeros(x.shape[0], 2 * n_out, dtype=torch.float64) if state is None else state
    noise = []
    with torch.no_grad():
        for _ in range(steps):
            y, state = module(x, state)
            noise.append(y)
    return torch.stack(noise), state


def test_fit_ar1_recovers_phi_and_sigma_of_a_simulated_series():
    rng = np.random.default_rng(0)
    phi, sigma, T = np.array([0.9, 0.5]), np.array([2.0, 0.3]), 20000
    e = np.zeros((T, 4, 2))
    e[0] = sigma * rng.standard_normal((4, 2))
    for t in range(1, T):
        e[t] = phi * e[t - 1] + sigma * np.sqrt(1 - phi**2) * rng.standard_normal((4, 2))
    got_phi, got_sigma = fit_ar1(e)
    np.testing.assert_allclose(got_phi, phi, atol=0.01)
    np.testing.assert_allclose(got_sigma, sigma, rtol=0.03)
    phi2, _ = fit_ar1(e[::2], lag_steps=2)  # sampled every 2 steps: phi per step again
    np.testing.assert_allclose(phi2, phi, atol=0.01)


def test_red_noise_has_the_fitted_autocorrelation_and_variance_per_column():
    module = RedNoiseClosure(Zero(), [0.95, 0.0], [1.5, 0.2], seed=3)
    x = torch.randn(64, 3, dtype=torch.float64)
    noise, _ = _run(module, x, 3000)  # (T, 64, 2)
    phi, sigma = fit_ar1(noise.numpy())
    assert abs(float(phi[0]) - 0.95) < 0.01 and float(phi[1]) < 0.02  # red, and white with phi = 0
    np.testing.assert_allclose(sigma.numpy(), [1.5, 0.2], rtol=0.05)
    # columns are independent of each other (the white output: 3000 independent draws
    # per column, so a correlation's standard error is 0.018; the largest of 2016 pairs ~0.07)
    corr = np.corrcoef(noise[:, :, 1].numpy().T)
    assert np.abs(corr[np.triu_indices(64, 1)]).max() < 0.1


def test_zero_state_seeds_each_column_reproducibly_whatever_the_batch():
    module = RedNoiseClosure(Zero(), 0.9, 1.0, seed=11)
    x = torch.randn(8, 3, dtype=torch.float64)
    a, sa = _run(module, x, 20)
    b, sb = _run(module, x, 20)
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert len(set(a[-1, :, 0].tolist())) == 8  # every column its own noise
    # once seeded, a column's noise depends only on its own state: halves of the batch agree
    with torch.no_grad():
        whole, _ = module(x, sa)
        halves = torch.cat([module(x[:4], sa[:4])[0], module(x[4:], sa[4:])[0]])
    assert torch.equal(whole, halves)
    other, _ = _run(RedNoiseClosure(Zero(), 0.9, 1.0, seed=12), x, 20)
    assert not torch.equal(a, other)


def test_red_noise_rejects_a_state_of_the_wrong_shape_and_bad_coefficients():
    module = RedNoiseClosure(Zero(), 0.9, 1.0)
    with pytest.raises(ValueError, match=r"shape \(batch, 2 \* outputs\)"):
        module(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="phi must be in"):
        RedNoiseClosure(Zero(), 1.0, 1.0)


def _exported(tmp_path, name="ar1.pt"):
    torch.manual_seed(0)
    module = RedNoiseClosure(Linear3(), 0.97, 0.5, seed=5)
    contract = pyclosure.export(
        module,
        tmp_path / name,
        example_inputs=(torch.randn(8, 3, dtype=torch.float64), torch.zeros(8, 2, dtype=torch.float64)),
    )
    return module, contract


def test_contract_pairs_state_input_and_output(tmp_path):
    _, contract = _exported(tmp_path)
    assert [io["name"] for io in contract["inputs"]] == ["x", "noise"]
    assert [io["name"] for io in contract["outputs"]] == ["tendency", "noise_next"]
    assert contract["state"][0]["input"] == "noise" and contract["state"][0]["output"] == "noise_next"
    assert contract["outputs"][0]["meaning"]["noise"]["kind"] == "ar1"
    assert contract["outputs"][0]["meaning"]["noise"]["phi"] == [0.97]


def test_stateful_closure_through_the_bridge_equals_torch_and_replays_with_its_state(tmp_path):
    module, _ = _exported(tmp_path)
    model = Model(tmp_path / "ar1.pt")
    model.record_start(tmp_path / "rec", every=3)
    x = np.random.default_rng(1).standard_normal((8, 3))
    state = np.zeros((8, 2))
    ref_state = torch.zeros(8, 2, dtype=torch.float64)
    for _ in range(12):
        y, state = model(x, state)
        with torch.no_grad():
            ref, ref_state = module(torch.from_numpy(x), ref_state)
        assert np.array_equal(y, ref.numpy()) and np.array_equal(state, ref_state.numpy())
    model.record_stop()
    report = assert_replays(tmp_path / "rec", tmp_path / "ar1.pt", budgets=False)
    assert len(report["records"]) == 4
    started = 0
    for path in (tmp_path / "rec").rglob("record_*.npz"):  # every 3rd call, its state in and out
        with np.load(path) as rec:
            gen_in, gen_out = (
                rec["in.noise"][:, 1].astype(np.int64),
                rec["out.noise_next"][:, 1].astype(np.int64),
            )
            if gen_in.any():  # one generator step per call
                started += 1
                assert np.array_equal(gen_out, (gen_in * 1664525 + 1013904223) % 2**32)
    assert started == 3


def _rewrite_contract(src, dst, change):
    m = torch.jit.load(str(src))
    contract = read_contract(src)
    change(contract)
    torch.jit.save(m, str(dst), _extra_files={EXTRA_FILE: json.dumps(contract)})


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["state"][0].update(output="nowhere"), "names an unknown output"),
        (lambda c: c["outputs"][1].update(shape=[4]), "differ in dtype or shape"),
        (lambda c: c.update(state={"input": "noise"}), "'state' must be an array"),
    ],
)
def test_bridge_refuses_a_contract_whose_state_pairs_do_not_match(tmp_path, change, message):
    _exported(tmp_path)
    _rewrite_contract(tmp_path / "ar1.pt", tmp_path / "bad.pt", change)
    with pytest.raises(ModelFormatError, match=message):
        Model(tmp_path / "bad.pt")


def test_native_export_refuses_a_stateful_closure_by_name(tmp_path):
    module = RedNoiseClosure(nn.Sequential(nn.Linear(3, 1)).double(), 0.9, 1.0)
    with pytest.raises(ValueError, match=r"stateful closure .* native engine"):
        pyclosure.export(
            module,
            tmp_path / "ar1.nnp",
            example_inputs=(torch.randn(4, 3, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)),
        )
    assert not (tmp_path / "ar1.nnp").exists()


def test_delay_closure_sees_the_last_m_inputs_through_its_history(tmp_path):
    torch.manual_seed(0)
    net = nn.Linear(3 * 4, 1).double()
    module = DelayClosure(net, m=3)
    xs = [torch.randn(5, 3, dtype=torch.float64) for _ in range(6)]
    contract = pyclosure.export(
        module, tmp_path / "delay.pt", example_inputs=(xs[0], initial_history(xs[0], 3))
    )
    assert contract["state"][0]["input"] == "history" and contract["inputs"][1]["shape"] == [9]
    model = Model(tmp_path / "delay.pt")
    history = initial_history(xs[0], 3).numpy()
    window = [xs[0]] * 3
    for x in xs:
        y, history = model(x.numpy(), history)
        window = window[1:] + [x] if len(window) == 4 else window + [x]
        with torch.no_grad():
            assert np.array_equal(y, net(torch.cat(window[-4:], dim=1)).numpy())


@pytest.fixture(scope="module")
def l96_host(build_fortran):
    return build_fortran(L96 / "l96_host.f90", name="l96_host_state")


def test_fortran_host_carries_red_noise_state_and_its_run_replays_bit_for_bit(l96_host, tmp_path):
    _exported(tmp_path)
    env = {**os.environ, "NN_CLOSURE_RECORD": str(tmp_path / "rec"), "NN_CLOSURE_RECORD_EVERY": "5"}
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.bin"
        proc = subprocess.run(
            [str(l96_host), str(tmp_path / "ar1.pt"), "2", "30", str(out)],
            capture_output=True,
            text=True,
            env=env if name == "a" else os.environ,
            check=False,
        )
        assert proc.returncode == 0 and "l96_host: done" in proc.stdout, proc.stdout + proc.stderr
        runs.append(np.fromfile(out, dtype=np.float64))
    assert np.array_equal(runs[0], runs[1])  # no seed from the host, the same run twice
    report = assert_replays(tmp_path / "rec", tmp_path / "ar1.pt", budgets=False)
    assert len(report["records"]) == 120 // 5
    with zipfile.ZipFile(sorted((tmp_path / "rec").rglob("record_*.npz"))[-1]) as z:
        assert {"in.noise.npy", "out.noise_next.npy"} <= set(z.namelist())
