"""Trains three small closures (in-memory ``fit``, streamed ``fit``, ``fit_a_posteriori``) in
float64 and saves the final weights from rank 0; run alone or under ``torchrun``.

    python ddp_train.py DATA.nc OUT            # one process
    torchrun --nproc_per_node 2 ddp_train.py DATA.nc OUT

Each rank gives ``fit`` a checkpoint path in ``OUT/rank<r>/``, so the test can see that only
rank 0 wrote its checkpoint, history and resume state.
"""

import sys
from pathlib import Path

import torch

from pyclosure import distributed
from pyclosure.stream import StreamDataset
from pyclosure.train import fit, fit_a_posteriori


def mlp(n):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.Tanh(), torch.nn.Linear(16, n)).double()


def step(u, closure):
    return u + 0.1 * closure(u)


def main(data_path, out):
    torch.set_num_threads(1)
    distributed.setup()
    rank, world = distributed.placement()
    mine = Path(out) / f"rank{rank}"
    mine.mkdir(parents=True, exist_ok=True)
    kw = {"epochs": 4, "lr": 1e-2, "patience": 50, "progress": True}
    data = StreamDataset(data_path, ["u"], "flux", lanes=2, dtype=torch.float64)
    u, flux = (
        torch.cat([torch.as_tensor(data.read_chunk(c)[i]) for c in range(len(data.chunks))]).double()
        for i in (0, 1)
    )
    models = {"memory": mlp(8), "stream": mlp(8), "a_posteriori": mlp(8)}
    fit(models["memory"], u, flux, batch_size=16, checkpoint_path=mine / "memory.pt", **kw)
    fit(models["stream"], data, batch_size=16, checkpoint_path=mine / "stream.pt", **kw)
    fit_a_posteriori(
        models["a_posteriori"],
        step,
        u[:60].reshape(4, 15, 8),
        k=3,
        batch_size=8,
        checkpoint_path=mine / "a_posteriori.pt",
        **kw,
    )
    if distributed.is_main():
        torch.save({k: m.state_dict() for k, m in models.items()}, Path(out) / f"weights-{world}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:3])
