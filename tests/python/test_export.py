"""pyclosure.export: the embedded contract, derived shapes, atomic writes, `pyclosure info`."""

import hashlib
import subprocess

import numpy as np
import pytest
import torch
from conftest import cli

import pyclosure
from pyclosure.bridge import Model
from pyclosure.contract import read_contract


class FacesFromCells(torch.nn.Module):
    """N cells -> N + 1 faces (a bounded column): the output dim derives from the input dim."""

    def forward(self, q):
        pad = torch.zeros(q.shape[0], 1, dtype=q.dtype)
        return torch.cat([pad, 0.5 * (q[:, 1:] + q[:, :-1]), pad], dim=1)


def test_contract_records_names_shapes_dtypes_and_weights_hash(model_dir):
    c = read_contract(model_dir / "two_in_two_out.pt")
    assert c["schema"] == "pyclosure.contract/1"
    assert [i["name"] for i in c["inputs"]] == ["u", "t"]
    assert [o["name"] for o in c["outputs"]] == ["flux", "s"]
    assert c["inputs"][0]["shape"] == [3] and c["outputs"][1]["shape"] == [1]
    assert c["inputs"][0]["dtype"] == "float64"
    assert c["torch_version"] == torch.__version__


def _sha256_of_weights(state):
    """The definition export documents: SHA-256 over (name|dtype|shape| then the raw
    bytes) of every parameter and buffer, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def test_contract_weights_hash_is_the_sha256_of_the_weights_in_the_file(model_dir):
    # affine64.pt holds buffers w = (1..6)/8 as (2, 3) and b = [-0.5, -0.25], float64
    c = read_contract(model_dir / "affine64.pt")
    state = torch.jit.load(str(model_dir / "affine64.pt")).state_dict()
    assert sorted(state) == ["b", "w"]
    assert torch.equal(state["w"], torch.arange(1, 7, dtype=torch.float64).reshape(2, 3) / 8)
    assert c["weights_sha256"] == _sha256_of_weights(state)
    by_hand = hashlib.sha256(
        b"b|torch.float64|(2,)|"
        + np.array([-0.5, -0.25]).tobytes()
        + b"w|torch.float64|(2, 3)|"
        + (np.arange(1.0, 7.0) / 8).tobytes()
    ).hexdigest()
    assert c["weights_sha256"] == by_hand
    # one ulp in one weight gives another hash; a model without weights hashes nothing
    state["w"][0, 0] = np.nextafter(state["w"][0, 0].item(), 1.0)
    assert _sha256_of_weights(state) != c["weights_sha256"]
    assert read_contract(model_dir / "two_in_two_out.pt")["weights_sha256"] == hashlib.sha256(b"").hexdigest()


def test_variable_cell_dim_gives_derived_output_dim_and_runs_on_any_grid(tmp_path):
    path = tmp_path / "faces.pt"
    c = pyclosure.export(
        FacesFromCells(),
        path,
        torch.zeros(2, 8, dtype=torch.float64),
        variable_dims={"q": [0]},
        meaning={"output0": {"kind": "flux_at_faces"}},
        training_data=np.arange(10.0),
    )
    assert c["inputs"][0]["shape"] == [-1]
    assert c["outputs"][0]["shape"] == [{"input": "q", "dim": 0, "offset": 1}]
    assert c["training_data"]["shapes"] == [[10]]
    model = Model(path)
    for n in (5, 17):
        q = np.random.default_rng(n).standard_normal((3, n))
        y = model(q)
        assert y.shape == (3, n + 1)
        assert np.array_equal(y, FacesFromCells()(torch.from_numpy(q)).numpy())
    with pytest.raises(pyclosure.errors.ShapeError, match=r"expected shape \(3, 6\), got \(3, 5\)"):
        model(np.ones((3, 5)), out=[np.empty((3, 5))])


def test_failed_export_leaves_no_file_behind(tmp_path):
    class NotScriptable(torch.nn.Module):
        def forward(self, x):
            return np.sin(x)  # numpy inside forward: torch.jit.script rejects it

    path = tmp_path / "bad.pt"
    with pytest.raises(RuntimeError, match="could not compile NotScriptable"):
        pyclosure.export(NotScriptable(), path, torch.zeros(2, 3))
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_names_that_do_not_match(tmp_path):
    with pytest.raises(ValueError, match="input names"):
        pyclosure.export(FacesFromCells(), tmp_path / "x.pt", torch.zeros(2, 4), input_names=["a", "b"])
    with pytest.raises(ValueError, match="unknown inputs"):
        pyclosure.export(FacesFromCells(), tmp_path / "x.pt", torch.zeros(2, 4), variable_dims={"z": [0]})


def test_info_prints_the_contract_and_loads_through_the_bridge(model_dir):
    out = subprocess.run(
        cli("info", "--bridge", model_dir / "two_in_two_out.pt"), capture_output=True, text=True, check=True
    ).stdout
    assert "flux" in out and "torch (batch, 3)" in out and "loaded through the C bridge" in out
    out = subprocess.run(
        cli("info", model_dir / "no_contract.pt"), capture_output=True, text=True, check=True
    ).stdout
    assert "no pyclosure contract" in out
    proc = subprocess.run(
        cli("info", model_dir / "not_torchscript.pt"), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "not a TorchScript archive" in proc.stderr
