"""Tendency closures: one subgrid tendency per grid point, from that point or a stencil.

Many hosts do not want face fluxes: a Lorenz-96-type model, or column physics that adds a
tendency per level, passes a feature vector per grid point and wants a tendency back.

* :class:`PointwiseClosure`: ``x (batch, F) -> tendency (batch, O)``, the same network at
  every point. A Fortran host passes ``x(F, npoints)`` and gets ``u(O, npoints)``.
* :class:`StencilTendencyClosure`: ``x (batch, N)`` or ``(batch, C, N)`` on a periodic
  1-D grid -> ``tendency (batch, N)``, each cell from the ``stencil`` cells centred on it,
  so one trained closure runs on any ``N``.

Both bake their normalisers in (the host passes physical units), say ``tendency`` in the
contract's ``meaning`` and carry the certified Lipschitz bound of the whole map (input
normaliser, network, output scale) in the contract.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .lipschitz import certified_bound
from .models import _channels, mlp, stencil_net
from .normalize import Normalizer

__all__ = ["PointwiseClosure", "StencilTendencyClosure", "tendency_meaning"]


def tendency_meaning(per: str, **more) -> dict:
    """The contract ``meaning`` of a tendency output (``per``: "point" or "cell")."""
    return {"kind": "tendency", "per": per, **more}


class PointwiseClosure(nn.Module):
    """A per-point tendency closure: normalise, MLP, scale back.

    Parameters
    ----------
    in_features, out_features : int
        Features per point ``F`` and tendencies per point ``O``.
    hidden, depth, act : int, int, str
        Width, number of hidden layers and activation of :func:`pyclosure.models.mlp`.
    lipschitz : float, optional
        Lipschitz bound of the network in normalised units (spectrally normalised layers).
    input_normalizer : Normalizer, optional
        Per feature: ``Normalizer.fit(x, per="feature")`` gives buffers of shape ``(F,)``.
    output_normalizer : Normalizer, optional
        Per output: ``Normalizer.fit(y, per="feature")``, shape ``(O,)``.
    input_names, output_name : list of str, str
        Names in the contract (default ``["x"]`` and ``"tendency"``).

    Notes
    -----
    ``forward(x)``: x (batch, F) -> (batch, O). To rebuild a model for
    :func:`pyclosure.train.load_checkpoint`, pass normalisers of the same shapes, e.g.
    ``Normalizer(torch.zeros(F), torch.ones(F))``; the checkpoint fills in the values.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        lipschitz: float | None = None,
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
        input_names: list[str] | None = None,
        output_name: str = "tendency",
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be >= 1, got {in_features}, {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.net = mlp(in_features, out_features, hidden, depth, act, lipschitz)
        self.normalizer = input_normalizer if input_normalizer is not None else Normalizer()
        self.out_scale = output_normalizer if output_normalizer is not None else Normalizer()
        self.input_names = list(input_names or ["x"])
        self.output_name = output_name

    def forward(self, x: Tensor) -> Tensor:
        return self.out_scale.inverse(self.net(self.normalizer(x)))

    def lipschitz_bound(self) -> float:
        """Certified bound of ``x -> tendency`` (l2 per point), in physical units."""
        return self.normalizer.forward_gain() * certified_bound(self.net) * self.out_scale.inverse_gain()

    def pyclosure_contract(self) -> dict:
        return {
            "input_names": self.input_names,
            "output_names": [self.output_name],
            "meaning": {self.output_name: tendency_meaning("point")},
            "lipschitz_bound": self.lipschitz_bound(),
        }


class StencilTendencyClosure(nn.Module):
    """Periodic 1-D tendency closure: cell ``i`` from cells ``i - r .. i + r``.

    Parameters
    ----------
    in_channels : int
        Input fields ``C``.
    stencil : int
        Odd number of cells each tendency sees (``r = stencil // 2`` on each side).
    hidden, depth, act, lipschitz
        As :class:`PointwiseClosure`, for :func:`pyclosure.models.stencil_net`.
    input_normalizer, output_normalizer : Normalizer, optional
        Per-channel input scaling (``per="channel"``), global output scaling.

    Notes
    -----
    ``forward(x)``: x (batch, N) or (batch, C, N) -> tendency (batch, N).
    """

    def __init__(
        self,
        in_channels: int = 1,
        stencil: int = 3,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        lipschitz: float | None = None,
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        if stencil < 1 or stencil % 2 == 0:
            raise ValueError(f"stencil must be odd and >= 1, got {stencil}")
        self.half = stencil // 2
        self.in_channels = int(in_channels)
        self.net = stencil_net(in_channels, 1, stencil, hidden, depth, act, lipschitz)
        self.normalizer = input_normalizer if input_normalizer is not None else Normalizer()
        self.out_scale = output_normalizer if output_normalizer is not None else Normalizer()

    def forward(self, x: Tensor) -> Tensor:
        z = F.pad(self.normalizer(_channels(x)), [self.half, self.half], mode="circular")
        return self.out_scale.inverse(self.net(z).squeeze(1))

    def lipschitz_bound(self) -> float:
        """Certified bound of ``x -> tendency`` over the whole periodic field (l2)."""
        return self.normalizer.forward_gain() * certified_bound(self.net) * self.out_scale.inverse_gain()

    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x"],
            "output_names": ["tendency"],
            "variable_dims": {"x": [0 if self.in_channels == 1 else 1]},
            "meaning": {"tendency": tendency_meaning("cell", boundary="periodic")},
            "lipschitz_bound": self.lipschitz_bound(),
        }
