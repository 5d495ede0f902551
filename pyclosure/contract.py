"""The input/output contract a pyclosure model file carries.

``pyclosure.export`` embeds it as the TorchScript extra file
``pyclosure_contract.json``; the C bridge reads it at load time and checks
every call against it. Shapes are per sample, in torch order, without the
leading batch dimension. A dimension is an int (fixed; ``-1`` for any extent)
or, for outputs only, ``{"input": NAME, "dim": D, "offset": K}``: the extent of
input NAME's per-sample dim D plus K (N cells give N + 1 faces).
"""

import json
import zipfile

SCHEMA = "pyclosure.contract/1"
EXTRA_FILE = "pyclosure_contract.json"


def read_contract(path):
    """Return the contract dict embedded in a model file, or None for a plain TorchScript file.

    Reads the zip archive directly (no torch needed). Raises
    ``pyclosure.errors.ModelFormatError`` if the file is not a TorchScript archive.
    """
    from .errors import FileAccessError, ModelFormatError

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + EXTRA_FILE)]
            if not names:
                return None
            return json.loads(archive.read(names[0]).decode("utf-8"))
    except FileNotFoundError as exc:
        raise FileAccessError(f"cannot open model file '{path}': {exc.strerror}") from exc
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"'{path}' is not a TorchScript archive with a readable contract: {exc}") from exc


def output_shape(contract, index, input_shapes):
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


def describe(contract):
    """A few human-readable lines about a contract (used by ``pyclosure info``)."""

    def dims(shape):
        out = []
        for d in shape:
            if isinstance(d, dict):
                off = d.get("offset", 0)
                out.append(f"{d['input']}[{d['dim']}]" + (f"{off:+d}" if off else ""))
            else:
                out.append(":" if d < 0 else str(d))
        return "(batch" + "".join(", " + x for x in out) + ")"

    header = (f"pyclosure contract {contract.get('schema')}, written by pyclosure "
              f"{contract.get('pyclosure_version')} with torch {contract.get('torch_version')}")
    lines = [header]
    for kind in ("inputs", "outputs"):
        lines.append(f"{kind}:")
        for io in contract[kind]:
            extra = f"  [{io['units']}]" if io.get("units") else ""
            meaning = io.get("meaning")
            if meaning:
                extra += "  " + json.dumps(meaning, sort_keys=True)
            lines.append(f"  {io['name']:<16} {io.get('dtype', '?'):<8} torch {dims(io['shape'])}{extra}")
    for key in ("weights_sha256", "training_data", "lipschitz_bound", "ood"):
        if contract.get(key) is not None:
            lines.append(f"{key}: {json.dumps(contract[key], sort_keys=True)}")
    return "\n".join(lines)
