"""Training closures: a priori (fit fluxes) and a posteriori (fit unrolled trajectories).

Both loops are seeded and deterministic on CPU, split train/validation (by default in time:
the last samples validate, see :func:`split_indices`), stop early when
the validation loss stops improving, restore the best weights, show an optional tqdm bar,
and can save the best ``state_dict`` (``torch.save``; reload with
``torch.load(path, weights_only=True)``) and the loss history as JSON.

While training, subnormal floats are flushed to zero (``torch.set_flush_denormal``; reset
to the default ``False`` afterwards): near convergence they slow CPU training tenfold.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["History", "fit", "fit_a_posteriori", "load_checkpoint", "split_indices", "unroll"]


@dataclass
class History:
    """Loss per epoch and where the best validation loss was."""

    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("inf")
    stopped_early: bool = False

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))


def _mse(prediction, target: Tensor) -> Tensor:
    return F.mse_loss(prediction, target)


def _as_tuple(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, list | tuple) else (inputs,)


def _history_path(checkpoint_path, history_path):
    if history_path is not None:
        return Path(history_path)
    if checkpoint_path is not None:
        p = Path(checkpoint_path)
        return p.with_name(p.stem + ".history.json")
    return None


SPLITS = ("blocked", "random")


def split_indices(n: int, val_fraction: float, split: str = "blocked", seed: int = 0):
    """Training and validation sample indices, as :func:`fit` chooses them.

    ``"blocked"`` (the default): samples are taken to be in time order, and validation is
    the last ``val_fraction`` of them, one contiguous block, so no validation sample has a
    training sample a time step away (a random split puts neighbours on both sides, the
    validation loss then tracks the training loss and early stopping cannot fire).
    ``"random"``: a seeded permutation, for samples that are independent of each other.
    """
    return _split(n, val_fraction, split, torch.Generator().manual_seed(seed))


def _split(n: int, val_fraction: float, split: str, generator: torch.Generator):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(n * val_fraction) if n > 1 else 0
    if split == "blocked":
        return torch.arange(n - n_val), torch.arange(n - n_val, n)
    perm = torch.randperm(n, generator=generator)
    return perm[n_val:], perm[:n_val]


def _loss_on(module, loss_fn, xs, y, idx, batch_size) -> float:
    if len(idx) == 0:
        return float("nan")
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(idx), batch_size):
            b = idx[start:start + batch_size]
            total += float(loss_fn(module(*(x[b] for x in xs)), y[b])) * len(b)
    return total / len(idx)


def _with_validation(xs: tuple, y: Tensor, val_data, val_fraction: float, split: str,
                     gen: torch.Generator):
    """(inputs, targets, train indices, validation indices): ``val_data`` appended, or a split
    (a random one drawn from ``gen``, which then shuffles the epochs)."""
    if val_data is None:
        return (xs, y, *_split(len(y), val_fraction, split, gen))
    if not isinstance(val_data, tuple | list) or len(val_data) != 2:
        raise TypeError("val_data must be (inputs, targets), as the training data is given")
    vxs, vy = _as_tuple(val_data[0]), val_data[1]
    if len(vxs) != len(xs):
        raise ValueError(f"val_data has {len(vxs)} input(s), the training data {len(xs)}")
    n, m = len(y), len(vy)
    xs = tuple(torch.cat([a, b]) for a, b in zip(xs, vxs))
    return xs, torch.cat([y, vy]), torch.arange(n), torch.arange(n, n + m)


def _train(module: nn.Module, saved: nn.Module, xs: tuple, y: Tensor, loss_fn, epochs: int,
           batch_size: int, lr: float, split: tuple, patience: int, seed: int,
           progress: bool, checkpoint_path, history_path, desc: str) -> History:
    gen = torch.Generator().manual_seed(seed)
    xs, y, train_idx, val_idx = _with_validation(xs, y, *split, gen)
    # Subnormal gradients near convergence slow CPU training ~10x; flush them meanwhile.
    torch.set_flush_denormal(True)
    try:
        return _loop(module, saved, xs, y, loss_fn, epochs, batch_size, lr, train_idx, val_idx,
                     patience, seed, gen, progress, checkpoint_path, history_path, desc)
    finally:
        torch.set_flush_denormal(False)


def _loop(module, saved, xs, y, loss_fn, epochs, batch_size, lr, train_idx, val_idx, patience,
          seed, gen, progress, checkpoint_path, history_path, desc) -> History:
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    hist, best_state, since_best = History(), copy.deepcopy(saved.state_dict()), 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        module.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        running = 0.0
        for start in range(0, len(order), batch_size):
            b = order[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(module(*(x[b] for x in xs)), y[b])
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(b)
        module.eval()
        hist.train.append(running / len(order))
        val = _loss_on(module, loss_fn, xs, y, val_idx, batch_size)
        hist.val.append(val)
        score = val if len(val_idx) else hist.train[-1]
        if score < hist.best_val:
            hist.best_val, hist.best_epoch, since_best = score, epoch, 0
            best_state = copy.deepcopy(saved.state_dict())
        else:
            since_best += 1
        bar.set_postfix(train=f"{hist.train[-1]:.3g}", val=f"{val:.3g}")
        if since_best > patience:
            hist.stopped_early = True
            break
    saved.load_state_dict(best_state)
    if checkpoint_path is not None:
        torch.save(saved.state_dict(), str(checkpoint_path))
    hpath = _history_path(checkpoint_path, history_path)
    if hpath is not None:
        hist.save(hpath)
    return hist


def fit(model: nn.Module, inputs, targets: Tensor, *,
        loss_fn: Callable = _mse, epochs: int = 200, batch_size: int = 64,
        lr: float = 1e-3, val_fraction: float = 0.2, split: str = "blocked", val_data=None,
        patience: int = 20, seed: int = 0, progress: bool = True, checkpoint_path=None,
        history_path=None) -> History:
    """A priori training: fit ``model(*inputs)`` to ``targets``.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor or tuple of Tensor, each with samples first
    targets : Tensor, samples first
    loss_fn : callable(prediction, target) -> scalar Tensor
        Mean squared error by default; use :func:`pyclosure.uncertainty.gaussian_nll`
        for a model returning ``(mean, std)``.
    val_fraction, split : float, {"blocked", "random"}
        Validation share, and how it is chosen (:func:`split_indices`). The default
        ``"blocked"`` takes samples to be in time order and validates on the last
        ``val_fraction`` of them: neighbouring time steps are nearly the same sample,
        and a random split would validate on the training data. Use ``"random"`` only
        for independent samples.
    val_data : (inputs, targets), optional
        Validation data of its own (another period, other runs); then nothing is split
        off and ``val_fraction`` and ``split`` are ignored.
    patience : int
        How many epochs in a row without a new best validation loss are tolerated:
        the next one stops training (with the best at epoch ``b``, the last epoch run
        is ``b + patience + 1``; ``History.stopped_early`` says it happened).
    seed : int
        Seeds the split, the shuffling and the global RNG (dropout).
    progress : bool
        Show a tqdm bar.
    checkpoint_path : path, optional
        Best ``state_dict`` saved here; history beside it as ``<stem>.history.json``
        unless ``history_path`` is given.

    Returns
    -------
    History
        The model is left with its best-validation weights.
    """
    return _train(model, model, _as_tuple(inputs), targets, loss_fn, epochs, batch_size, lr,
                  (val_data, val_fraction, split), patience, seed, progress, checkpoint_path,
                  history_path, "a priori")


def unroll(step: Callable, closure: nn.Module, u0: Tensor, k: int) -> Tensor:
    """Run ``k`` steps of ``u <- step(u, closure)``; returns (batch, k, ...) states 1..k."""
    states, u = [], u0
    for _ in range(k):
        u = step(u, closure)
        states.append(u)
    return torch.stack(states, dim=1)


class _Unrolled(nn.Module):
    def __init__(self, closure: nn.Module, step: Callable, k: int):
        super().__init__()
        self.closure, self.step, self.k = closure, step, k

    def forward(self, u0: Tensor) -> Tensor:
        return unroll(self.step, self.closure, u0, self.k)


def fit_a_posteriori(closure: nn.Module, step: Callable, trajectories: Tensor, *, k: int = 10,
                     loss_fn: Callable = _mse, epochs: int = 50, batch_size: int = 16,
                     lr: float = 1e-3, val_fraction: float = 0.2, split: str = "blocked",
                     patience: int = 10, seed: int = 0, progress: bool = True,
                     checkpoint_path=None, history_path=None) -> History:
    """A posteriori training: backpropagate through ``k`` steps of a differentiable solver.

    Parameters
    ----------
    closure : nn.Module
        Trained in place (start from an a priori fit for best results).
    step : callable(u, closure) -> u_next
        One step of the coarse solver, written in torch.
    trajectories : Tensor, shape (n_traj, T, ...)
        Reference coarse states; every window of ``k + 1`` consecutive states is a sample
        (its first state the initial condition, the rest the targets).
    k : int
        Unroll length.
    val_fraction, split
        As :func:`fit`; windows are ordered trajectory by trajectory, in time, so the
        blocked default validates on the last windows of the last trajectories.

    Returns
    -------
    History
        Losses are the mean squared error over the ``k`` unrolled states.
    """
    windows = trajectories.unfold(1, k + 1, 1)  # (n_traj, T - k, ..., k + 1)
    windows = windows.movedim(-1, 2).reshape(-1, k + 1, *trajectories.shape[2:])
    wrapped = _Unrolled(closure, step, k)
    return _train(wrapped, closure, (windows[:, 0],), windows[:, 1:], loss_fn, epochs,
                  batch_size, lr, (None, val_fraction, split), patience, seed, progress,
                  checkpoint_path, history_path, "a posteriori")


def load_checkpoint(model: nn.Module, path) -> nn.Module:
    """Load a ``state_dict`` saved by :func:`fit` (``weights_only=True``) into ``model``.

    ``model`` must be built as the trained one was, normalisers included: their buffers
    are loaded, so give them the trained shapes, e.g. ``Normalizer(torch.zeros(F),
    torch.ones(F))`` for one fitted with ``per="feature"`` on F features, ``(C, 1)`` for
    ``per="channel"`` on C channels, ``(1,)`` otherwise. A mismatch names the buffer.
    """
    model.load_state_dict(torch.load(str(path), weights_only=True))
    return model
