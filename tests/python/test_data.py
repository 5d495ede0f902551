"""Coarse-graining helpers and the on-disk dataset."""

import importlib.util

import numpy as np
import pytest
import torch

from pyclosure.data import ArrayDataset, box_filter, coarsen, spectral_filter, subgrid_flux


def test_box_filter_preserves_mean_and_constants():
    u = np.random.default_rng(0).normal(size=(3, 64))
    f = box_filter(u, 5)
    assert np.allclose(f.mean(-1), u.mean(-1))
    assert np.allclose(box_filter(np.full(16, 2.5), 3), 2.5)


def test_box_filter_is_centred_mean_of_neighbours():
    u = np.arange(8.0)
    assert box_filter(u, 3)[3] == pytest.approx((2 + 3 + 4) / 3)
    assert box_filter(u, 3)[0] == pytest.approx((7 + 0 + 1) / 3)  # periodic wrap


def test_spectral_filter_removes_modes_above_cutoff_only():
    x = np.arange(64) * 2 * np.pi / 64
    low, high = np.cos(3 * x), np.sin(20 * x)
    assert np.allclose(spectral_filter(low + high, 10), low)


def test_coarsen_is_block_average():
    u = np.arange(12.0).reshape(1, 12)
    assert np.array_equal(coarsen(u, 4), [[1.5, 5.5, 9.5]])
    with pytest.raises(ValueError):
        coarsen(u, 5)


def test_subgrid_flux_is_zero_for_fields_the_filter_does_not_see():
    x = np.arange(64) * 2 * np.pi / 64
    _, tau = subgrid_flux(np.full(64, 3.0), 4)
    assert np.allclose(tau, 0)
    _, tau_spec = subgrid_flux(np.cos(x), 4, filter="spectral")  # u^2 has mode 2 <= 8
    assert np.allclose(tau_spec, 0, atol=1e-12)


def test_subgrid_flux_face_is_mean_of_the_two_fine_cells_around_it():
    u = np.random.default_rng(1).normal(size=32)
    u_c, tau = subgrid_flux(u, 4, width=5)
    fine_tau = 0.5 * (box_filter(u * u, 5) - box_filter(u, 5) ** 2)
    assert tau.shape == u_c.shape == (8,)
    assert tau[0] == pytest.approx(0.5 * (fine_tau[31] + fine_tau[0]))
    assert tau[2] == pytest.approx(0.5 * (fine_tau[7] + fine_tau[8]))
    assert np.all(fine_tau >= -1e-12)  # a box filter is positive: a variance


def test_face_box_subgrid_flux_is_the_variance_over_the_fine_cells_centred_on_each_face():
    u = np.random.default_rng(3).normal(size=(2, 32))
    u_c, tau = subgrid_flux(u, 4, filter="face_box")
    assert np.array_equal(u_c, coarsen(u, 4)) and tau.shape == (2, 8)
    around_face_0 = u[:, [30, 31, 0, 1]]  # fine cells -2 .. 1 of coarse face 0 (periodic)
    around_face_3 = u[:, 10:14]
    assert tau[:, 0] == pytest.approx(0.5 * around_face_0.var(axis=1))
    assert tau[:, 3] == pytest.approx(0.5 * around_face_3.var(axis=1))
    with pytest.raises(ValueError, match="even factor"):
        subgrid_flux(u, 3, filter="face_box")


def test_npz_dataset_yields_tensors(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "d.npz"
    np.savez(path, u=rng.normal(size=(10, 16)), flux=rng.normal(size=(10, 16)))
    ds = ArrayDataset(path, inputs=("u",), target="flux")
    assert len(ds) == 10
    u, flux = ds[3]
    assert u.dtype == torch.float32 and u.shape == (16,) and flux.shape == (16,)
    inputs, target = ds.tensors()
    assert inputs[0].shape == (10, 16) and target.shape == (10, 16)


def test_dataset_names_missing_variables(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, u=np.zeros((2, 4)))
    with pytest.raises(KeyError, match="flux"):
        ArrayDataset(path)


@pytest.mark.skipif(importlib.util.find_spec("xarray") is not None, reason="xarray present")
def test_netcdf_without_xarray_raises_clear_import_error(tmp_path):
    path = tmp_path / "d.nc"
    path.write_bytes(b"CDF\x01")
    with pytest.raises(ImportError, match=r"pip install pyclosure\[data\]"):
        ArrayDataset(path)


@pytest.mark.skipif(importlib.util.find_spec("xarray") is None, reason="needs the data extra")
def test_dataset_reads_netcdf_whole(tmp_path):
    import xarray as xr

    u = np.arange(40.0).reshape(10, 4)
    xr.Dataset({"u": (("time", "x"), u), "flux": (("time", "x"), 2 * u)}).to_netcdf(tmp_path / "d.nc")
    inputs, target = ArrayDataset(tmp_path / "d.nc").tensors()
    assert torch.equal(inputs[0], torch.as_tensor(u, dtype=torch.float32)) and torch.equal(
        target, 2 * inputs[0]
    )
