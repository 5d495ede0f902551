"""The training spec of the online Burgers example (``pyclosure.demo.online.spec:spec``).

The Fortran host (``burgers_online``) calls ``nn_train_step(trainer, cells, fine)`` with
the filtered DNS state ``cells`` (torch ``(1, n_les)``, the closure's input) and its DNS
companion's fine state ``fine`` (``(1, n_dns)``). :func:`spec`'s ``prepare`` turns the fine
state into the target, the subgrid flux at the coarse faces, with the same coarse-graining
the offline data use (:func:`pyclosure.demo.data.subgrid_flux`), so online and offline
closures learn the same target. The module is the model file's own TorchScript network.
"""

import torch

from ...online import TrainingSpec
from .. import data


def relative_mse(prediction, target):
    """``mean((p - t)^2) / mean(t^2)``: 1 for a closure that predicts no flux."""
    return torch.mean((prediction - target) ** 2) / torch.mean(target**2)


def prepare(inputs, targets):
    """(cells, fine state) -> (cells, subgrid flux at the coarse faces)."""
    cells, fine = inputs[0], targets[0]
    factor = fine.shape[-1] // cells.shape[-1]
    tau = data.subgrid_flux(fine.detach().numpy(), factor)
    return inputs, [torch.from_numpy(tau).to(cells.dtype)]


def spec(ctx):
    """The model file's network, Adam (option ``lr``, default 1e-3), the relative MSE."""
    module = torch.jit.load(ctx.model_path)
    optimizer = torch.optim.Adam(module.parameters(), lr=ctx.get("lr", 1e-3))
    return TrainingSpec(module, optimizer, loss=relative_mse, prepare=prepare)
