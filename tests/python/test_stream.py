"""Streaming NetCDF/Zarr datasets: order, sharding, coarse-graining, units, errors, training, resume."""

import numpy as np
import pytest
import torch

pytest.importorskip("xarray")

from streamdata import UNITS, fields, write_netcdf, write_zarr

from pyclosure import export, read_contract
from pyclosure.data import coarsen
from pyclosure.stream import StreamDataset, coarse_grain
from pyclosure.train import fit


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream")
    ds = fields(96, 8)
    return {
        "ds": ds,
        "nc": [
            write_netcdf(d / "a.nc", ds.isel(time=slice(0, 48)), chunk=12),
            write_netcdf(d / "b.nc", ds.isel(time=slice(48, 96)), chunk=12),
        ],
        "zarr": write_zarr(d / "all.zarr", ds, chunk=16),
    }


def epoch_batches(data, epoch, batch_size, placement=(0, 1)):
    """The batches one rank sees, with the rank set by hand (no process group needed)."""
    data._epoch, data._placement, data._sub = epoch, placement, batch_size // (data.lanes or placement[1])
    return [tuple(t.clone() for t in b) for b in data]


def test_netcdf_files_stream_in_disk_chunks_with_every_sample_once(files):
    data = StreamDataset(files["nc"], ["u"], "flux", seed=3)
    assert [c[2] - c[1] for c in data.chunks] == [12] * 8  # chunks from the NetCDF chunking
    rows = torch.cat([u for u, _ in epoch_batches(data, 0, 16)])
    assert rows.shape == (96, 8)
    want = torch.as_tensor(files["ds"]["u"].values)
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, want.tolist()))


def test_zarr_store_streams_the_same_samples_as_netcdf(files):
    z = StreamDataset(files["zarr"], ["u"], "flux")
    assert [c[2] - c[1] for c in z.chunks] == [16] * 6
    got = torch.cat([f for _, f in epoch_batches(z, 0, 32)])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, files["ds"]["flux"].values.tolist()))


def test_order_is_deterministic_for_a_seed_and_shuffled_by_epoch_and_within_chunks(files):
    a = [u for u, _ in epoch_batches(StreamDataset(files["nc"], ["u"], "flux", seed=1), 0, 16)]
    b = [u for u, _ in epoch_batches(StreamDataset(files["nc"], ["u"], "flux", seed=1), 0, 16)]
    c = [u for u, _ in epoch_batches(StreamDataset(files["nc"], ["u"], "flux", seed=1), 1, 16)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(torch.cat(a), torch.cat(c))
    first_chunk = files["ds"]["u"].values[:12]
    in_file_order = [torch.cat(a)[i : i + 12] for i in range(0, 96, 12)]
    assert not any(np.array_equal(x.numpy(), first_chunk) for x in in_file_order)


def test_ranks_share_each_global_batch_and_read_disjoint_chunks(files):
    one = epoch_batches(StreamDataset(files["nc"], ["u"], "flux", lanes=2), 0, 16, (0, 1))
    r0 = epoch_batches(StreamDataset(files["nc"], ["u"], "flux", lanes=2), 0, 16, (0, 2))
    r1 = epoch_batches(StreamDataset(files["nc"], ["u"], "flux", lanes=2), 0, 16, (1, 2))
    # one process: two sub-batches (lanes 0, 1) per step; two ranks: one lane each
    assert len(one) == 2 * len(r0) == 2 * len(r1)
    for k in range(len(r0)):
        assert torch.equal(torch.cat([one[2 * k][0], one[2 * k + 1][0]]), torch.cat([r0[k][0], r1[k][0]]))
    seen0 = {tuple(r) for b in r0 for r in b[0].tolist()}
    seen1 = {tuple(r) for b in r1 for r in b[0].tolist()}
    assert not seen0 & seen1


def test_dataloader_workers_give_the_same_steps_as_one_reader(files):
    ref = list(StreamDataset(files["nc"], ["u"], "flux", lanes=2).batches(0, 16, num_workers=0))
    got = list(StreamDataset(files["nc"], ["u"], "flux", lanes=2).batches(0, 16, num_workers=2))
    assert len(got) == len(ref) == 6
    for (xr_, yr), (xg, yg) in zip(ref, got):
        assert torch.equal(xr_[0], xg[0]) and torch.equal(yr, yg)


def test_lanes_that_do_not_divide_among_readers_are_refused(files):
    data = StreamDataset(files["nc"], ["u"], "flux", lanes=3)
    with pytest.raises(ValueError, match="lanes=3 cannot be dealt evenly to 2 readers"):
        list(data.batches(0, 15, num_workers=2))


def test_coarse_grain_by_dimension_name_matches_block_average(files):
    fine = fields(4, 32)
    got = coarse_grain(fine.transpose("x", "time"), {"x": 4})["u"].transpose("time", "x").values
    np.testing.assert_allclose(got, coarsen(fine["u"].values, 4), rtol=1e-6)
    assert coarse_grain(fine, {"x": 4})["u"].attrs["units"] == UNITS["u"]
    with pytest.raises(ValueError, match="'lev'"):
        coarse_grain(fine, {"lev": 2})
    with pytest.raises(ValueError, match="size 32 does not divide into blocks of 5"):
        coarse_grain(fine, {"x": 5})


def test_stream_coarsens_lazily_by_name(files):
    data = StreamDataset(files["zarr"], ["u"], "flux", coarsen={"x": 2})
    assert data.sample_shapes() == [(4,), (4,)]
    u = data.read_chunk(0)[0]
    np.testing.assert_allclose(u, coarsen(files["ds"]["u"].values[:16], 2), rtol=1e-6)


def test_cf_units_reach_the_exported_contract(files, tmp_path):
    data = StreamDataset(files["nc"], ["u"], "flux")
    assert data.units() == UNITS
    model = torch.nn.Linear(8, 8)
    export(
        model,
        tmp_path / "c.pt",
        torch.zeros(1, 8),
        input_names=["u"],
        output_names=["flux"],
        units=data.units(),
    )
    c = read_contract(tmp_path / "c.pt")
    assert c["inputs"][0]["units"] == "m s-1" and c["outputs"][0]["units"] == "m2 s-2"


def test_moments_over_chunks_equal_numpy_over_everything(files):
    mean, std = StreamDataset(files["nc"], ["u"], "flux").moments("flux")
    whole = files["ds"]["flux"].values.astype(np.float64)
    assert mean == pytest.approx(whole.mean(), rel=1e-12, abs=1e-12)
    assert std == pytest.approx(whole.std(ddof=1), rel=1e-12)


# -- bad inputs name the file and the variable ---------------------------------------------
def test_missing_variable_names_the_file(files):
    with pytest.raises(KeyError, match=r"b\.nc lacks variable \['tau'\]"):
        StreamDataset(files["nc"][1], ["u"], "tau")


def test_mismatched_dims_name_both_files_and_the_variable(files, tmp_path):
    odd = write_netcdf(tmp_path / "odd.nc", fields(24, 6), chunk=12)
    with pytest.raises(ValueError, match=r"odd\.nc variable 'u' has dims .*'x': 6.*a\.nc has .*'x': 8"):
        StreamDataset([files["nc"][0], odd], ["u"], "flux")
    with pytest.raises(
        ValueError, match=r"a\.nc variable 'u' has dims \('time', 'x'\), without the sample dim"
    ):
        StreamDataset(files["nc"][0], ["u"], "flux", sample_dims=("time", "lev"))


def test_a_file_that_is_not_netcdf_is_named(tmp_path):
    bad = tmp_path / "notes.nc"
    bad.write_text("not a NetCDF file\n")
    with pytest.raises(ValueError, match=r"notes\.nc: not a NetCDF file that xarray can read"):
        StreamDataset(bad, ["u"], "flux")


def test_nan_names_file_variable_and_time_index(tmp_path):
    ds = fields(24, 8)
    ds["flux"][17, 3] = np.nan
    path = write_netcdf(tmp_path / "holes.nc", ds, chunk=12)
    data = StreamDataset(path, ["u"], "flux")
    with pytest.raises(ValueError, match=r"holes\.nc variable 'flux' has non-finite .* time index 17"):
        list(data.batches(0, 8))


# -- training ------------------------------------------------------------------------------
def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))


def test_fit_learns_from_a_stream_and_validates_on_its_last_chunks(files, tmp_path):
    data = StreamDataset(files["nc"], ["u"], "flux")
    model = mlp()
    hist = fit(
        model,
        data,
        epochs=40,
        batch_size=12,
        lr=1e-2,
        val_fraction=0.25,
        patience=40,
        progress=False,
        checkpoint_path=tmp_path / "w.pt",
    )
    assert hist.val[-1] < 0.2 * hist.val[0]
    # validation chunks (the last 2 of 8) never trained: the training epoch had 6 chunks
    train, val = data.split(0.25)
    assert [c[1:] for c in val.chunks] == [(24, 36), (36, 48)] and len(train.chunks) == 6
    assert (tmp_path / "w.history.json").exists() and (tmp_path / "w.resume.pt").exists()


@pytest.mark.parametrize("streamed", [False, True])
def test_resume_continues_to_the_uninterrupted_result(files, tmp_path, streamed):
    def data():
        if streamed:
            return (StreamDataset(files["nc"], ["u"], "flux"),)
        return torch.as_tensor(files["ds"]["u"].values), torch.as_tensor(files["ds"]["flux"].values)

    kw = {"batch_size": 12, "lr": 1e-2, "patience": 50, "progress": False}
    whole = mlp()
    fit(whole, *data(), epochs=6, checkpoint_path=tmp_path / "whole.pt", **kw)
    part = mlp()
    fit(part, *data(), epochs=3, checkpoint_path=tmp_path / "part.pt", **kw)
    part = mlp()  # a new process would start from fresh weights
    hist = fit(part, *data(), epochs=6, checkpoint_path=tmp_path / "part.pt", resume=True, **kw)
    assert len(hist.train) == 6
    for a, b in zip(whole.state_dict().values(), part.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_without_checkpoint_path_is_refused(files):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_path"):
        fit(mlp(), StreamDataset(files["nc"], ["u"], "flux"), epochs=1, resume=True, progress=False)
