"""Shared by the replay tests: a recorded Burgers run and record surgery (a host that wrote it so)."""

import hashlib
import importlib.resources
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import torch
from conftest import cli

import pyclosure
from pyclosure.demo.common import write_namelist
from pyclosure.models import PeriodicFluxClosure

PROGRAM = Path(str(importlib.resources.files("pyclosure"))) / "bin" / "burgers_les"
N = 64


def burgers_closure(path):
    """A small flux closure for the Burgers grid, exported with a flux-at-faces contract."""
    torch.manual_seed(3)
    model = PeriodicFluxClosure(1, 6, 16, 2, "tanh", dx=100.0 / N).double()
    with torch.no_grad():
        model.net[-1].weight.mul_(0.05) if hasattr(model.net[-1], "weight") else None
    pyclosure.export(
        model,
        path,
        torch.zeros(1, N, dtype=torch.float64),
        variable_dims={"x": [0]},
        meaning={"flux": {"kind": "flux_at_faces", "boundary": "periodic"}},
    )
    return path


def run_les(folder, model, *, threads, record_every=None, nsteps=60, env_extra=None):
    """Run the Fortran ``burgers_les`` with the closure in ``folder``; the record folder."""
    folder.mkdir(parents=True, exist_ok=True)
    params = {
        "n": N,
        "length": 100.0,
        "nu": 0.02,
        "dt": 0.04,
        "nsteps": nsteps,
        "every": nsteps,
        "closure": "nn",
        "model": str(model),
        "output": "traj.bin",
        "seed": 2,
    }
    if record_every:
        params.update(record_dir="rec", record_every=record_every)
    write_namelist(folder / "burgers.nml", params, "burgers")
    env = dict(
        os.environ, OMP_NUM_THREADS=str(threads), NN_CLOSURE_NUM_THREADS=str(threads), **(env_extra or {})
    )
    proc = subprocess.run(
        [str(PROGRAM), "burgers.nml"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder / "rec"


def replay_cli(directory, model, *args):
    """``pyclosure replay`` as a user runs it: (completed process, JSON report)."""
    proc = subprocess.run(
        cli("replay", directory, "--model", model, "--report", directory / "r.json", *args),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads((directory / "r.json").read_text())
    return proc, report


def rewrite(path, change):
    """Rewrite a record with change(member, array) applied and valid checksums (a host that wrote it so)."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        arrays = {m: np.lib.format.read_array(io.BytesIO(zf.read(m))) for m in meta["arrays"]}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        members = {}
        for m, a in arrays.items():
            a = change(m, a.copy())
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            members[m] = buf.getvalue()
            meta["arrays"][m]["sha256"] = hashlib.sha256(members[m]).hexdigest()
        zf.writestr("meta.json", json.dumps(meta))
        for m, data in members.items():
            zf.writestr(m, data)


def without(path, member):
    """Rewrite a record without one member (a host that did not record that array)."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        data = {m: zf.read(m) for m in meta["arrays"] if m != member}
    del meta["arrays"][member]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("meta.json", json.dumps(meta))
        for m, d in data.items():
            zf.writestr(m, d)


def next_up(a, index):
    """``a`` with its flat element ``index`` moved one ulp up (in place)."""
    flat = a.reshape(-1)
    flat[index] = np.nextafter(flat[index], np.inf)
    return a


def copy_records(rec, tmp_path):
    """A copy of the record folder to plant faults in."""
    dst = tmp_path / "rec"
    shutil.copytree(rec, dst, ignore=shutil.ignore_patterns("r.json", "replay_report.json"))
    return dst


def record_burgers_run(base):
    """A recorded 2-thread Burgers run under ``base`` (180 closure calls, every 4th recorded): (model, records)."""
    assert PROGRAM.exists(), f"{PROGRAM} is not built"
    model = burgers_closure(base / "closure.pt")
    return model, run_les(base / "run", model, threads=2, record_every=4)
