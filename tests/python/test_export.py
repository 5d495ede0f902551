"""pyclosure.export: the embedded contract, derived shapes, atomic writes, `pyclosure info`."""

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
    assert len(c["weights_sha256"]) == 64
    assert c["torch_version"] == torch.__version__


def test_variable_cell_dim_gives_derived_output_dim_and_runs_on_any_grid(tmp_path):
    path = tmp_path / "faces.pt"
    c = pyclosure.export(FacesFromCells(), path, torch.zeros(2, 8, dtype=torch.float64),
                         variable_dims={"q": [0]}, meaning={"output0": {"kind": "flux_at_faces"}},
                         training_data=np.arange(10.0))
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
    out = subprocess.run(cli("info", "--bridge", model_dir / "two_in_two_out.pt"),
                         capture_output=True, text=True, check=True).stdout
    assert "flux" in out and "torch (batch, 3)" in out and "loaded through the C bridge" in out
    out = subprocess.run(cli("info", model_dir / "no_contract.pt"),
                         capture_output=True, text=True, check=True).stdout
    assert "no pyclosure contract" in out
    proc = subprocess.run(cli("info", model_dir / "not_torchscript.pt"), capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "not a TorchScript archive" in proc.stderr
