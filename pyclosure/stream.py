"""Training data that does not fit in memory: NetCDF files or a Zarr store, read chunk by chunk.

:class:`StreamDataset` opens its sources lazily with xarray (dask chunks), picks variables by
name, optionally coarse-grains them by dimension name (:func:`coarse_grain`), and feeds
training through a torch ``IterableDataset`` that reads one chunk of the sample dimension at a
time. Only a few chunks are in memory at once, whatever the size on disk.

Order. An epoch's order depends only on ``seed`` and the epoch: the chunks are shuffled and
dealt round-robin to ``lanes`` lanes; each lane reads its chunks one after another, shuffles
the samples inside each chunk and cuts them into sub-batches of ``batch_size / lanes``; step
``k``'s batch is the ``k``-th sub-batch of every lane. Lanes are dealt to DDP ranks and then to
DataLoader workers, so each chunk is read by one process, and a run with a fixed ``lanes`` sees
the same global batches under any number of ranks and workers that divides ``lanes``. Every
lane stops after the same number of steps (a lane's samples beyond that are dropped that
epoch), so all ranks take the same number of optimiser steps.

Needs the ``data`` extra (``pip install pyclosure[data]``: xarray, netCDF4, h5netcdf, zarr,
dask); this module imports them only when a dataset is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import distributed

__all__ = ["StreamDataset", "coarse_grain"]


def coarse_grain(ds, factors: dict):
    """Block means over named dimensions, lazily: ``coarse_grain(ds, {"x": 8})``.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
    factors : dict
        ``{dimension name: integer factor}``; each size must divide by its factor.

    Returns
    -------
    The same type, coarse-grained (dask-backed input stays lazy). Attributes, CF ``units``
    among them, are kept.
    """
    for dim, f in factors.items():
        if dim not in ds.dims:
            raise ValueError(f"cannot coarse-grain dimension {dim!r}: the data has dims {tuple(ds.dims)}")
        if int(f) != f or f < 1 or ds.sizes[dim] % f:
            raise ValueError(f"dimension {dim!r} of size {ds.sizes[dim]} does not divide into blocks of {f}")
    return ds.coarsen({d: int(f) for d, f in factors.items()}, boundary="exact").mean(keep_attrs=True)


@dataclass
class _Source:
    path: str
    ds: object  # the lazy xarray Dataset of this file or store (selected, coarse-grained)
    n: int  # length of the chunked sample dimension


def _engine(path: Path) -> str | None:
    """h5netcdf for NetCDF-4 (HDF5) files: h5py keeps 1 MiB of decompressed chunks per variable
    where netCDF4's default cache can grow to hold a whole file. xarray's choice otherwise."""
    try:
        with open(path, "rb") as f:
            return "h5netcdf" if f.read(8) == b"\x89HDF\r\n\x1a\n" else None
    except OSError:
        return None


def _open(path: Path, engine: str | None):
    try:
        import xarray as xr
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "streaming NetCDF or Zarr data needs the data extra: "
            "pip install 'pyclosure[data]' (xarray, netCDF4, h5netcdf, h5py, zarr, dask)"
        ) from exc

    zarr = path.is_dir() or path.suffix == ".zarr"
    try:
        if zarr:
            return xr.open_zarr(path, chunks={})
        return xr.open_dataset(path, chunks={}, engine=engine or _engine(path))
    except Exception as exc:
        kind = "Zarr store" if zarr else "NetCDF file"
        raise ValueError(f"{path}: not a {kind} that xarray can read ({type(exc).__name__}: {exc})") from exc


class StreamDataset(IterableDataset):
    """Samples ``(inputs..., target)`` streamed from NetCDF files or a Zarr store.

    Parameters
    ----------
    sources : path or sequence of paths
        NetCDF files (concatenated along the first sample dimension, in the order given) or
        Zarr stores (directories).
    inputs : sequence of str
        Variables fed to the model, in the order of its ``forward`` arguments.
    target : str
        Variable the model's output is compared with.
    sample_dims : str or sequence of str
        Dimensions whose points are samples. The first (usually ``"time"``) is read in chunks;
        the others are stacked into the sample within a chunk (e.g. columns ``("time", "y",
        "x")`` for a closure over levels). The remaining dims of each variable, in the
        variable's order, are its per-sample shape.
    coarsen : dict, optional
        ``{dim: factor}`` block means applied lazily before anything is read
        (:func:`coarse_grain`); not over the first sample dim.
    chunk : int, optional
        Samples of the first sample dim per read. Default: the chunking on disk (dask's
        chunks of the first input).
    lanes : int, optional
        Chunks read side by side (see the module notes). Default: one per reading process
        (ranks x DataLoader workers). Fix it to compare runs with different process counts.
    seed : int
        The shuffling seed.
    dtype : torch.dtype
    engine : str, optional
        xarray's NetCDF engine. Default: ``h5netcdf`` for NetCDF-4 files (its chunk cache stays
        small), xarray's choice for classic NetCDF.
    """

    def __init__(
        self,
        sources,
        inputs,
        target: str,
        *,
        sample_dims=("time",),
        coarsen=None,
        chunk: int | None = None,
        lanes: int | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        engine: str | None = None,
    ):
        super().__init__()
        paths = [sources] if isinstance(sources, str | Path) else list(sources)
        if not paths:
            raise ValueError("StreamDataset needs at least one NetCDF file or Zarr store")
        self.names = [*inputs, target]
        self.sample_dims = (sample_dims,) if isinstance(sample_dims, str) else tuple(sample_dims)
        if coarsen and self.sample_dims[0] in coarsen:
            raise ValueError(f"cannot coarse-grain the chunked sample dim {self.sample_dims[0]!r}")
        self.lanes, self.seed, self.dtype, self.engine = lanes, seed, dtype, engine
        self._sources = []
        for p in paths:
            self._sources.append(self._source(Path(p), coarsen or {}))
        self.chunks = [
            (i, a, min(a + size, s.n))
            for i, s in enumerate(self._sources)
            for size in [chunk or self._disk_chunk(s)]
            for a in range(0, s.n, size)
        ]
        self._epoch, self._placement, self._sub = 0, (0, 1), None

    # -- opening and checking -------------------------------------------------------------
    def _source(self, path: Path, coarsen: dict) -> _Source:
        ds = _open(path, self.engine)
        missing = [n for n in self.names if n not in ds.variables]
        if missing:
            raise KeyError(
                f"{path} lacks variable{'s' * (len(missing) > 1)} {missing}; "
                f"it has {sorted(map(str, ds.data_vars))}"
            )
        for n in self.names:
            absent = [d for d in self.sample_dims if d not in ds[n].dims]
            if absent:
                raise ValueError(
                    f"{path} variable {n!r} has dims {ds[n].dims}, without the sample "
                    f"dim{'s' * (len(absent) > 1)} {absent}"
                )
        ds = ds[self.names]
        if coarsen:
            ds = coarse_grain(ds, coarsen)
        if self._sources:
            self._check_like(path, ds, self._sources[0])
        return _Source(str(path), ds, ds.sizes[self.sample_dims[0]])

    def _check_like(self, path, ds, ref: _Source) -> None:
        for n in self.names:
            mine = {d: s for d, s in ds[n].sizes.items() if d != self.sample_dims[0]}
            theirs = {d: s for d, s in ref.ds[n].sizes.items() if d != self.sample_dims[0]}
            if list(ds[n].dims) != list(ref.ds[n].dims) or mine != theirs:
                raise ValueError(
                    f"{path} variable {n!r} has dims {dict(ds[n].sizes)}, but "
                    f"{ref.path} has {dict(ref.ds[n].sizes)}"
                )

    def _disk_chunk(self, s: _Source) -> int:
        sizes = s.ds[self.names[0]].chunksizes.get(self.sample_dims[0])
        return int(sizes[0]) if sizes else s.n

    # -- what the data is -----------------------------------------------------------------
    def units(self) -> dict:
        """``{variable: CF units}`` for the variables that have a ``units`` attribute; pass it
        to :func:`pyclosure.export` (``units=``) to carry them into the contract."""
        attrs = {n: self._sources[0].ds[n].attrs.get("units") for n in self.names}
        return {n: str(u) for n, u in attrs.items() if u is not None}

    def sample_shapes(self) -> list:
        """Per-sample shape of each variable (inputs, then target)."""
        v = [self._sources[0].ds[n] for n in self.names]
        return [tuple(a.sizes[d] for d in a.dims if d not in self.sample_dims) for a in v]

    def moments(self, name: str) -> tuple[float, float]:
        """Mean and standard deviation (``n - 1``) of every value of ``name``, chunk by chunk in
        float64: a :class:`pyclosure.normalize.Normalizer` without loading the data."""
        k = self.names.index(name)
        n, shift, s1, s2 = 0, None, 0.0, 0.0
        for c in range(len(self.chunks)):
            x = self.read_chunk(c)[k].astype(np.float64).ravel()
            shift = x[0] if shift is None else shift  # shifted sums keep float64 accurate
            n, s1, s2 = n + x.size, s1 + float((x - shift).sum()), s2 + float(((x - shift) ** 2).sum())
        mean = s1 / n
        return float(shift + mean), float(np.sqrt(max(s2 - n * mean * mean, 0.0) / (n - 1)))

    def __len__(self) -> int:
        """Samples in all chunks (before the epoch's dropped remainder)."""
        return sum(self._chunk_len(c) for c in range(len(self.chunks)))

    def _chunk_len(self, c: int) -> int:
        i, a, b = self.chunks[c]
        ds = self._sources[i].ds
        return (b - a) * int(np.prod([ds.sizes[d] for d in self.sample_dims[1:]], dtype=np.int64))

    def split(self, val_fraction: float) -> tuple[StreamDataset, StreamDataset]:
        """``(train, validation)`` by whole chunks: the last ``val_fraction`` of the chunks (the
        latest times of the last source) validate, so neighbouring samples rarely straddle."""
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        n_val = round(len(self.chunks) * val_fraction)
        if val_fraction > 0 and n_val == 0 and len(self.chunks) > 1:
            n_val = 1
        if n_val >= len(self.chunks):
            raise ValueError(f"{len(self.chunks)} chunk(s) cannot be split into training and validation")
        return self._subset(self.chunks[: len(self.chunks) - n_val]), self._subset(
            self.chunks[len(self.chunks) - n_val :]
        )

    def _subset(self, chunks) -> StreamDataset:
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.chunks = list(chunks)
        return other

    # -- reading ----------------------------------------------------------------------------
    def read_chunk(self, c: int) -> list:
        """Chunk ``c`` as numpy arrays, samples first, checked finite."""
        import dask

        i, a, b = self.chunks[c]
        src = self._sources[i]
        part = src.ds.isel({self.sample_dims[0]: slice(a, b)})
        lazy = [
            part[n].transpose(*self.sample_dims, *[d for d in part[n].dims if d not in self.sample_dims]).data
            for n in self.names
        ]
        # One dask computation for all variables, in this thread: dask's thread pool does not
        # survive the fork of DataLoader workers, and per-call overhead dominates small chunks.
        arrays = dask.compute(*lazy, scheduler="synchronous", optimize_graph=False)
        stack = self._chunk_len(c) // (b - a)
        out = []
        for n, arr in zip(self.names, arrays):
            arr = np.asarray(arr)
            arr = arr.reshape(-1, *arr.shape[len(self.sample_dims) :])
            finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if not finite.all():
                at = a + int(np.argmin(finite)) // stack
                raise ValueError(
                    f"{src.path} variable {n!r} has non-finite values (NaN or inf), "
                    f"first at {self.sample_dims[0]} index {at}"
                )
            out.append(arr)
        return out

    def _lane_chunks(self, epoch: int, lanes: int) -> list:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.chunks))
        return [list(order[lane::lanes]) for lane in range(lanes)]

    def _lane(self, chunks, epoch: int, sub: int, steps: int):
        buf, given = None, 0
        for c in chunks:
            arrays = self.read_chunk(c)
            perm = np.random.default_rng([self.seed, epoch, int(c)]).permutation(len(arrays[0]))
            arrays = [x[perm] for x in arrays]
            buf = arrays if buf is None else [np.concatenate([p, x]) for p, x in zip(buf, arrays)]
            while len(buf[0]) >= sub and given < steps:
                yield tuple(torch.as_tensor(x[:sub], dtype=self.dtype) for x in buf)
                buf, given = [x[sub:] for x in buf], given + 1
            if given == steps:
                return

    def _plan(self, readers: int):
        lanes = self.lanes or readers
        if lanes % readers:
            raise ValueError(
                f"lanes={lanes} cannot be dealt evenly to {readers} readers "
                "(DDP ranks x DataLoader workers): make lanes a multiple of it"
            )
        if self._sub is None:
            raise RuntimeError("iterate a StreamDataset through batches(epoch, batch_size)")
        per_lane = [sum(self._chunk_len(c) for c in cs) for cs in self._lane_chunks(self._epoch, lanes)]
        return lanes, min(per_lane) // self._sub

    def __iter__(self):
        rank, world = self._placement
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        lanes, steps = self._plan(world * workers)
        mine = list(range(lanes))[rank::world][worker::workers]
        plan = self._lane_chunks(self._epoch, lanes)
        streams = [self._lane(plan[lane], self._epoch, self._sub, steps) for lane in mine]
        for _ in range(steps):
            for s in streams:
                yield next(s)

    def batches(self, epoch: int, batch_size: int, num_workers: int = 0):
        """This process's share of each training step of ``epoch``: ``(inputs, target)``.

        Under DDP each rank gets ``batch_size / world_size`` samples per step (the global
        batch is ``batch_size``); ``num_workers`` DataLoader processes read in parallel.
        """
        rank, world = distributed.placement()
        lanes = self.lanes or world * max(1, num_workers)
        if batch_size % lanes:
            raise ValueError(f"batch_size {batch_size} must be a multiple of lanes ({lanes})")
        self._epoch, self._placement, self._sub = epoch, (rank, world), batch_size // lanes
        self._plan(world * max(1, num_workers))
        loader = DataLoader(self, batch_size=None, num_workers=num_workers)
        it, per_step = iter(loader), lanes // world
        for group in zip(*[it] * per_step):
            parts = list(zip(*group))
            yield tuple(torch.cat(p) for p in parts[:-1]), torch.cat(parts[-1])

    def loss(self, module, loss_fn, batch_size: int) -> float:
        """Mean of ``loss_fn`` over every sample (chunks dealt to ranks, summed across them)."""
        rank, world = distributed.placement()
        total, count = 0.0, 0
        with torch.no_grad():
            for c in range(rank, len(self.chunks), world):
                arrays = [torch.as_tensor(x, dtype=self.dtype) for x in self.read_chunk(c)]
                for s in range(0, len(arrays[0]), batch_size):
                    b = [x[s : s + batch_size] for x in arrays]
                    total += float(loss_fn(module(*b[:-1]), b[-1])) * len(b[-1])
                    count += len(b[-1])
        return distributed.mean(total, count)
