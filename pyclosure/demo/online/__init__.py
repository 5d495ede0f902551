"""``pyclosure demo --example online``: the Burgers LES learns its closure while it runs.

Steps (everything is written into ``out``):

1. offline data for comparison: a DNS (N = 4096) coarse-grained to N = 128, with a held-out
   trajectory and forecast segments (``data.npz``), as ``pyclosure demo`` makes them;
2. an untrained closure (random weights; normalisers from the data's moments) exported to
   ``closure.pt``, and the offline closure (the same network, trained a priori on the DNS
   pairs for the same target, validated on the held-out trajectory) exported to ``offline.pt``;
3. the online run: the Fortran program ``burgers_online`` runs the LES with the untrained
   closure and a DNS companion alongside in the same process; at every LES step it calls
   ``nn_train_step`` on the filtered DNS state and the companion's fine state (the spec
   :mod:`pyclosure.demo.online.spec` coarse-grains that into the subgrid flux), and after
   every window ``nn_train_sync`` (``online/``);
4. the same program runs the offline closure over the same windows without training
   (``offline/``);
5. the untrained, online and offline closures scored on the held-out segments in the torch twin;
6. ``report.md``, ``report.json``, ``report.png`` (loss and error over model time).

``run`` returns 0 when every claim held, else 1 (and says which did not).
"""

import dataclasses
import time
import types
from pathlib import Path

import numpy as np
import torch

from ...train import fit
from .. import checks, common, data, learn
from . import report

__all__ = ["Settings", "run"]


@dataclasses.dataclass
class Settings:
    """Sizes of one run of the example (times in model time units)."""

    quick: bool = False
    n_dns: int = 4096
    n_les: int = 128
    length: float = 100.0
    dt_les: float = 0.04
    spinup: float = 100.0  # DNS spin-up of the online run
    window: float = 4.0  # online: LES restarts from the filtered DNS every window, then a sync
    windows: int = 100
    lr: float = 1e-3
    buffer: int = 500  # online: snapshots kept for the spec's replay buffer (0: none)
    batch: int = 8  # online: snapshots per training step (the new one and 7 from the buffer)
    seed: int = 7  # forcing seed of the online run (the offline data use 1, 2, ...)
    data_spinup: float = 200.0
    t_train: float = 400.0  # offline training snapshots every 0.5
    t_test: float = 50.0  # held-out trajectory: validation of the offline fit, spectrum
    nseg: int = 8  # held-out forecast segments
    horizon: float = 5.0
    epochs: int = 150

    @classmethod
    def for_full(cls):
        return cls()

    @classmethod
    def for_quick(cls):
        return cls(
            quick=True,
            spinup=40.0,
            windows=30,
            data_spinup=100.0,
            t_train=200.0,
            t_test=20.0,
            nseg=4,
            epochs=100,
        )

    @property
    def t_long(self):
        return self.t_test


def _say(i, text):
    common.say(i, text, steps=6)


def run_program(folder, s, model, train):
    """Run ``burgers_online`` in ``folder`` with closure ``model``; return its table as a dict of arrays."""
    folder = Path(folder)
    params = {
        "n_les": s.n_les,
        "n_dns": s.n_dns,
        "length": s.length,
        "dt_les": s.dt_les,
        "seed": s.seed,
        "spinup": s.spinup,
        "window": s.window,
        "windows": s.windows,
        "train": train,
        "model": str(Path(model).resolve()),
        "spec": "pyclosure.demo.online.spec:spec",
        "options": f"lr={s.lr}, buffer={s.buffer}, batch={s.batch}",
        "versions": "versions",
        "checkpoint": "ckpt.pt",
        "output": "online.txt",
    }
    t0 = time.perf_counter()
    status, log = common.run_program("burgers_online", folder, params, "online")
    if status != 0:
        raise RuntimeError(f"burgers_online failed in {folder}:\n{log[-3000:]}")
    table = np.loadtxt(folder / "online.txt", ndmin=2)
    names = ("window", "time", "version", "loss", "error_nn", "error_none")
    steps = np.fromfile(folder / "losses.bin", dtype="<f8")
    return {
        **{k: table[:, i] for i, k in enumerate(names)},
        "step_loss": steps,
        "step_time": s.spinup + s.dt_les * np.arange(1, steps.size + 1),
        "seconds": time.perf_counter() - t0,
    }


def _closure(d, s, state=None):
    dx = s.length / s.n_les
    model = learn.make_closure(d["u"], d["tau"], dx, seed=s.seed)
    if state is not None:
        model.load_state_dict(state)
    return model


def run(out="pyclosure-demo-online", quick=False):
    """Run the online example into ``out``; return 0 when every claim held, else 1."""
    common.require_extras("the online example")
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = Settings.for_quick() if quick else Settings.for_full()
    torch.set_num_threads(1)
    seconds = {}

    _say(1, f"offline data: DNS N={s.n_dns} -> LES N={s.n_les}, {s.t_train:g} time units of training pairs")
    t0 = time.perf_counter()
    d = data.generate(
        out / "data.npz",
        n_dns=s.n_dns,
        n_les=s.n_les,
        dt_les=s.dt_les,
        spinup=s.data_spinup,
        t_train=s.t_train,
        train_every=0.5,
        t_test=s.t_test,
        test_every=0.2,
        nseg=s.nseg,
        seg_horizon=s.horizon,
    )
    seconds["data"] = time.perf_counter() - t0

    _say(2, "untrained closure (closure.pt) and the offline-trained closure (offline.pt)")
    t0 = time.perf_counter()
    untrained = _closure(d, s)
    checks.export_closure(untrained, out / "closure.pt", d, "tau")
    offline = _closure(d, s)
    hist = fit(
        offline,
        torch.as_tensor(d["u"]),
        torch.as_tensor(d["tau"]),
        epochs=s.epochs,
        batch_size=32,
        lr=2e-3,
        val_data=(torch.as_tensor(d["test_u"]), torch.as_tensor(d["test_tau"])),
        patience=15,
        seed=s.seed,
        progress=False,
    )
    checks.export_closure(offline, out / "offline.pt", d, "tau")
    seconds["offline_training"] = time.perf_counter() - t0

    _say(
        3,
        f"online run (burgers_online): {s.windows} windows of {s.window:g} time units, "
        "nn_train_step every LES step, nn_train_sync every window",
    )
    online = run_program(out / "online", s, out / "closure.pt", train=True)
    seconds["online_run"] = online["seconds"]

    _say(4, "the offline closure over the same windows (no training)")
    fixed = run_program(out / "offline", s, out / "offline.pt", train=False)
    seconds["offline_run"] = fixed["seconds"]

    _say(5, "held-out segments in the torch twin: untrained, online, offline")
    ckpt = torch.load(str(out / "online" / "ckpt.pt"), weights_only=True)
    trained = _closure(d, s, ckpt["module"])
    scorer = types.SimpleNamespace(horizon=s.horizon, dt_les=s.dt_les, t_long=s.t_long)
    held_out = {
        name: checks.twin_scores(m, d, scorer)
        for name, m in (("untrained", untrained), ("online", trained), ("offline", offline))
    }

    _say(6, "report")
    results = report.assemble(s, online, fixed, held_out, len(hist.train))
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = seconds
    text = report.write(out, results)
    report.figure(out / "report.png", online, fixed)
    return common.finish("pyclosure demo --example online", out, results, text, t_start)
