"""Small CF-style NetCDF and Zarr training sets for the streaming and DDP tests.

``u(time, x)`` is random and ``flux = tanh(u @ W)`` with a fixed ``W`` a small MLP can learn;
both carry CF ``units`` and ``long_name``. Written in time chunks of ``chunk`` on disk.
"""

import numpy as np

UNITS = {"u": "m s-1", "flux": "m2 s-2"}


def fields(n_time, nx, seed=0, dtype="float32"):
    import xarray as xr

    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_time, nx)).astype(dtype)
    w = np.linspace(-1, 1, nx * nx).reshape(nx, nx).astype(dtype) / np.sqrt(nx)
    flux = np.tanh(u @ w).astype(dtype)
    return xr.Dataset(
        {
            "u": (("time", "x"), u, {"units": UNITS["u"], "long_name": "coarse velocity"}),
            "flux": (("time", "x"), flux, {"units": UNITS["flux"], "long_name": "subgrid momentum flux"}),
        },
        coords={
            "time": ("time", np.arange(n_time, dtype="float64"), {"units": "days since 2000-01-01"}),
            "x": ("x", np.arange(nx, dtype="float64"), {"units": "m"}),
        },
        attrs={"Conventions": "CF-1.8"},
    )


def write_netcdf(path, ds, chunk):
    enc = {v: {"chunksizes": (chunk, ds.sizes["x"])} for v in ds.data_vars}
    ds.to_netcdf(path, engine="netcdf4", encoding=enc)
    return path


def write_zarr(path, ds, chunk):
    ds.chunk({"time": chunk}).to_zarr(path, mode="w", zarr_format=2)
    return path
