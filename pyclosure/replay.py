"""Replay recorded forward calls and sign off a coupled run.

A host model run with recording on (``nn_record_start``, or the environment
variable ``NN_CLOSURE_RECORD``) leaves ``record_<call>.npz`` files. :func:`replay`
reruns every record through the C bridge (cffi: the path Fortran used) and
through torch in Python (``torch.jit.load`` for TorchScript, Python's
AOTInductor loader for a ``.pt2`` package; for a native program, ``.nnp``, the
cffi twin :mod:`pyclosure._native_twin`, the same C kernels without the bridge
or torch) and compares each output with the record bit for bit
(:mod:`pyclosure._verdict`). A native program gives the same bits at any thread
count and libtorch build, so for one those differences do not loosen the check. An optional reference model
(the eager module exported as TorchScript, say) is run too and its difference
from the record is reported as information, never as a failure: a package's
kernels are not eager torch's (inductor's tanh differs in the last bits).
It then checks the host's side of the record:
the inputs were the host's state, the host applied the model's flux, that flux
is in the total flux of the update, and the update conserves
(:mod:`pyclosure._host`, :mod:`pyclosure.budget`).

Verdicts per record:

``equal``
    every output reproduced bit for bit through the bridge and torch, and
    every host check that the record allows held.
``within_tolerance``
    replayed at a setting where bit for bit is not promised (another device,
    thread count or libtorch build than recorded), outputs not bit for bit
    but within ``rtol`` of the record, with the bridge and torch agreeing
    with each other bit for bit; host checks held. Passes.
``mismatch``
    an output differs at the recorded setting, or beyond ``rtol`` elsewhere,
    or the bridge and torch disagree, or an input was not the host's state.
``budget_violation``
    the host applied another flux than the model's, the closure's flux is not
    in the total flux the update used, a cell or the domain budget does not
    close, or the update was recorded without what ties the closure to it.
``other_model``
    the model file's SHA-256 is not the one the record was made with (unless
    ``allow_other_model``: then the record gets the verdict of its outputs).
``corrupt``
    checksum or format; ``partial``: the run stopped while writing it.

``mismatch``, ``budget_violation``, ``other_model`` and ``corrupt`` fail a replay.
"""

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ._host import check_given, check_update
from ._verdict import compare, outputs_verdict, tag_tolerance
from .contract import read_contract
from .errors import ArgumentError, ClosureError, FileAccessError

RECORD_SCHEMA = "pyclosure.record/1"
STATUSES = ("equal", "within_tolerance", "mismatch", "budget_violation", "other_model", "corrupt", "partial")
FAILING = ("mismatch", "budget_violation", "other_model", "corrupt")
__all__ = [
    "FAILING",
    "STATUSES",
    "CorruptRecord",
    "compare",
    "find_records",
    "format_report",
    "read_record",
    "replay",
    "replay_record",
]


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
                raise CorruptRecord(
                    f"members {sorted(members)} do not match meta.json {sorted(meta['arrays'])}"
                )
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


class _Twin:
    """A native program run by the cffi twin: numpy inputs in, a list of numpy outputs out."""

    def __init__(self, path):
        from ._native_twin import Program

        self.program = Program(path)

    def __call__(self, inputs):
        if len(inputs) != self.program.num_inputs:
            raise ArgumentError(
                f"the native program takes {self.program.num_inputs} input(s), the record has {len(inputs)}"
            )
        return [self.program(*(np.ascontiguousarray(a) for _, a in inputs))]


class _Runner:
    """The model loaded once per path (bridge and torch, or the cffi twin), threads set per record."""

    def __init__(self, model_path, device, use_torch, reference=None, weights=None):
        from .bridge import Model, Trainer, version

        native = _is_native(model_path)
        self.sha256 = _sha256(model_path)  # the model file the records name, whatever version runs
        if native and weights is not None:  # the native program the host's sync put in (online.read_versions)
            model_path = weights
        self.bridge = Model(model_path, device=device)
        if weights is not None and not native:  # a weight version of an online run, synced in as the host did
            Trainer(self.bridge, spec="pyclosure.online:weights_spec", weights=weights).sync(self.bridge)
        self.engine = self.bridge.engine
        self.bridge_libtorch = version()[1]
        self.torch_module = self.reference = None
        if (use_torch and not _is_native(model_path)) or reference is not None:
            import torch

            self.torch = torch
        if use_torch:
            self.torch_module = self._load(model_path, device)
            if weights is not None and not native:
                self.torch_module.load_state_dict(self.torch.load(str(weights), weights_only=True))
        if reference is not None:
            self.reference = self._load(reference, device)
        self.device = self.bridge.device

    def _load(self, path, device):
        if _is_native(path):
            return _Twin(path)
        if str(path).endswith(".pt2"):
            from ._aoti import load_package

            return load_package(path)
        module = self.torch.jit.load(str(path), map_location=device)
        return module.eval()

    def run_bridge(self, inputs, outputs):
        outs = [np.empty_like(o) for _, o in outputs]
        self.bridge.forward(*[np.ascontiguousarray(a) for _, a in inputs], out=outs)
        return outs

    def run_torch(self, inputs, module=None):
        module = module or self.torch_module
        if isinstance(module, _Twin):
            return module(inputs)
        torch = self.torch
        with torch.inference_mode():
            r = module(*[torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for _, a in inputs])
        r = r if isinstance(r, (tuple, list)) else (r,)
        return [t.detach().cpu().numpy() for t in r]

    def reference_diff(self, inputs, outputs):
        """The reference model's largest difference from the recorded outputs (information)."""
        try:
            results = self.run_torch(inputs, self.reference)
        except (RuntimeError, ClosureError) as exc:  # a package's loader raises pyclosure's own errors
            return {"message": f"the reference model failed: {exc}"}
        if len(results) != len(outputs):
            return {
                "message": f"the reference model returned {len(results)} outputs, "
                f"the record has {len(outputs)}"
            }
        diffs = [compare(n, r, o) for (n, o), r in zip(outputs, results, strict=True)]
        return {
            "equal": all(d["equal"] for d in diffs),
            "max_rel_diff": max((d.get("rel_diff", 0.0) for d in diffs), default=0.0),
        }


def _is_native(path):
    return str(path).endswith(".nnp")


def _check_path(label, outputs, results, reasons, rtol):
    if len(results) != len(outputs):
        arrays = [
            {
                "array": "*",
                "equal": False,
                "rel_diff": float("inf"),
                "message": f"{label} returned {len(results)} outputs, the record has {len(outputs)}",
            }
        ]
    else:
        arrays = tag_tolerance(
            [compare(n, r, o) for (n, o), r in zip(outputs, results, strict=True)], outputs, rtol
        )
    return {
        "equal": all(a["equal"] for a in arrays),
        "comparable": not reasons,
        "reasons": reasons,
        "arrays": arrays,
    }


def _run_paths(meta, runner, inputs, outputs, torch_version, rtol, n_threads):
    """Run the record through the bridge (and torch); per-path comparisons and the engines' agreement."""
    # The native engine's bits do not depend on the thread count or on libtorch (no torch in its call).
    native = runner.engine == "native"
    base = []
    if meta["device"] != runner.device:
        base.append(f"recorded on {meta['device']}, replayed on {runner.device}")
    if meta["threads"] != n_threads and not native:
        base.append(f"recorded with {meta['threads']} thread(s), replayed with {n_threads}")
    recorded_engine = meta.get("engine", "torchscript")  # records before engines existed: TorchScript
    if recorded_engine != runner.engine:
        base.append(f"recorded with the {recorded_engine} engine, replayed with {runner.engine}")
    paths, results = {}, {}
    reasons = base + (
        [f"recorded with libtorch {meta['libtorch']}, bridge runs {runner.bridge_libtorch}"]
        if meta["libtorch"] != runner.bridge_libtorch and not native
        else []
    )
    try:
        results["bridge"] = runner.run_bridge(inputs, outputs)
        paths["bridge"] = _check_path("the bridge", outputs, results["bridge"], reasons, rtol)
    except ClosureError as exc:  # a model that cannot run on the recorded inputs is a mismatch
        paths["bridge"] = {
            "equal": False,
            "comparable": True,
            "reasons": [],
            "arrays": [],
            "message": f"the bridge failed: {exc}",
        }
    if runner.torch_module is not None:
        tv = (torch_version or "").split("+")[0]
        reasons = base + (
            [f"recorded with libtorch {meta['libtorch']}, Python runs torch {tv}"]
            if tv and meta["libtorch"] != tv and not native
            else []
        )
        label = "the cffi twin" if native else "torch"
        try:
            results["torch"] = runner.run_torch(inputs)
            paths["torch"] = _check_path(label, outputs, results["torch"], reasons, rtol)
        except (RuntimeError, ClosureError) as exc:  # a package's loader raises pyclosure's own errors
            paths["torch"] = {
                "equal": False,
                "comparable": True,
                "reasons": [],
                "arrays": [],
                "message": f"{label} failed: {exc}",
            }
    engines = None
    if len(results) == 2 and len(results["bridge"]) == len(results["torch"]):
        diffs = [
            compare(n, b, t)
            for (n, _), b, t in zip(outputs, results["bridge"], results["torch"], strict=False)
        ]
        engines = next((d for d in diffs if not d["equal"]), {"array": "*", "equal": True})
    return paths, engines


def replay_record(
    path,
    runner,
    *,
    threads=None,
    torch_version=None,
    contract=None,
    budgets=True,
    cell_update="exact",
    rtol=None,
    allow_other_model=False,
):
    """Replay one record file; returns its report entry (``status`` is its verdict).

    The steps: read and check the record; describe it; set the thread count; run it
    through the bridge (and torch or the cffi twin); judge the outputs; check the host's
    arrays (given inputs, the update and its budget); judge the model file; conclude.
    """
    try:
        meta, arrays = read_record(path)
    except CorruptRecord as exc:
        return {"file": str(path), "status": "corrupt", "message": str(exc)}
    inputs, outputs, host = (_role(meta, arrays, r) for r in ("input", "output", "host"))
    entry = _record_entry(path, meta, runner)
    entry["replay_threads"] = _set_threads(meta, threads)
    entry["paths"], entry["engines_agree"] = _run_paths(
        meta, runner, inputs, outputs, torch_version, rtol, entry["replay_threads"]
    )
    if runner.reference is not None:
        entry["reference"] = runner.reference_diff(inputs, outputs)
    verdict = outputs_verdict(meta["call"], entry["paths"], entry["engines_agree"])
    entry["outputs"] = verdict[0]
    verdict = _host_checks(
        entry,
        meta["call"],
        inputs,
        outputs,
        dict(host),
        verdict,
        contract=contract,
        budgets=budgets,
        cell_update=cell_update,
    )
    verdict = _model_check(entry, meta, runner, verdict, allow_other_model)
    return _conclude(entry, *verdict)


def _record_entry(path, meta, runner):
    """The report entry's description of the record: what made it and with which model."""
    return {
        "file": str(path),
        "call": meta["call"],
        "recorded_threads": meta["threads"],
        "recorded_device": meta["device"],
        "recorded_libtorch": meta["libtorch"],
        "model_sha256": meta["model_sha256"],
        "model_matches": meta["model_sha256"] == runner.sha256,
        "recorded_engine": meta.get("engine", "torchscript"),
        "weights_version": meta.get("weights_version", 0),
    }


def _set_threads(meta, threads):
    """Set the bridge's thread count for the record (as recorded unless ``threads``); return it."""
    from .bridge import set_num_threads

    n_threads = meta["threads"] if threads is None else int(threads)
    set_num_threads(n_threads)
    return n_threads


def _host_checks(entry, call, inputs, outputs, host, verdict, **update):
    """Check the host's arrays (the inputs it gave, the update and its budget); the verdict after them."""
    status, message = verdict
    entry["inputs_given"], given_failure = check_given(call, inputs, host)
    entry["budget"], update_failure = check_update(call, outputs, host, **update)
    if status != "mismatch" and given_failure:
        return "mismatch", given_failure
    if status != "mismatch" and update_failure:
        return "budget_violation", update_failure
    return status, message


def _model_check(entry, meta, runner, verdict, allow_other_model):
    """A record replayed against another model file fails unless allowed; the verdict after that."""
    status, message = verdict
    if entry["model_matches"] or allow_other_model:
        return status, message
    return "other_model", (
        f"call {meta['call']}: recorded with model SHA-256 {meta['model_sha256'][:16]}..., "
        f"replayed with {runner.sha256[:16]}... (outputs: {status}); replaying against "
        "another model needs --allow-other-model"
    )


def _conclude(entry, status, message):
    entry["status"] = status
    if message:
        entry["message"] = message
    return entry


def _weights_version(path):
    """(version, SHA-256) of the weights that made a record; (0, None) for the file's own."""
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("meta.json"))
        return int(meta.get("weights_version", 0)), meta.get("weights_sha256")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return 0, None  # replay_record reports the record as corrupt


def _runner_for(path, runners, make, versions):
    """The runner with the weight version the record names (made once per version)."""
    version, sha = _weights_version(path)
    if version and sha not in versions:
        raise FileAccessError(
            f"{path}: recorded with weight version {version} (SHA-256 {sha[:16]}...), which "
            "the versions given do not hold: pass the run's versions folder (--versions)"
        )
    key = sha if version else None
    if key not in runners:
        runners[key] = make(versions[sha] if version else None)
    return runners[key]


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def replay(
    directory,
    model,
    *,
    threads=None,
    device="cpu",
    use_torch=True,
    budgets=True,
    cell_update="exact",
    rtol=None,
    allow_other_model=False,
    reference=None,
    versions=None,
):
    """Replay every record under ``directory`` through ``model``; returns the report dict.

    A record made after an online-training sync names its weight version; ``versions``
    (the folder the run saved them in, see :mod:`pyclosure.online`) supplies them, and
    each record is replayed with its own version's weights (for a native ``.nnp`` model,
    the native program that sync put into it, through the bridge and the cffi twin).

    Parameters
    ----------
    threads : None (each record at the thread count it was made with, the only
        count at which bit for bit is promised) or an int
    rtol : relative tolerance for outputs at a setting that is not bit-comparable
        (None: :data:`pyclosure._verdict.DEFAULT_RTOL` per dtype)
    allow_other_model : replay against a model file whose SHA-256 is not the
        recorded one (otherwise every such record fails as ``other_model``)
    reference : optional path of another export of the same weights (for a
        ``.pt2``, its TorchScript export: eager torch's arithmetic); each
        record's ``reference`` entry gives its largest relative difference
        from the recorded outputs, as information (it never fails a replay)

    ``report["summary"]["ok"]`` is the pass/fail; ``report["summary"]["verdict"]``
    is ``OK``, ``ACCEPTED_OTHER_MODEL`` (passed, against another model file,
    allowed) or ``FAILED``.
    """
    complete, partial = find_records(directory)
    model = os.fspath(model)
    contract = read_contract(model)
    known = {}
    if versions is not None:
        from .online import read_versions

        known = read_versions(versions, programs=_is_native(model))
    runner = _Runner(model, device, use_torch, reference)
    runners = {None: runner}

    def make(weights):
        return _Runner(model, device, use_torch, reference, weights)

    torch_version = None
    if use_torch and not _is_native(model):
        import torch

        torch_version = torch.__version__
    from .bridge import get_num_threads, set_num_threads

    saved = get_num_threads()
    try:
        records = [
            replay_record(
                p,
                _runner_for(p, runners, make, known),
                threads=threads,
                torch_version=torch_version,
                contract=contract,
                budgets=budgets,
                cell_update=cell_update,
                rtol=rtol,
                allow_other_model=allow_other_model,
            )
            for p in complete
        ]
    finally:
        set_num_threads(saved)
    records += [
        {
            "file": str(p),
            "status": "partial",
            "message": "incomplete: the run stopped while writing this record",
        }
        for p in partial
    ]
    recordings = {}
    for summary in sorted(Path(directory).rglob("recording.json")):
        try:
            recordings[str(summary.parent)] = json.loads(summary.read_text())
        except (OSError, ValueError) as exc:
            recordings[str(summary.parent)] = {"state": "unreadable", "message": str(exc)}
    matches = all(r.get("model_matches", True) for r in records)
    return {
        "schema": "pyclosure.replay/2",
        "directory": str(directory),
        "model": {
            "path": model,
            "sha256": runner.sha256,
            "matches_recorded": matches,
            "other_model_allowed": bool(allow_other_model),
        },
        "engine": runner.engine,
        "reference": None if reference is None else os.fspath(reference),
        "device": runner.device,
        "threads": "as recorded" if threads is None else int(threads),
        "cell_update": cell_update,
        "rtol": "per dtype" if rtol is None else float(rtol),
        "summary": _summary(records, complete, directory, matches),
        "recordings": recordings,
        "records": records,
    }


def _summary(records, complete, directory, matches):
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    checked = [r for r in records if (r.get("budget") or {}).get("budget")]
    ok = len(complete) > 0 and not any(r["status"] in FAILING for r in records)
    summary = {
        "records": len(records),
        **counts,
        "budgets_checked": len(checked),
        "budgets_closed": sum(bool(r["budget"].get("closes")) for r in checked),
        "ok": ok,
        "verdict": "FAILED" if not ok else ("OK" if matches else "ACCEPTED_OTHER_MODEL"),
    }
    if not complete:
        summary["message"] = f"no complete records under '{directory}'"
    return summary


def format_report(report, limit=20):
    """A short text summary: one line per record (failures first), then totals and the verdict line."""
    lines = []
    recs = sorted(report["records"], key=lambda r: (r["status"] not in FAILING, r.get("call", 0)))
    for r in recs[:limit]:
        b = (r.get("budget") or {}).get("budget")
        extra = (
            f"  domain {b['domain_departure']:.1e} <= {b['domain_bound']:.1e}"
            if b and "domain_bound" in b
            else ""
        )
        lines.append(f"{r['status']:<17} {Path(r['file']).name:<26}{extra}  {r.get('message', '')}".rstrip())
    if len(recs) > limit:
        lines.append(f"... and {len(recs) - limit} more records")
    s = report["summary"]
    lines.append("")
    lines.append(
        f"records {s['records']}: equal {s['equal']}, within tolerance {s['within_tolerance']}, "
        f"mismatch {s['mismatch']}, budget violations {s['budget_violation']}, other model "
        f"{s['other_model']}, corrupt {s['corrupt']}, partial {s['partial']}; "
        f"budgets closed {s['budgets_closed']}/{s['budgets_checked']}"
    )
    refs = [
        r["reference"]["max_rel_diff"]
        for r in report["records"]
        if "max_rel_diff" in (r.get("reference") or {})
    ]
    if refs:
        lines.append(
            f"reference {report['reference']}: largest relative difference from the records {max(refs):.1e} "
            "(information: another engine's arithmetic)"
        )
    m = report["model"]
    if not m["matches_recorded"]:
        lines.append(
            f"model: {m['path']} (SHA-256 {m['sha256'][:16]}...) is NOT the model the records were made "
            "with" + (" (allowed by --allow-other-model)" if m["other_model_allowed"] else "")
        )
    if s["within_tolerance"]:
        lines.append(
            f"{s['within_tolerance']} record(s) replayed at a setting where bit for bit is not promised: "
            f"within tolerance (rtol {report['rtol']}), not bit for bit"
        )
    for where, rec in report["recordings"].items():
        if rec.get("state") not in ("stopped",):
            lines.append(f"recording {where}: {rec.get('state')}: {rec.get('message', '')}".rstrip(": "))
    if s["verdict"] == "FAILED":
        lines.append("replay: FAILED" + (f" ({s['message']})" if "message" in s else ""))
    elif s["verdict"] == "ACCEPTED_OTHER_MODEL":
        lines.append("replay: ACCEPTED AGAINST ANOTHER MODEL FILE (not a sign-off of the recorded model)")
    else:
        lines.append("replay: OK")
    return "\n".join(lines)
