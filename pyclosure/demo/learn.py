"""Training the Burgers closure: a priori on (state, flux) pairs, a posteriori through the twin.

The closure is :class:`pyclosure.models.PeriodicFluxClosure` in float64 (the
Fortran core is real64) with its input and output normalisation baked in: it
maps cell means ``u (batch, n)`` to the subgrid flux at the left faces
``(batch, n)``, the layout the Fortran hook passes.
"""

import numpy as np
import torch

from ..models import PeriodicFluxClosure
from ..normalize import Normalizer
from ..stream import StreamDataset
from ..train import fit, fit_a_posteriori
from . import twin


def make_closure(u, tau, dx, stencil=6, hidden=32, depth=2, seed=0):
    """A float64 stencil closure with global normalisers for ``u`` and ``tau``.

    Parameters
    ----------
    u, tau : ndarray, shape (samples, n), or (mean, std) pairs
        Coarse states and target fluxes (physical units), or their moments.
    dx : float
        Coarse cell width (recorded in the contract).
    stencil, hidden, depth : int
        Cells each face sees, width and depth of the per-face network.
    seed : int
        Seeds the weight initialisation.

    Returns
    -------
    PeriodicFluxClosure
    """
    torch.manual_seed(seed)
    model = PeriodicFluxClosure(
        1,
        stencil,
        hidden,
        depth,
        "tanh",
        dx=dx,
        input_normalizer=_normalizer(u),
        output_normalizer=_normalizer(tau),
    )
    return model.double()


def a_priori(path, target, dx, epochs, seed=0, progress=True):
    """Fit a new closure to ``target`` from ``u``, streamed from the NetCDF file ``path``
    (validated on its last time chunks); return ``(closure, history)``."""
    data = StreamDataset(path, ["u"], target, dtype=torch.float64, seed=seed)
    model = make_closure(data.moments("u"), data.moments(target), dx, seed=seed)
    hist = fit(model, data, epochs=epochs, batch_size=32, lr=2e-3, patience=15, seed=seed, progress=progress)
    return model, hist


def _normalizer(data):
    if isinstance(data, tuple):
        mean, std = (torch.tensor([v], dtype=torch.float64) for v in data)
        return Normalizer(mean, std)
    return Normalizer.fit(torch.as_tensor(data, dtype=torch.float64), per="global")


def flux_r2(model, u, tau):
    """Coefficient of determination of the closure's flux on held-out pairs."""
    with torch.no_grad():
        pred = model(torch.as_tensor(u)).numpy()
    return float(1.0 - np.mean((pred - tau) ** 2) / np.var(tau))


def forcing_table(cfg, nsteps):
    """Forcing of the LES steps ``0 .. nsteps-1`` (seed ``cfg.seed``), one row per redraw."""
    forcing = twin.Forcing(cfg)
    rows = [forcing(s).clone() for s in range(0, nsteps, cfg.nforce)]
    return torch.stack(rows)


class _Stepper:
    """``step(state, closure)`` for :func:`pyclosure.train.fit_a_posteriori`.

    The state is ``(batch, 2, n)``: channel 0 the cells, channel 1 the LES step
    index (repeated along the cells), so each window knows its forcing; one call
    advances ``substeps`` LES steps (one snapshot interval).
    """

    def __init__(self, cfg, table, substeps):
        self.cfg, self.table, self.substeps = cfg, table, substeps

    def __call__(self, state, closure):
        u, s = state[:, 0], state[:, 1, :1]
        for k in range(self.substeps):
            idx = (s[:, 0] + k).long() // self.cfg.nforce
            u = twin.step(u, self.table[idx], self.cfg, closure)
        s = s + self.substeps
        return torch.stack([u, s.expand_as(u)], dim=1)


def a_posteriori(model, data, cfg, k, epochs, nwin, seed=0, progress=True):
    """Fine-tune ``model`` in place by unrolling the twin ``k`` snapshots.

    Windows come from the training trajectory of ``data`` (seed ``data["seed"]``,
    snapshots every ``train_every``); at most ``nwin`` of them are used.
    """
    sub = round(float(data["train_every"]) / cfg.dt)
    u = torch.as_tensor(data["u"])
    steps = torch.round(torch.as_tensor(data["time"]) / cfg.dt)
    table = forcing_table(cfg, int(steps.max()) + sub * (k + 1) + 1)
    state = torch.stack([u, steps[:, None].expand_as(u).double()], dim=1)
    stride = max(1, (len(u) - k) // nwin)
    starts = torch.arange(0, len(u) - k, stride)[:nwin]
    traj = torch.stack([state[i : i + k + 1] for i in starts.tolist()])
    # one trajectory per window: fit_a_posteriori takes all windows of length k + 1
    return fit_a_posteriori(
        model,
        _Stepper(cfg, table, sub),
        traj,
        k=k,
        epochs=epochs,
        batch_size=16,
        lr=3e-4,
        patience=4,
        seed=seed,
        split="random",
        progress=progress,
    )
