"""The input/output contract a pyclosure model file carries.

``pyclosure.export`` embeds it as the TorchScript extra file
``pyclosure_contract.json``, in an AOTInductor package (``.pt2``) as the
metadata key ``pyclosure_contract``, or in a native program's header (``.nnp``); the C bridge reads it at load time and
checks every call against it. Both are zip archives, read here without torch
(and a package without loading its library). Shapes are per sample, in torch
order, without the leading batch dimension. A dimension is an int (fixed; ``-1`` for any extent)
or, for outputs only, ``{"input": NAME, "dim": D, "offset": K}``: the extent of
input NAME's per-sample dim D plus K (N cells give N + 1 faces).
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Sequence

__all__ = [
    "EXTRA_FILE",
    "NATIVE_MAGIC",
    "PACKAGE_KEY",
    "SCHEMA",
    "describe",
    "is_native",
    "is_package",
    "output_shape",
    "read_contract",
    "read_package_metadata",
]

PathLike = str | os.PathLike

SCHEMA = "pyclosure.contract/1"
EXTRA_FILE = "pyclosure_contract.json"
PACKAGE_KEY = "pyclosure_contract"
_AOTI_MODEL = "/data/aotinductor/model/"
NATIVE_MAGIC = b"PYCLNATV"


def is_native(path: PathLike) -> bool:
    """True when ``path`` is a native program (by content: it starts with the native magic)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(NATIVE_MAGIC)) == NATIVE_MAGIC
    except OSError:
        return False


def _native_contract(path: PathLike) -> dict:
    """The contract of a native program, read from its header (nothing is loaded or run)."""
    from .errors import FileAccessError, ModelFormatError

    try:
        with open(path, "rb") as f:
            head = f.read(128)
            if head[:8] != NATIVE_MAGIC:
                raise ModelFormatError(
                    f"'{path}' is not a native program: it does not start with "
                    f"{NATIVE_MAGIC.decode()}; export one with "
                    "pyclosure.export(module, 'closure.nnp', example)"
                )
            if len(head) < 128:
                raise ModelFormatError(
                    f"'{path}' is not a valid native program: truncated ({len(head)} bytes)"
                )
            offset, length = struct.unpack_from("<QQ", head, 72)
            if offset != 128 or length > (1 << 26):
                raise ModelFormatError(
                    f"'{path}' is not a valid native program: contract at {offset}, {length} bytes"
                )
            text = f.read(length)
    except FileNotFoundError as exc:
        raise FileAccessError(f"cannot open model file '{path}': {exc.strerror}") from exc
    if len(text) != length:
        raise ModelFormatError(f"'{path}' is not a valid native program: truncated in its contract")
    try:
        return json.loads(text.decode("utf-8"))
    except ValueError as exc:
        raise ModelFormatError(f"'{path}': the native program's contract is not valid JSON: {exc}") from exc


def _members(path: PathLike) -> list[str]:
    """The archive's member names; FileAccessError / ModelFormatError when it cannot be read."""
    from .errors import FileAccessError, ModelFormatError

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except FileNotFoundError as exc:
        raise FileAccessError(f"cannot open model file '{path}': {exc.strerror}") from exc
    except zipfile.BadZipFile as exc:
        if str(path).endswith(".pt2"):
            raise ModelFormatError(
                f"'{path}' is not a readable AOTInductor package (truncated or corrupt?): {exc}"
            ) from exc
        raise ModelFormatError(
            f"'{path}' is not a TorchScript archive with a readable contract: {exc}"
        ) from exc


def _metadata_member(path: PathLike, names: list[str]) -> str:
    """The package's model metadata member; ModelFormatError for a zip that is not an AOTInductor package."""
    from .errors import ModelFormatError

    found = sorted(n for n in names if _AOTI_MODEL in n and n.endswith("_metadata.json"))
    if found:
        return next((n for n in found if n.endswith(".wrapper_metadata.json")), found[0])
    if any(n.endswith("/archive_format") for n in names) and not any(
        "/data/aotinductor/" in n for n in names
    ):
        raise ModelFormatError(
            f"'{path}' is a torch.export archive, not an AOTInductor package; compile it with "
            "pyclosure.export(..., format='pt2')"
        )
    if any(n.endswith("/data.pkl") for n in names):
        raise ModelFormatError(
            f"'{path}' is a TorchScript file named .pt2; name it .pt, or export an AOTInductor "
            "package with pyclosure.export(..., format='pt2')"
        )
    raise ModelFormatError(
        f"'{path}' is not an AOTInductor package: no {_AOTI_MODEL.strip('/')}/*_metadata.json"
    )


def is_package(path: PathLike) -> bool:
    """True when ``path`` is an AOTInductor package (by content: a zip with AOTInductor model members)."""
    from .errors import ClosureError

    try:
        return any(_AOTI_MODEL in n for n in _members(path))
    except ClosureError:
        return False


def read_package_metadata(path: PathLike) -> dict:
    """The AOTInductor metadata of a ``.pt2`` package (``AOTI_DEVICE_KEY``, ``AOTI_CPU_ISA``, ...).

    Read from the zip; the package's library is not loaded. Values are strings
    as AOTInductor stores them (the contract is the JSON text under
    ``pyclosure_contract``). Raises ``pyclosure.errors.ModelFormatError`` for
    anything that is not a readable AOTInductor package.
    """
    from .errors import ModelFormatError

    member = _metadata_member(path, _members(path))
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(member).decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:  # ValueError: bad JSON
        raise ModelFormatError(
            f"'{path}' is not a readable AOTInductor package (truncated or corrupt?): {exc}"
        ) from exc
    if not isinstance(metadata, dict):
        raise ModelFormatError(f"'{path}': {member} holds no metadata record")
    return metadata


def read_contract(path: PathLike) -> dict | None:
    """Return the contract dict embedded in a model file, or None for a file without one.

    Reads the zip archive directly (no torch needed): a TorchScript file's
    extra file, or an AOTInductor package's metadata (its library is not
    loaded). Raises ``pyclosure.errors.ModelFormatError`` if the file is
    neither, with a message that says what it is when that is known.
    """
    from .errors import ModelFormatError

    if str(path).endswith(".nnp") or is_native(path):
        return _native_contract(path)
    names = _members(path)
    if str(path).endswith(".pt2") or any(_AOTI_MODEL in n for n in names):
        text = read_package_metadata(path).get(PACKAGE_KEY)
        try:
            return None if text is None else json.loads(text)
        except ValueError as exc:
            raise ModelFormatError(
                f"'{path}': the package's pyclosure contract is not valid JSON: {exc}"
            ) from exc
    extra = [n for n in names if n.endswith("/extra/" + EXTRA_FILE)]
    if not extra:
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(extra[0]).decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise ModelFormatError(
            f"'{path}' is not a TorchScript archive with a readable contract: {exc}"
        ) from exc


def output_shape(contract: dict, index: int, input_shapes: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """Full torch-order shape of output ``index`` for a call with the given input shapes.

    Returns None when the contract leaves some extent free (-1).
    """
    names = [io["name"] for io in contract["inputs"]]
    shape = [input_shapes[0][0]]
    for dim in contract["outputs"][index]["shape"]:
        if isinstance(dim, dict):
            src = dim["input"] if isinstance(dim["input"], int) else names.index(dim["input"])
            shape.append(input_shapes[src][1 + dim["dim"]] + dim.get("offset", 0))
        elif dim < 0:
            return None
        else:
            shape.append(dim)
    return tuple(shape)


def _extent_range(r: Sequence[int | None] | None) -> str:
    return "fixed" if r is None else f"{r[0]}..{'' if r[1] is None else r[1]}"


def _engine_line(contract: dict) -> str:
    engine = contract.get("engine")
    if contract.get("format") == "native" and engine:
        return (
            f"format: native, a program of {len(engine.get('ops') or [])} ops for the native C kernels "
            f"(arithmetic contract {engine.get('arith')}; CPU only)"
        )
    if contract.get("format") != "pt2" or not engine:
        return f"format: {contract.get('format', 'torchscript')}"
    if engine.get("device", "cpu") != "cpu":
        return (
            f"format: pt2, an AOTInductor package: {engine['device']} kernels, host code for "
            f"{engine.get('machine')}, torch {engine.get('torch_version')}"
        )
    features = " ".join(engine.get("cpu_features") or []) or "none listed"
    return (
        f"format: pt2, an AOTInductor package: native {engine.get('device')} code for "
        f"{engine.get('machine')} {engine.get('cpu_isa')} (needs {features}; "
        f"simdlen {engine.get('simdlen')}), torch {engine.get('torch_version')}"
    )


def describe(contract: dict) -> str:
    """A few human-readable lines about a contract (used by ``pyclosure info``)."""

    def extents(shape: list) -> list[str]:
        out = []
        for d in shape:
            if isinstance(d, dict):
                off = d.get("offset", 0)
                out.append(f"{d['input']}[{d['dim']}]" + (f"{off:+d}" if off else ""))
            else:
                out.append(":" if d < 0 else str(d))
        return out

    def dims(shape: list) -> str:
        return "(batch" + "".join(", " + x for x in extents(shape)) + ")"

    def fortran(shape: list) -> str:  # the same array as a Fortran host declares it: torch order reversed
        return "(" + "".join(x + ", " for x in reversed(extents(shape))) + "ncol)"

    header = (
        f"pyclosure contract {contract.get('schema')}, written by pyclosure "
        f"{contract.get('pyclosure_version')} with torch {contract.get('torch_version')}"
    )
    lines = [header, _engine_line(contract)]
    if contract.get("batch_range"):
        lines.append(f"batch sizes: {_extent_range(contract['batch_range'])}")
    for kind in ("inputs", "outputs"):
        lines.append(f"{kind}:")
        for io in contract[kind]:
            extra = f"  [{io['units']}]" if io.get("units") else ""
            meaning = io.get("meaning")
            if meaning:
                extra += "  " + json.dumps(meaning, sort_keys=True)
            free = [
                f"dim {d}: {_extent_range(r)}" for d, r in enumerate(io.get("ranges") or []) if r is not None
            ]
            if free:
                extra += "  sizes " + ", ".join(free)
            lines.append(
                f"  {io['name']:<16} {io.get('dtype', '?'):<8} torch {dims(io['shape'])}{extra}"
                f"  Fortran {fortran(io['shape'])}"
            )
    for key in ("weights_sha256", "training_data", "lipschitz_bound", "ood", "state", "extra"):
        if contract.get(key) not in (None, [], {}):
            lines.append(f"{key}: {json.dumps(contract[key], sort_keys=True)}")
    return "\n".join(lines)
