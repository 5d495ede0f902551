"""Training across processes with torch's DistributedDataParallel (DDP), e.g. under ``torchrun``.

:func:`pyclosure.train.fit` uses these helpers: it joins the process group ``torchrun`` describes
(:func:`setup`), wraps the model in DDP (:func:`wrap`), gives each rank its share of every batch,
averages losses over all ranks (:func:`mean`) and lets only rank 0 (:func:`is_main`) write files
and show progress. Nothing here is needed in a single process: every helper then does nothing.

The process group uses gloo on the CPU and NCCL when CUDA is available, unless it already
exists (then it is used as it is).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["is_main", "mean", "placement", "setup", "shard", "wrap"]


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(mode: bool | None = None) -> bool:
    """Join the process group if asked or launched by ``torchrun``; True if training is distributed.

    Parameters
    ----------
    mode : bool or None
        None: distributed when a process group exists or ``torchrun`` set ``WORLD_SIZE > 1``.
        True: distributed (error if neither holds). False: this process trains alone.
    """
    if mode is False:
        return False
    if dist.is_available() and dist.is_initialized():
        return True
    if _launched():
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {missing} are not set: "
                "launch with torchrun, or call torch.distributed.init_process_group"
            )
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return True
    if mode:
        raise RuntimeError(
            "distributed=True, but no process group exists and WORLD_SIZE is not above 1: "
            "launch with torchrun --nproc_per_node N, or init the process group first"
        )
    return False


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def placement() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without a process group."""
    return (dist.get_rank(), dist.get_world_size()) if _active() else (0, 1)


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that writes files."""
    return placement()[0] == 0


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in DistributedDataParallel when a process group exists, else itself."""
    if not _active() or dist.get_world_size() == 1:
        return module
    return torch.nn.parallel.DistributedDataParallel(module)


def shard(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's part of a global batch of indices, and the weight of its mean loss.

    Rank ``r`` takes ``batch[r::world_size]``. DDP averages gradients over ranks, so a rank's
    mean loss is weighted by ``world_size * local / global`` for the average to be the global
    batch's mean (exact for losses that are means over samples).
    """
    rank, world = placement()
    if world == 1:
        return batch, 1.0
    mine = batch[rank::world]
    return mine, world * len(mine) / len(batch)


def mean(total: float, count: int) -> float:
    """``sum(total) / sum(count)`` over all ranks (``total / count`` alone); NaN if no samples."""
    if _active() and dist.get_world_size() > 1:
        t = torch.tensor([total, count], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / count if count else float("nan")
