"""Input/output scaling baked into exported closures, so the host passes physical units.

A :class:`Normalizer` holds ``mean`` and ``std`` buffers fitted on training data and maps
physical values to standard units (``forward``) or back (``inverse``). Buffers travel
inside the TorchScript file, so the Fortran host never scales anything itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Normalizer"]


class Normalizer(nn.Module):
    """Affine standardisation ``(x - mean) / std`` with an exact inverse.

    Parameters
    ----------
    mean, std : Tensor
        Shapes broadcastable against the per-sample shape of the data it will see, e.g.
        ``(F,)`` per feature of ``(batch, F)`` data, ``(C, 1)`` per channel of
        ``(batch, C, N)`` data, or ``(1,)`` for one global scale. ``std`` must be > 0.

    Notes
    -----
    The default ``Normalizer()`` is the identity (mean 0, std 1).
    """

    def __init__(self, mean: Tensor | None = None, std: Tensor | None = None):
        super().__init__()
        mean = torch.zeros(1) if mean is None else torch.as_tensor(mean).detach().clone()
        std = torch.ones(1) if std is None else torch.as_tensor(std).detach().clone()
        if mean.shape != std.shape:
            raise ValueError(f"mean shape {tuple(mean.shape)} != std shape {tuple(std.shape)}")
        if not bool(torch.all(std > 0)):
            raise ValueError("std must be strictly positive")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, data: Tensor, per: str = "channel", eps: float = 1e-8) -> Normalizer:
        """Fit mean and std on training data.

        Parameters
        ----------
        data : Tensor, shape (samples, ...) e.g. (samples, N) or (samples, C, N)
        per : {"feature", "channel", "global"}
            ``"feature"``: statistics per position of the per-sample shape (fixed size);
            ``"channel"``: one pair per channel (dim 1 of 3-D data; one pair for 2-D data),
            valid for any number of cells; ``"global"``: one pair for everything.
        eps : float
            Floor on ``std`` relative to ``max(std, 1)``.

        Returns
        -------
        Normalizer
        """
        data = torch.as_tensor(data)
        if per == "feature":
            mean, std = data.mean(0), data.std(0)
        elif per == "channel" and data.dim() == 3:
            mean = data.mean((0, 2)).unsqueeze(-1)
            std = data.std((0, 2)).unsqueeze(-1)
        elif per in ("channel", "global"):
            mean, std = data.mean().reshape(1), data.std().reshape(1)
        else:
            raise ValueError(f"per must be 'feature', 'channel' or 'global', got {per!r}")
        std = torch.clamp(std, min=eps * max(float(std.max()), 1.0))
        return cls(mean, std)

    def forward(self, x: Tensor) -> Tensor:
        """Physical to standard units; shape unchanged."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    @torch.jit.export
    def inverse(self, z: Tensor) -> Tensor:
        """Standard to physical units; shape unchanged."""
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)

    @torch.jit.unused
    def forward_gain(self) -> float:
        """Lipschitz constant of :meth:`forward`: ``1 / min(std)``."""
        return float(1.0 / self.std.min())

    @torch.jit.unused
    def inverse_gain(self) -> float:
        """Lipschitz constant of :meth:`inverse`: ``max(std)``."""
        return float(self.std.max())
