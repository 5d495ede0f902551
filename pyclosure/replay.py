"""Replay recorded forward calls and sign off a coupled run.

A host model run with recording on (``nn_record_start``, or the environment
variable ``NN_CLOSURE_RECORD``) leaves ``record_<call>.npz`` files. :func:`replay`
reruns every record through the C bridge (cffi: the path Fortran used) and
through torch in Python, compares each output bit for bit (the largest
difference in ulps when not equal), and, when the model's contract declares
flux-form outputs (``meaning.kind == "flux_at_faces"``) and the record holds
the host's ``state_before``, ``state_after``, ``flux``, ``dt`` and ``dx``
(optionally ``source``), checks the conservation budget of the host's update
(:mod:`pyclosure.budget`). The host closes the loop around the model with
two more optional arrays: ``given_<input>``, the host state an input was built
from (compared bit for bit with the recorded input: the model got what the
host had), and ``applied_<output>``, what the host applied (compared with the
recorded output: the host used what the model returned).

Verdicts per record: ``equal``, ``mismatch``, ``not_comparable`` (made on another
device, thread count or libtorch build, and not equal: a difference there is no
failure), ``budget_violation``, ``corrupt`` (checksum or format) and ``partial``
(the run stopped while writing it). Only ``mismatch``, ``budget_violation`` and
``corrupt`` fail a replay.
"""

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .budget import ulps_between, update_budget
from .contract import read_contract
from .errors import ClosureError

RECORD_SCHEMA = "pyclosure.record/1"
FAILING = ("mismatch", "budget_violation", "corrupt")
BUDGET_ARRAYS = ("state_before", "state_after", "flux", "dt", "dx")


class CorruptRecord(Exception):
    """A record that fails its checksum or is not a record."""


def find_records(directory):
    """(complete record files, partial ones) under ``directory``, recursively, sorted."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"record directory '{root}' does not exist")
    complete = sorted(root.rglob("record_*.npz"))
    partial = sorted(root.rglob("record_*.npz.partial"))
    return complete, partial


def read_record(path):
    """``(meta, arrays)`` of one record, after checking every byte.

    Checks the zip's CRC-32 of every member and the SHA-256 that meta.json
    lists for every array; raises :class:`CorruptRecord` naming what failed.
    Arrays are read with ``allow_pickle=False``.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise CorruptRecord(f"CRC-32 checksum mismatch in member '{bad}'")
            meta = json.loads(zf.read("meta.json"))
            if meta.get("schema") != RECORD_SCHEMA:
                raise CorruptRecord(f"meta.json schema is {meta.get('schema')!r}, expected {RECORD_SCHEMA!r}")
            members = set(zf.namelist()) - {"meta.json"}
            if members != set(meta["arrays"]):
                raise CorruptRecord(f"members {sorted(members)} do not match meta.json {sorted(meta['arrays'])}")
            arrays = {}
            for member, info in meta["arrays"].items():
                data = zf.read(member)
                if hashlib.sha256(data).hexdigest() != info["sha256"]:
                    raise CorruptRecord(f"SHA-256 mismatch in member '{member}'")
                arrays[member] = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            return meta, arrays
    except CorruptRecord:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        raise CorruptRecord(f"not a readable record (truncated or damaged): {exc}") from exc


def _role(meta, arrays, role):
    return [(info["name"], arrays[m]) for m, info in meta["arrays"].items() if info["role"] == role]


def compare(name, got, want):
    """Bit-for-bit comparison of one array; a dict for the report."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return {"array": name, "equal": False,
                "message": f"shape/dtype {got.shape} {got.dtype} against recorded {want.shape} {want.dtype}"}
    same = got.tobytes() == want.tobytes()
    out = {"array": name, "equal": same}
    if not same:
        differ = got.view(np.uint8).reshape(got.shape + (-1,)) != want.view(np.uint8).reshape(want.shape + (-1,))
        differ = differ.reshape(got.size, -1).any(axis=1)
        out["elements_differing"] = int(differ.sum())
        out["first_index"] = int(np.argmax(differ))
        if got.dtype.kind == "f":
            finite = np.isfinite(got.reshape(-1)) & np.isfinite(want.reshape(-1))
            if finite.any():
                out["max_ulps"] = int(ulps_between(got.reshape(-1)[finite], want.reshape(-1)[finite]).max())
            out["max_abs_diff"] = float(np.nanmax(np.abs(got.astype(np.float64) - want.astype(np.float64))))
    return out


class _Runner:
    """The model loaded once per path (bridge and torch), threads set per record."""

    def __init__(self, model_path, device, use_torch):
        from .bridge import Model, version

        self.bridge = Model(model_path, device=device)
        self.bridge_libtorch = version()[1]
        self.torch_module = None
        if use_torch:
            import torch

            self.torch = torch
            self.torch_module = torch.jit.load(str(model_path), map_location=device)
            self.torch_module.eval()
        self.device = self.bridge.device

    def run_bridge(self, inputs, outputs):
        outs = [np.empty_like(o) for _, o in outputs]
        self.bridge.forward(*[np.ascontiguousarray(a) for _, a in inputs], out=outs)
        return outs

    def run_torch(self, inputs):
        torch = self.torch
        with torch.inference_mode():
            r = self.torch_module(*[torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for _, a in inputs])
        r = r if isinstance(r, (tuple, list)) else (r,)
        return [t.detach().cpu().numpy() for t in r]


def _flux_outputs(contract):
    if not contract:
        return {}
    return {io["name"]: io["meaning"] for io in contract["outputs"]
            if isinstance(io.get("meaning"), dict) and io["meaning"].get("kind") == "flux_at_faces"}


def _check_path(label, outputs, results, comparable_reasons):
    arrays = []
    if len(results) != len(outputs):
        arrays.append({"array": "*", "equal": False,
                       "message": f"{label} returned {len(results)} outputs, the record has {len(outputs)}"})
    else:
        arrays = [compare(n, r, o) for (n, o), r in zip(outputs, results, strict=True)]
    equal = all(a["equal"] for a in arrays)
    return {"equal": equal, "comparable": not comparable_reasons, "reasons": comparable_reasons, "arrays": arrays}


def replay_record(path, runner, *, threads=None, torch_version=None, contract=None, budgets=True,
                  cell_update="exact"):
    """Replay one record file; returns its report entry."""
    entry = {"file": str(path)}
    try:
        meta, arrays = read_record(path)
    except CorruptRecord as exc:
        return {**entry, "status": "corrupt", "message": str(exc)}
    inputs, outputs, host = (_role(meta, arrays, r) for r in ("input", "output", "host"))
    entry.update(call=meta["call"], recorded_threads=meta["threads"], recorded_device=meta["device"],
                 recorded_libtorch=meta["libtorch"], model_sha256=meta["model_sha256"])
    n_threads = meta["threads"] if threads is None else int(threads)
    from .bridge import set_num_threads

    set_num_threads(n_threads)
    entry["replay_threads"] = n_threads
    base = []
    if meta["device"] != runner.device:
        base.append(f"recorded on {meta['device']}, replayed on {runner.device}")
    if meta["threads"] != n_threads:
        base.append(f"recorded with {meta['threads']} thread(s), replayed with {n_threads}")
    paths = {}
    bridge_reasons = base + ([f"recorded with libtorch {meta['libtorch']}, bridge runs {runner.bridge_libtorch}"]
                             if meta["libtorch"] != runner.bridge_libtorch else [])
    try:
        paths["bridge"] = _check_path("the bridge", outputs, runner.run_bridge(inputs, outputs), bridge_reasons)
    except ClosureError as exc:  # a model that cannot run on the recorded inputs is a mismatch
        paths["bridge"] = {"equal": False, "comparable": True, "reasons": [], "arrays": [],
                           "message": f"the bridge failed: {exc}"}
    if runner.torch_module is not None:
        tv = (torch_version or "").split("+")[0]
        torch_reasons = base + ([f"recorded with libtorch {meta['libtorch']}, Python runs torch {tv}"]
                                if tv and meta["libtorch"] != tv else [])
        try:
            paths["torch"] = _check_path("torch", outputs, runner.run_torch(inputs), torch_reasons)
        except RuntimeError as exc:
            paths["torch"] = {"equal": False, "comparable": True, "reasons": [], "arrays": [],
                              "message": f"torch failed: {exc}"}
    entry["paths"] = paths
    real_mismatch = any(not p["equal"] and p["comparable"] for p in paths.values())
    if real_mismatch:
        status = "mismatch"
        bad = [(k, a) for k, p in paths.items() if not p["equal"] and p["comparable"] for a in p["arrays"]
               if not a["equal"]] or [(k, {"array": "*"}) for k, p in paths.items() if not p["equal"]]
        k, a = bad[0]
        entry["message"] = (f"call {meta['call']}: output '{a['array']}' differs through {k}"
                            + (f" by up to {a['max_ulps']} ulp(s)" if "max_ulps" in a else "")
                            + (f" ({paths[k]['message']})" if "message" in paths[k] else ""))
    elif all(p["equal"] for p in paths.values()):
        status = "equal"
    else:
        status = "not_comparable"
        entry["message"] = "; ".join(sorted({r for p in paths.values() for r in p["reasons"]}))
    host_arrays = dict(host)
    given = {}
    for name, recorded_input in inputs:
        g = host_arrays.get(f"given_{name}")
        if g is not None:
            c = compare(name, recorded_input.reshape(-1), g.reshape(-1)) if g.size == recorded_input.size else \
                {"array": name, "equal": False, "message": f"given_{name} has {g.size} values, input has "
                                                            f"{recorded_input.size}"}
            given[name] = c
            if not c["equal"]:
                status = "mismatch"
                entry["message"] = (f"call {meta['call']}: input '{name}' is not the host's given_{name}"
                                    + (f" (up to {c['max_ulps']} ulp(s) apart)" if "max_ulps" in c else ""))
    entry["inputs_given"] = given or None
    checks = {}
    for name, meaning in _flux_outputs(contract).items():
        recorded = dict(outputs).get(name)
        applied = host_arrays.get(f"applied_{name}")
        if recorded is not None and applied is not None:
            c = compare(f"applied_{name}", applied.reshape(-1), recorded.reshape(-1)) \
                if applied.size == recorded.size else {"array": f"applied_{name}", "equal": False,
                                                       "message": f"{applied.size} values, output has {recorded.size}"}
            checks[f"applied_{name}"] = c
            if not c["equal"] and status in ("equal", "not_comparable"):
                status = "budget_violation"
                entry["message"] = f"call {meta['call']}: the host applied a flux that is not the model's '{name}'"
        if budgets and all(k in host_arrays for k in BUDGET_ARRAYS):
            try:
                check = update_budget(host_arrays["state_before"], host_arrays["state_after"], host_arrays["flux"],
                                      host_arrays["dt"], host_arrays["dx"], host_arrays.get("source"),
                                      boundary=meaning.get("boundary", "periodic"), mode=cell_update).as_dict()
            except ValueError as exc:
                check = {"closes": False, "message": str(exc)}
            checks["budget"] = check
            if not check["closes"] and status in ("equal", "not_comparable"):
                status = "budget_violation"
                entry["message"] = f"call {meta['call']}: budget: {check['message']}"
            break
    entry["budget"] = checks or None
    entry["status"] = status
    return entry


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def replay(directory, model, *, threads=None, device="cpu", use_torch=True, budgets=True, cell_update="exact"):
    """Replay every record under ``directory`` through ``model``; returns the report dict.

    ``threads=None`` replays each record with the thread count it was made
    with (the only count at which bit-for-bit is promised).
    """
    complete, partial = find_records(directory)
    model = os.fspath(model)
    contract = read_contract(model)
    runner = _Runner(model, device, use_torch)
    torch_version = None
    if use_torch:
        import torch

        torch_version = torch.__version__
    from .bridge import get_num_threads, set_num_threads

    saved = get_num_threads()
    try:
        records = [replay_record(p, runner, threads=threads, torch_version=torch_version, contract=contract,
                                 budgets=budgets, cell_update=cell_update) for p in complete]
    finally:
        set_num_threads(saved)
    records += [{"file": str(p), "status": "partial",
                 "message": "incomplete: the run stopped while writing this record"} for p in partial]
    sha = _sha256(model)
    recordings = {}
    for summary in sorted(Path(directory).rglob("recording.json")):
        try:
            recordings[str(summary.parent)] = json.loads(summary.read_text())
        except (OSError, ValueError) as exc:
            recordings[str(summary.parent)] = {"state": "unreadable", "message": str(exc)}
    counts = {s: sum(r["status"] == s for r in records)
              for s in ("equal", "mismatch", "not_comparable", "budget_violation", "corrupt", "partial")}
    budget_checked = [r for r in records if r.get("budget") and "budget" in r["budget"]]
    summary = {
        "records": len(records), **counts,
        "budgets_checked": len(budget_checked),
        "budgets_closed": sum(bool(r["budget"]["budget"].get("closes")) for r in budget_checked),
        "ok": len(complete) > 0 and not any(r["status"] in FAILING for r in records),
    }
    if not complete:
        summary["message"] = f"no complete records under '{directory}'"
    return {
        "schema": "pyclosure.replay/1",
        "directory": str(directory),
        "model": {"path": model, "sha256": sha,
                  "matches_recorded": all(r.get("model_sha256", sha) == sha for r in records)},
        "device": runner.device, "threads": "as recorded" if threads is None else int(threads),
        "cell_update": cell_update,
        "summary": summary,
        "recordings": recordings,
        "records": records,
    }


def format_report(report, limit=20):
    """A short text summary: one line per record (failures first), then totals."""
    lines = []
    recs = sorted(report["records"], key=lambda r: (r["status"] not in FAILING, r.get("call", 0)))
    for r in recs[:limit]:
        b = (r.get("budget") or {}).get("budget")
        extra = f"  budget {b['domain_residual']:.2e} <= {b['domain_bound']:.2e}" if b and "domain_bound" in b else ""
        lines.append(f"{r['status']:<17} {Path(r['file']).name:<26}{extra}  {r.get('message', '')}".rstrip())
    if len(recs) > limit:
        lines.append(f"... and {len(recs) - limit} more records")
    s = report["summary"]
    lines.append("")
    lines.append(f"records {s['records']}: equal {s['equal']}, mismatch {s['mismatch']}, not comparable "
                 f"{s['not_comparable']}, budget violations {s['budget_violation']}, corrupt {s['corrupt']}, "
                 f"partial {s['partial']}; budgets closed {s['budgets_closed']}/{s['budgets_checked']}")
    if not report["model"]["matches_recorded"]:
        lines.append("note: the model file's SHA-256 differs from the one the records were made with")
    for where, rec in report["recordings"].items():
        if rec.get("state") not in ("stopped",):
            lines.append(f"recording {where}: {rec.get('state')}: {rec.get('message', '')}".rstrip(": "))
    lines.append("replay: " + ("OK" if s["ok"] else "FAILED" + (f" ({s['message']})" if "message" in s else "")))
    return "\n".join(lines)
