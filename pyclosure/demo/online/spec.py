"""The training spec of the online Burgers example (``pyclosure.demo.online.spec:spec``).

The Fortran host (``burgers_online``) calls ``nn_train_step(trainer, cells, fine)`` with
the filtered DNS state ``cells`` (torch ``(1, n_les)``, the closure's input) and its DNS
companion's fine state ``fine`` (``(1, n_dns)``). :func:`spec`'s ``prepare`` turns the fine
state into the target, the subgrid flux at the coarse faces, with the same coarse-graining
the offline data use (:func:`pyclosure.data.subgrid_flux` with ``filter="face_box"``), so online and offline
closures learn the same target. The module is the model file's own TorchScript network.

Successive snapshots of one run are nearly the same sample; trained on each alone, with a
constant learning rate, the closure levels off well short of an offline fit. With the
option ``buffer=N`` the spec keeps the last N snapshots (copies) and each step trains on the
new one and ``batch - 1`` drawn from them (:class:`Replay`): the example uses 500 and 8.
"""

import collections

import torch

from ... import data
from ...online import TrainingSpec


def relative_mse(prediction, target):
    """``mean((p - t)^2) / mean(t^2)``: 1 for a closure that predicts no flux."""
    return torch.mean((prediction - target) ** 2) / torch.mean(target**2)


def prepare(inputs, targets):
    """(cells, fine state) -> (cells, subgrid flux at the coarse faces)."""
    cells, fine = inputs[0], targets[0]
    factor = fine.shape[-1] // cells.shape[-1]
    _, tau = data.subgrid_flux(fine.detach().numpy(), factor, filter="face_box")
    return inputs, [torch.from_numpy(tau).to(cells.dtype)]


class Replay:
    """``prepare`` with a replay buffer: each step trains on the new snapshot and ``batch - 1``
    drawn from the last ``size`` (copies: the host's arrays change after the step)."""

    def __init__(self, size, batch, seed=0):
        self.buffer, self.batch = collections.deque(maxlen=size), batch
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, inputs, targets):
        (cells,), (tau,) = prepare(inputs, targets)
        self.buffer.append((cells.clone(), tau))
        k = min(self.batch - 1, len(self.buffer) - 1)
        picks = torch.randperm(len(self.buffer) - 1, generator=self.generator)[:k].tolist()
        xs, ys = zip(*([self.buffer[-1]] + [self.buffer[i] for i in picks]))
        return [torch.cat(xs)], [torch.cat(ys)]


def spec(ctx):
    """The model file's network, Adam (option ``lr``, default 1e-3), the relative MSE; options
    ``buffer`` (snapshots kept, default 0: train on the new one only) and ``batch`` (default 8)."""
    module = torch.jit.load(ctx.model_path)
    optimizer = torch.optim.Adam(module.parameters(), lr=ctx.get("lr", 1e-3))
    size = ctx.get("buffer", 0)
    made = Replay(size, ctx.get("batch", 8)) if size > 0 else prepare
    return TrainingSpec(module, optimizer, loss=relative_mse, prepare=made)
