"""Out-of-distribution guard: a Mahalanobis distance to the training inputs, as an output.

The host gets, next to the closure's fluxes, a per-sample score it can compare with the
threshold stored in the model contract (a high quantile of the training scores), and can
fall back to a classical scheme where the closure is extrapolating.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GuardedClosure", "MahalanobisGuard"]


class MahalanobisGuard(nn.Module):
    """Per-sample Mahalanobis distance to the training input distribution.

    Two modes:

    * ``window=0``: the whole per-sample input, flattened to ``D`` features (fixed size);
    * ``window=w > 0``: every periodic window of ``w`` consecutive cells (all channels) is
      a feature vector; the score is the largest window distance, so the guard runs on
      any number of cells.

    Parameters
    ----------
    window : int
    regularization : float
        Added to the covariance diagonal, relative to its mean diagonal.

    Notes
    -----
    ``forward(x)``: x (batch, N) or (batch, C, N) -> score (batch,). Use :meth:`fit` before.
    """

    def __init__(self, window: int = 0, regularization: float = 1e-6):
        super().__init__()
        self.window = int(window)
        self.regularization = float(regularization)
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("precision", torch.ones(1, 1))
        self.threshold = float("inf")
        self.quantile = 0.999

    def features(self, x: Tensor) -> Tensor:
        """Feature vectors: (batch, 1, D) or (batch, N, C * window)."""
        if self.window <= 0:
            return x.flatten(1).unsqueeze(1)
        z = x.unsqueeze(1) if x.dim() == 2 else x
        z = F.pad(z, [0, self.window - 1], mode="circular")
        windows = z.unfold(2, self.window, 1)  # (batch, C, N, w)
        return windows.permute(0, 2, 1, 3).flatten(2)

    def forward(self, x: Tensor) -> Tensor:
        f = (self.features(x) - self.mean.to(x.dtype)) / self.scale.to(x.dtype)
        d2 = torch.einsum("bni,ij,bnj->bn", f, self.precision.to(x.dtype), f)
        return torch.sqrt(torch.clamp(d2, min=0.0)).amax(dim=1)

    @torch.jit.unused
    def fit(self, x: Tensor, quantile: float = 0.999) -> MahalanobisGuard:
        """Fit mean, (regularised) inverse covariance and threshold on training inputs.

        Parameters
        ----------
        x : Tensor, shape (samples, N) or (samples, C, N)
        quantile : float
            Threshold = this quantile of the training scores.
        """
        x = torch.as_tensor(x).double()
        feats = self.features(x).reshape(-1, self.features(x[:1]).shape[-1])
        mean = feats.mean(0)
        scale = feats.std(0).clamp(min=1e-12)
        z = (feats - mean) / scale
        cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
        reg = self.regularization * float(cov.diagonal().mean())
        precision = torch.linalg.inv(cov + reg * torch.eye(cov.shape[0], dtype=cov.dtype))
        dtype = self.mean.dtype
        self.mean = mean.to(dtype)
        self.scale = scale.to(dtype)
        self.precision = (0.5 * (precision + precision.T)).to(dtype)
        with torch.no_grad():
            scores = self.forward(x.to(dtype))
        self.quantile = float(quantile)
        self.threshold = float(torch.quantile(scores.double(), quantile))
        return self


class GuardedClosure(nn.Module):
    """A one-input closure plus its OOD score: ``forward(x) -> (output, ood_score)``.

    Parameters
    ----------
    closure : nn.Module
        Any single-input, single-output closure.
    guard : MahalanobisGuard
        Fitted guard; ``ood_score`` has shape (batch,).
    """

    def __init__(self, closure: nn.Module, guard: MahalanobisGuard):
        super().__init__()
        self.closure = closure
        self.guard = guard

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.closure(x), self.guard(x)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        inner = getattr(self.closure, "pyclosure_contract", None)
        c = dict(inner()) if callable(inner) else {"input_names": ["x"], "output_names": ["y"]}
        c["output_names"] = list(c["output_names"]) + ["ood_score"]
        if self.guard.window <= 0:
            c["variable_dims"] = {}
        c.setdefault("meaning", {})["ood_score"] = {
            "kind": "ood_score",
            "method": "mahalanobis",
            "quantile": self.guard.quantile,
        }
        c["ood"] = {"output": "ood_score", "threshold": self.guard.threshold}
        return c
