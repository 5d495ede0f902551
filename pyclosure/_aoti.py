"""Run an AOTInductor package (``.pt2``) from Python, for replay and tests.

The package's contract is read and checked first (from the zip, without
loading anything); only then is its library loaded through
``torch._inductor.aoti_load_package``. Loading a package runs native code
built by whoever exported it: load only packages you trust.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

import torch
from torch import Tensor

from ._pt2 import host_cpu_features
from .contract import read_contract, read_package_metadata
from .errors import ArgumentCountError, DtypeError, ModelFormatError, RankError, ShapeError

__all__ = ["Package", "load_package"]


def _check_machine(path: str, contract: dict) -> None:
    """ModelFormatError when the package was built for another machine or for CPU features this one lacks."""
    engine = contract.get("engine") or {}
    if engine.get("device", "cpu") != "cpu":
        raise ModelFormatError(
            f"'{path}' was built for device {engine['device']!r}; only cpu packages run here"
        )
    if engine.get("machine") and engine["machine"] != platform.machine():
        raise ModelFormatError(
            f"'{path}' was built for {engine['machine']}, this machine is {platform.machine()}"
        )
    missing = sorted(set(engine.get("cpu_features") or []) - set(host_cpu_features()))
    if missing:
        raise ModelFormatError(
            f"'{path}' needs CPU features this CPU lacks: {', '.join(missing)} "
            f"(built for {engine.get('cpu_isa')})"
        )


class Package:
    """A loaded AOTInductor package: call it with tensors, get a tuple of tensors.

    Attributes
    ----------
    path : str
    contract : dict
        The embedded contract; every call is checked against its inputs.
    metadata : dict
        AOTInductor's own metadata (``AOTI_CPU_ISA``, ...).
    """

    def __init__(self, path: str, contract: dict, metadata: dict, runner: Callable) -> None:
        self.path, self.contract, self.metadata = path, contract, metadata
        self._runner = runner

    def _check(self, args: tuple[Tensor, ...]) -> None:
        """Raise the pyclosure error of the first input the contract does not allow."""
        wanted = self.contract["inputs"]
        if len(args) != len(wanted):
            raise ArgumentCountError(f"{len(args)} inputs given, the contract has {len(wanted)}")
        batch = args[0].shape[0] if args and args[0].dim() else None
        for x, io in zip(args, wanted):
            name = io["name"]
            if str(x.dtype).replace("torch.", "") != io["dtype"]:
                raise DtypeError(f"input {name}: dtype {x.dtype}, the contract says {io['dtype']}")
            if x.dim() != 1 + len(io["shape"]):
                raise RankError(f"input {name}: rank {x.dim()}, the contract says {1 + len(io['shape'])}")
            if x.shape[0] != batch:
                raise ShapeError(f"input {name}: batch {x.shape[0]}, the first input's is {batch}")
            limits = [self.contract.get("batch_range")] + list(io.get("ranges") or [None] * len(io["shape"]))
            fixed = [None] + io["shape"]
            for d, n in enumerate(x.shape):
                r = limits[d]
                if r is not None and (n < r[0] or (r[1] is not None and n > r[1])):
                    raise ShapeError(f"input {name}: extent {n} of dim {d} is outside {r[0]}..{r[1] or ''}")
                if fixed[d] is not None and fixed[d] >= 0 and n != fixed[d]:
                    raise ShapeError(f"input {name}: extent {n} of dim {d}, the contract says {fixed[d]}")

    def __call__(self, *args: Tensor) -> tuple[Tensor, ...]:
        """Run the package on tensors ``(batch, ...)``; return a tuple of tensors."""
        self._check(args)
        with torch.no_grad():
            out = self._runner(*args)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def load_package(path: str | os.PathLike) -> Package:
    """Check an AOTInductor package's contract, then load it; return a :class:`Package`.

    Raises
    ------
    pyclosure.errors.ModelFormatError
        Not an AOTInductor package, no pyclosure contract, or built for a
        machine or CPU features this one does not have.
    """
    path = str(path)
    metadata = read_package_metadata(path)
    contract = read_contract(path)
    if contract is None:
        raise ModelFormatError(f"'{path}' is an AOTInductor package without a pyclosure contract")
    if contract.get("format") != "pt2":
        raise ModelFormatError(f"'{path}': the contract says format {contract.get('format')!r}, not 'pt2'")
    _check_machine(path, contract)
    from torch._inductor import aoti_load_package

    runner = aoti_load_package(path)
    return Package(path, contract, metadata, runner)
