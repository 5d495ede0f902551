"""Cost of an online training step: ``nn_train_step`` from Fortran against the same step in pure Python.

Run: ``python -m pyclosure.bench.train_step [--columns 16 256 4096] [--rounds 5] [--json FILE]``
(or ``pyclosure bench --train-step``).

Both sides train the same TorchScript MLP (float32, ``NFEAT -> HIDDEN -> HIDDEN -> NOUT``,
tanh) with Adam (lr 1e-3) on MSE, on the same batch of ``ncol`` columns, one libtorch
thread each. The Fortran side is ``train_step.f90`` (compiled here with ``pyclosure
config``'s flags): the default training spec, run by pyclosure's Python stack in the
interpreter the bridge embeds, on zero-copy views of the Fortran arrays. The Python side
is the loop a user would write: ``zero_grad``, ``mse(module(x), y)``, ``backward``,
``step``. Each round runs the Fortran program once (a fresh trainer per column count,
warm-up steps, then timed steps) and then the Python loop the same way; a round's number
is the median step time, and the result is the median over rounds of the per-round ratio.
The rounds interleave so that load on a shared machine hits both sides alike; the load
average is reported with the numbers.

Measured on 2 cores at load average ~5 (5 rounds of 100 steps): Fortran / Python 1.31 at
16 columns (319 against 246 us: the fixed cost of the call into the embedded interpreter
and the views of the host's arrays), 1.14 at 256 (522 against 450 us), 0.91 at 4096 (7.0
against 7.9 ms).
"""

import argparse
import importlib.resources
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

NFEAT, HIDDEN, NOUT = 32, 64, 32
COLUMNS = (16, 256, 4096)


def make_model(path):
    """Export the benchmark's MLP (seeded) to ``path`` (TorchScript with its contract)."""
    from .. import export

    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = torch.nn.Sequential(
            torch.nn.Linear(NFEAT, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, NOUT),
        )
    export(module, path, torch.zeros(4, NFEAT))
    return path


def batch(ncol):
    """The batch the Fortran driver builds, in torch order ``(ncol, features)``."""
    j = np.arange(1, ncol + 1)[:, None]
    x = np.sin(0.7 * np.arange(1, NFEAT + 1)[None] + 1.3 * j).astype(np.float32)
    y = np.cos(0.4 * np.arange(1, NOUT + 1)[None] + 0.9 * j).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def build_driver(folder):
    """Compile train_step.f90 into ``folder`` with ``pyclosure config``'s flags; the program's path."""
    from .. import config

    source = Path(str(importlib.resources.files("pyclosure"))) / "bench" / "train_step.f90"
    flags = config.flags()
    exe = Path(folder) / "train_step"
    cmd = [
        "gfortran",
        "-O2",
        *shlex.split(flags["fflags"]),
        str(source),
        "-o",
        str(exe),
        *shlex.split(flags["ldflags"]),
        *shlex.split(flags["libs"]),
    ]
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True, text=True)
    return exe


def fortran_round(exe, model, columns, warmup, steps):
    """{ncol: median step seconds} from one run of the Fortran driver."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [str(exe), str(model), str(NFEAT), str(NOUT), str(warmup), str(steps), *map(str, columns)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the Fortran driver failed:\n{proc.stdout}{proc.stderr}")
    out = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if words and words[0] == "ncol":
            out[int(words[1])] = float(words[3])
    return out


def python_round(model, columns, warmup, steps):
    """{ncol: median step seconds} of the same steps in pure Python."""
    out = {}
    for ncol in columns:
        module = torch.jit.load(str(model))
        module.train()
        opt = torch.optim.Adam(module.parameters(), lr=1e-3)
        x, y = batch(ncol)
        times = []
        for s in range(warmup + steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((module(x) - y) ** 2)
            loss.backward()
            opt.step()
            float(loss.detach())
            if s >= warmup:
                times.append(time.perf_counter() - t0)
        out[ncol] = statistics.median(times)
    return out


def run(columns=COLUMNS, rounds=5, warmup=20, steps=100, folder=None):
    """Interleaved rounds; returns the result dict (medians, ratios, load average)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder or tmp)
        model = make_model(folder / "mlp.pt")
        exe = build_driver(folder)
        load_before = os.getloadavg()
        per = {"fortran": {c: [] for c in columns}, "python": {c: [] for c in columns}}
        for _ in range(rounds):
            for side, got in (
                ("fortran", fortran_round(exe, model, columns, warmup, steps)),
                ("python", python_round(model, columns, warmup, steps)),
            ):
                for c in columns:
                    per[side][c].append(got[c])
        load_after = os.getloadavg()
    rows = {}
    for c in columns:
        ratios = [f / p for f, p in zip(per["fortran"][c], per["python"][c])]
        rows[c] = {
            "fortran_s": statistics.median(per["fortran"][c]),
            "python_s": statistics.median(per["python"][c]),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    return {
        "model": f"MLP {NFEAT}-{HIDDEN}-{HIDDEN}-{NOUT} float32, tanh, Adam, MSE",
        "threads": 1,
        "rounds": rounds,
        "warmup": warmup,
        "steps": steps,
        "columns": rows,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }


def format_result(r):
    load = f"load average {r['loadavg_before'][0]:.2f} before, {r['loadavg_after'][0]:.2f} after"
    lines = [
        f"online training step, {r['model']}; {r['rounds']} interleaved rounds of {r['steps']} timed "
        f"steps (median), 1 thread; {load}",
        "| columns | Fortran nn_train_step | pure Python | Fortran / Python (median of rounds) |",
        "|---|---|---|---|",
    ]
    for c, v in r["columns"].items():
        lines.append(
            f"| {c} | {v['fortran_s'] * 1e6:.1f} us | {v['python_s'] * 1e6:.1f} us | {v['ratio']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m pyclosure.bench.train_step", description=__doc__.split("\n")[0]
    )
    p.add_argument("--columns", type=int, nargs="+", default=list(COLUMNS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    r = run(tuple(a.columns), a.rounds, a.warmup, a.steps)
    print(format_result(r))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
