"""Training closures: a priori (fit fluxes) and a posteriori (fit unrolled trajectories).

Both loops are seeded and deterministic on CPU, split train/validation (by default in time:
the last samples validate, see :func:`split_indices`), stop early when
the validation loss stops improving, restore the best weights, show an optional tqdm bar,
and can save the best ``state_dict`` (``torch.save``; reload with
``torch.load(path, weights_only=True)``) and the loss history as JSON, and resume.
Under ``torchrun`` they train with DistributedDataParallel (:mod:`pyclosure.distributed`);
``fit`` also streams NetCDF/Zarr data that does not fit in memory (:mod:`pyclosure.stream`).

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

from . import distributed as _dist
from .stream import StreamDataset

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
            b = idx[start : start + batch_size]
            total += float(loss_fn(module(*(x[b] for x in xs)), y[b])) * len(b)
    return total / len(idx)


def _with_validation(xs: tuple, y: Tensor, val_data, val_fraction: float, split: str, gen: torch.Generator):
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


class _Tensors:
    """In-memory samples: the split (or ``val_data``), and each epoch's shuffled batches (this
    rank's share)."""

    def __init__(self, xs, y, validation, batch_size, seed):
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.xs, self.y, self.train_idx, self.val_idx = _with_validation(xs, y, *validation, self.gen)

    def train_batches(self, epoch):
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.gen)]
        world = _dist.placement()[1]
        for start in range(0, len(order), self.batch_size):
            b, weight = _dist.shard(order[start : start + self.batch_size])
            if len(b):  # under DDP a last batch smaller than the world size is dropped
                yield tuple(x[b] for x in self.xs), self.y[b], weight
            elif world > 1:
                return

    def val_loss(self, module, loss_fn):
        return _loss_on(module, loss_fn, self.xs, self.y, self.val_idx, self.batch_size)

    def has_val(self):
        return len(self.val_idx) > 0

    def rng_state(self):
        return self.gen.get_state()

    def set_rng_state(self, state):
        self.gen.set_state(state)


class _Streamed:
    """A :class:`~pyclosure.stream.StreamDataset`, split by chunks into training and validation."""

    def __init__(self, data, validation, batch_size, num_workers):
        val_data, val_fraction, split = validation
        if val_data is not None or split != "blocked":
            raise ValueError(
                "a StreamDataset validates on its last chunks (the latest times): give "
                "val_fraction, not val_data or split"
            )
        self.train, self.val = data.split(val_fraction) if val_fraction > 0 else (data, None)
        self.batch_size, self.num_workers = batch_size, num_workers

    def train_batches(self, epoch):
        for xs, y in self.train.batches(epoch, self.batch_size, self.num_workers):
            yield xs, y, 1.0

    def val_loss(self, module, loss_fn):
        return self.val.loss(module, loss_fn, self.batch_size) if self.val else float("nan")

    def has_val(self):
        return self.val is not None

    def rng_state(self):
        return torch.zeros(0, dtype=torch.uint8)  # the order is a function of (seed, epoch)

    def set_rng_state(self, state):
        pass


def _train(
    module: nn.Module,
    saved: nn.Module,
    data,
    loss_fn,
    epochs: int,
    lr: float,
    patience: int,
    seed: int,
    progress: bool,
    checkpoint_path,
    history_path,
    desc: str,
    resume: bool,
) -> History:
    # Subnormal gradients near convergence slow CPU training ~10x; flush them meanwhile.
    torch.set_flush_denormal(True)
    try:
        return _loop(
            module,
            saved,
            data,
            loss_fn,
            epochs,
            lr,
            patience,
            seed,
            progress,
            checkpoint_path,
            history_path,
            desc,
            resume,
        )
    finally:
        torch.set_flush_denormal(False)


def _resume_path(checkpoint_path) -> Path:
    p = Path(checkpoint_path)
    return p.with_name(p.stem + ".resume.pt")


def _save_resume(path, saved, opt, data, hist, best_state, since_best, epoch) -> None:
    """Everything the next epoch needs, written by rank 0 under a temporary name, then renamed."""
    if not _dist.is_main():
        return
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "epoch": epoch,
            "model": saved.state_dict(),
            "optimizer": opt.state_dict(),
            "history": asdict(hist),
            "best_state": best_state,
            "since_best": since_best,
            "data_rng": data.rng_state(),
            "torch_rng": torch.get_rng_state(),
        },
        str(tmp),
    )
    tmp.replace(path)


def _load_resume(path, saved, opt, data):
    state = torch.load(str(path), weights_only=True)
    saved.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    data.set_rng_state(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    return state["epoch"] + 1, History(**state["history"]), state["best_state"], state["since_best"]


def _loop(
    module,
    saved,
    data,
    loss_fn,
    epochs,
    lr,
    patience,
    seed,
    progress,
    checkpoint_path,
    history_path,
    desc,
    resume,
) -> History:
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    first, hist, best_state, since_best = 0, History(), copy.deepcopy(saved.state_dict()), 0
    resume_file = _resume_path(checkpoint_path) if checkpoint_path is not None else None
    if resume and resume_file is None:
        raise ValueError("resume=True needs checkpoint_path (the resume state lives beside it)")
    if resume and resume_file.exists():
        first, hist, best_state, since_best = _load_resume(resume_file, saved, opt, data)
    run = _dist.wrap(module)
    bar = tqdm(range(first, epochs), desc=desc, disable=not (progress and _dist.is_main()), leave=False)
    for epoch in bar:
        if hist.stopped_early:
            break
        module.train()
        running, count = 0.0, 0
        for xb, yb, weight in data.train_batches(epoch):
            opt.zero_grad()
            loss = loss_fn(run(*xb), yb)
            (loss * weight if weight != 1.0 else loss).backward()
            opt.step()
            running += float(loss.detach()) * len(yb)
            count += len(yb)
        module.eval()
        hist.train.append(_dist.mean(running, count))
        val = data.val_loss(module, loss_fn)
        hist.val.append(val)
        score = val if data.has_val() else hist.train[-1]
        if score < hist.best_val:
            hist.best_val, hist.best_epoch, since_best = score, epoch, 0
            best_state = copy.deepcopy(saved.state_dict())
        else:
            since_best += 1
        bar.set_postfix(train=f"{hist.train[-1]:.3g}", val=f"{val:.3g}")
        if since_best > patience:
            hist.stopped_early = True
        if resume_file is not None:
            _save_resume(resume_file, saved, opt, data, hist, best_state, since_best, epoch)
    saved.load_state_dict(best_state)
    if checkpoint_path is not None and _dist.is_main():
        torch.save(saved.state_dict(), str(checkpoint_path))
    hpath = _history_path(checkpoint_path, history_path)
    if hpath is not None and _dist.is_main():
        hist.save(hpath)
    return hist


def _source(inputs, targets, validation, batch_size, seed, num_workers):
    if isinstance(inputs, StreamDataset):
        if targets is not None:
            raise ValueError("a StreamDataset carries its target: call fit(model, data) without targets")
        return _Streamed(inputs, validation, batch_size, num_workers)
    if targets is None:
        raise ValueError("fit needs targets, unless inputs is a pyclosure.stream.StreamDataset")
    return _Tensors(_as_tuple(inputs), targets, validation, batch_size, seed)


def fit(
    model: nn.Module,
    inputs,
    targets: Tensor | None = None,
    *,
    loss_fn: Callable = _mse,
    epochs: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    val_fraction: float = 0.2,
    split: str = "blocked",
    val_data=None,
    patience: int = 20,
    seed: int = 0,
    progress: bool = True,
    checkpoint_path=None,
    history_path=None,
    resume: bool = False,
    distributed: bool | None = None,
    num_workers: int = 0,
) -> History:
    """A priori training: fit ``model(*inputs)`` to ``targets``.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor, tuple of Tensor (each with samples first), or StreamDataset
        A :class:`pyclosure.stream.StreamDataset` streams NetCDF/Zarr data chunk by chunk and
        carries its own target; its validation share is its last chunks.
    targets : Tensor, samples first (None for a StreamDataset)
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
        unless ``history_path`` is given. Each epoch also writes ``<stem>.resume.pt``
        (weights, optimiser, history, random state) for ``resume``.
    resume : bool
        Continue from ``<stem>.resume.pt`` if it exists (else start afresh): the result is
        the one an uninterrupted run gives.
    distributed : bool or None
        Train across processes with DDP (see :mod:`pyclosure.distributed`). None: when
        launched by ``torchrun`` or a process group exists. Each rank takes its share of
        every global batch of ``batch_size`` samples; only rank 0 writes files and shows the
        bar. ``loss_fn`` must be a mean over samples for the ranks' average to be the global
        batch's loss.
    num_workers : int
        DataLoader processes reading a StreamDataset (per rank).

    Returns
    -------
    History
        The model is left with its best-validation weights.
    """
    _dist.setup(distributed)
    data = _source(inputs, targets, (val_data, val_fraction, split), batch_size, seed, num_workers)
    return _train(
        model,
        model,
        data,
        loss_fn,
        epochs,
        lr,
        patience,
        seed,
        progress,
        checkpoint_path,
        history_path,
        "a priori",
        resume,
    )


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


def fit_a_posteriori(
    closure: nn.Module,
    step: Callable,
    trajectories: Tensor,
    *,
    k: int = 10,
    loss_fn: Callable = _mse,
    epochs: int = 50,
    batch_size: int = 16,
    lr: float = 1e-3,
    val_fraction: float = 0.2,
    split: str = "blocked",
    patience: int = 10,
    seed: int = 0,
    progress: bool = True,
    checkpoint_path=None,
    history_path=None,
    resume: bool = False,
    distributed: bool | None = None,
) -> History:
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
    resume, distributed : as for :func:`fit`.

    Returns
    -------
    History
        Losses are the mean squared error over the ``k`` unrolled states.
    """
    windows = trajectories.unfold(1, k + 1, 1)  # (n_traj, T - k, ..., k + 1)
    windows = windows.movedim(-1, 2).reshape(-1, k + 1, *trajectories.shape[2:])
    wrapped = _Unrolled(closure, step, k)
    _dist.setup(distributed)
    data = _Tensors((windows[:, 0],), windows[:, 1:], (None, val_fraction, split), batch_size, seed)
    return _train(
        wrapped,
        closure,
        data,
        loss_fn,
        epochs,
        lr,
        patience,
        seed,
        progress,
        checkpoint_path,
        history_path,
        "a posteriori",
        resume,
    )


def load_checkpoint(model: nn.Module, path) -> nn.Module:
    """Load a ``state_dict`` saved by :func:`fit` (``weights_only=True``) into ``model``.

    ``model`` must be built as the trained one was, normalisers included: their buffers
    are loaded, so give them the trained shapes, e.g. ``Normalizer(torch.zeros(F),
    torch.ones(F))`` for one fitted with ``per="feature"`` on F features, ``(C, 1)`` for
    ``per="channel"`` on C channels, ``(1,)`` otherwise. A mismatch names the buffer.
    """
    model.load_state_dict(torch.load(str(path), weights_only=True))
    return model
