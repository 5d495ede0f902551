"""Flux-form closures: networks that output fluxes at cell faces, so the host conserves.

Every closure is a TorchScript-scriptable ``nn.Module`` taking batch-first tensors
(a Fortran array ``x(ncell, nbatch)`` arrives as torch ``(nbatch, ncell)``) and exposes
``pyclosure_contract()`` (skipped by scripting) with the metadata the exporter embeds.

Face conventions (see :mod:`pyclosure.fluxes`):

* periodic: ``N`` cells, ``N`` faces, face ``i`` is the left face of cell ``i``;
* column: ``N`` cells, ``N + 1`` faces, face 0 the surface, face ``N`` the lid.

A *stencil* closure evaluates the same small network at every face from the ``stencil``
cells around it (``stencil // 2`` on each side), so one trained closure runs on any ``N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .lipschitz import (
    ACTIVATION_GAIN,
    LipschitzConv1d,
    LipschitzLinear,
    activation,
    certified_bound,
    conv1d_bound,
)
from .normalize import Normalizer

__all__ = [
    "ColumnDownGradientClosure",
    "ColumnFluxClosure",
    "DownGradientClosure",
    "InsulatedColumnFluxClosure",
    "NonNegative",
    "PeriodicFluxClosure",
    "ResidualClosure",
    "mlp",
    "stencil_net",
]


def _layers(sizes, make, act: str, lipschitz: float | None) -> nn.Sequential:
    n = len(sizes) - 1
    target = None if lipschitz is None else float(lipschitz) ** (1.0 / n)
    target = None if target is None else target / ACTIVATION_GAIN[act] ** ((n - 1) / n)
    mods = []
    for i in range(n):
        mods.append(make(sizes[i], sizes[i + 1], i, target))
        if i < n - 1:
            mods.append(activation(act))
    return nn.Sequential(*mods)


def stencil_net(
    in_channels: int,
    out_channels: int,
    width: int,
    hidden: int = 32,
    depth: int = 2,
    act: str = "tanh",
    lipschitz: float | None = None,
) -> nn.Sequential:
    """Per-face network: Conv1d of kernel ``width`` then ``depth - 1`` hidden 1x1 convs.

    Maps (batch, in_channels, L) to (batch, out_channels, L - width + 1). With
    ``lipschitz`` set, its certified bound is at most ``lipschitz``.
    """

    def make(i, o, k, target):
        kw = width if k == 0 else 1
        if target is None:
            return nn.Conv1d(i, o, kw)
        return LipschitzConv1d(i, o, kw, target)

    return _layers([in_channels] + [hidden] * depth + [out_channels], make, act, lipschitz)


def mlp(
    in_features: int,
    out_features: int,
    hidden: int = 64,
    depth: int = 2,
    act: str = "tanh",
    lipschitz: float | None = None,
) -> nn.Sequential:
    """Fully connected network (..., in_features) -> (..., out_features)."""

    def make(i, o, k, target):
        return nn.Linear(i, o) if target is None else LipschitzLinear(i, o, target)

    return _layers([in_features] + [hidden] * depth + [out_features], make, act, lipschitz)


def _channels(x: Tensor) -> Tensor:
    """(batch, N) -> (batch, 1, N); (batch, C, N) unchanged."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    return x


def _meaning(boundary: str, dx: float, surface: str | None = None) -> dict:
    m = {"kind": "flux_at_faces", "boundary": boundary, "dx": dx}
    if boundary == "column":
        m["lid"] = "zero_flux"
        m["surface"] = "zero_flux" if surface is None else f"input:{surface}"
    return m


class PeriodicFluxClosure(nn.Module):
    """Learned face fluxes on a periodic 1-D domain from a local stencil of cells.

    Parameters
    ----------
    in_channels : int
        Number of input fields ``C``.
    stencil : int
        Even number of cells each face sees: cells ``i - stencil/2 .. i + stencil/2 - 1``
        around face ``i`` (left face of cell ``i``).
    hidden, depth : int
        Width and number of hidden layers of the per-face network.
    act : str
        Activation name.
    lipschitz : float, optional
        Lipschitz bound of the network in normalised units (see :mod:`pyclosure.lipschitz`).
    dx : float
        Cell width, recorded in the contract.
    input_normalizer, output_normalizer : Normalizer, optional
        Per-channel input scaling; global output scaling (applied inversely).

    Notes
    -----
    ``forward(x)``: x (batch, N) or (batch, C, N) -> flux (batch, N).
    """

    def __init__(
        self,
        in_channels: int = 1,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        lipschitz: float | None = None,
        dx: float = 1.0,
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        if stencil < 2 or stencil % 2:
            raise ValueError(f"stencil must be even and >= 2, got {stencil}")
        self.left = stencil // 2
        self.right = stencil // 2 - 1
        self.dx = float(dx)
        self.in_channels = in_channels
        self.net = stencil_net(in_channels, 1, stencil, hidden, depth, act, lipschitz)
        self.normalizer = input_normalizer if input_normalizer is not None else Normalizer()
        self.out_scale = output_normalizer if output_normalizer is not None else Normalizer()

    def forward(self, x: Tensor) -> Tensor:
        z = F.pad(self.normalizer(_channels(x)), [self.left, self.right], mode="circular")
        return self.out_scale.inverse(self.net(z).squeeze(1))

    @torch.jit.unused
    def lipschitz_bound(self) -> float:
        return self.normalizer.forward_gain() * certified_bound(self.net) * self.out_scale.inverse_gain()

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        cell_dim = 0 if self.in_channels == 1 else 1
        return {
            "input_names": ["x"],
            "output_names": ["flux"],
            "variable_dims": {"x": [cell_dim]},
            "meaning": {"flux": _meaning("periodic", self.dx)},
            "lipschitz_bound": self.lipschitz_bound(),
        }


class ColumnFluxClosure(nn.Module):
    """Learned face fluxes in a bounded column: prescribed surface flux, zero lid flux.

    Parameters
    ----------
    n_cells : int, optional
        Required by ``variant="mlp"`` (whole-column network, fixed ``N``).
    in_channels, stencil, hidden, depth, act, lipschitz, dx
        As :class:`PeriodicFluxClosure`; interior face ``j`` (between cells ``j-1`` and
        ``j``) sees cells ``j - stencil/2 .. j + stencil/2 - 1``.
    variant : {"stencil", "mlp"}
    padding : {"replicate", "zeros"}
        How the stencil extends past the surface and the lid.

    Notes
    -----
    ``forward(x, surface_flux)``: x (batch, N) or (batch, C, N), surface_flux (batch,) or
    (batch, 1) -> flux (batch, N + 1) with ``flux[:, 0] = surface_flux`` and
    ``flux[:, N] = 0`` exactly.
    """

    def __init__(
        self,
        n_cells: int | None = None,
        in_channels: int = 1,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        variant: str = "stencil",
        padding: str = "replicate",
        lipschitz: float | None = None,
        dx: float = 1.0,
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        if variant not in ("stencil", "mlp") or padding not in ("replicate", "zeros"):
            raise ValueError(f"bad variant {variant!r} or padding {padding!r}")
        if variant == "mlp" and n_cells is None:
            raise ValueError("variant='mlp' needs n_cells")
        if stencil < 2 or stencil % 2:
            raise ValueError(f"stencil must be even and >= 2, got {stencil}")
        self.pad = stencil // 2 - 1
        self.pad_mode = "replicate" if padding == "replicate" else "constant"
        self.use_mlp = variant == "mlp"
        self.n_cells = -1 if n_cells is None else int(n_cells)
        self.dx = float(dx)
        self.in_channels = in_channels
        if self.use_mlp:
            self.net = mlp(in_channels * self.n_cells, self.n_cells - 1, hidden, depth, act, lipschitz)
        else:
            self.net = stencil_net(in_channels, 1, stencil, hidden, depth, act, lipschitz)
        self.normalizer = input_normalizer if input_normalizer is not None else Normalizer()
        self.out_scale = output_normalizer if output_normalizer is not None else Normalizer()

    @torch.jit.export
    def interior(self, x: Tensor) -> Tensor:
        """Fluxes at interior faces 1..N-1: (batch, N - 1)."""
        z = self.normalizer(_channels(x))
        if self.use_mlp:
            out = self.net(z.flatten(1))
        else:
            if self.pad > 0:
                z = F.pad(z, [self.pad, self.pad], mode=self.pad_mode)
            out = self.net(z).squeeze(1)
        return self.out_scale.inverse(out)

    def column(self, x: Tensor, surface_flux: Tensor) -> Tensor:
        inner = self.interior(x)
        surface = surface_flux.reshape(-1, 1).to(inner.dtype)
        return torch.cat([surface, inner, torch.zeros_like(surface)], dim=1)

    def forward(self, x: Tensor, surface_flux: Tensor) -> Tensor:
        return self.column(x, surface_flux)

    @torch.jit.unused
    def lipschitz_bound(self) -> float:
        if self.use_mlp:
            net = certified_bound(self.net)
        else:
            net = 1.0
            for i, layer in enumerate(self.net):
                if i == 0 and self.pad_mode == "replicate":
                    w = layer.effective_weight() if hasattr(layer, "effective_weight") else layer.weight
                    net *= conv1d_bound(w, replicate_pad=self.pad)
                else:
                    net *= certified_bound(layer)
        inner = self.normalizer.forward_gain() * net * self.out_scale.inverse_gain()
        return max(1.0, inner)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        cell_dim = 0 if self.in_channels == 1 else 1
        return {
            "input_names": ["x", "surface_flux"],
            "output_names": ["flux"],
            "variable_dims": {} if self.use_mlp else {"x": [cell_dim]},
            "meaning": {"flux": _meaning("column", self.dx, "surface_flux")},
            "lipschitz_bound": self.lipschitz_bound(),
        }


class InsulatedColumnFluxClosure(ColumnFluxClosure):
    """:class:`ColumnFluxClosure` with zero surface flux: ``forward(x)`` -> (batch, N + 1)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.column(x, torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device))

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        c = super().pyclosure_contract()
        c["input_names"] = ["x"]
        c["meaning"] = {"flux": _meaning("column", self.dx)}
        return c


class DownGradientClosure(nn.Module):
    """Down-gradient flux ``-K(x) * du/dx`` on a periodic domain with ``K >= 0`` always.

    ``K = k_scale * softplus(net(x))`` at each face from a local stencil; the gradient at
    face ``i`` is ``(u[i] - u[i-1]) / dx`` of channel 0 (the diffused field).

    Notes
    -----
    ``forward(x)``: (batch, N) or (batch, C, N) -> flux (batch, N);
    ``diffusivity(x)`` -> K (batch, N).
    """

    def __init__(
        self,
        in_channels: int = 1,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        dx: float = 1.0,
        k_scale: float = 1.0,
        input_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        self.k_net = PeriodicFluxClosure(
            in_channels, stencil, hidden, depth, act, input_normalizer=input_normalizer
        )
        self.dx = float(dx)
        self.k_scale = float(k_scale)
        self.in_channels = in_channels

    @torch.jit.export
    def diffusivity(self, x: Tensor) -> Tensor:
        return self.k_scale * F.softplus(self.k_net(x))

    def forward(self, x: Tensor) -> Tensor:
        u = _channels(x)[:, 0]
        grad = (u - torch.roll(u, 1, dims=-1)) / self.dx
        return -self.diffusivity(x) * grad

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x"],
            "output_names": ["flux"],
            "variable_dims": {"x": [0 if self.in_channels == 1 else 1]},
            "meaning": {"flux": _meaning("periodic", self.dx)},
        }


class ColumnDownGradientClosure(nn.Module):
    """Down-gradient flux ``-K(x) * du/dz`` at interior faces of a column, ``K >= 0``.

    Notes
    -----
    ``forward(x, surface_flux)`` -> (batch, N + 1); face 0 is ``surface_flux``, face N is 0,
    interior face ``j`` carries ``-K_j * (u[j] - u[j-1]) / dx``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        dx: float = 1.0,
        k_scale: float = 1.0,
        padding: str = "replicate",
        input_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        self.k_net = ColumnFluxClosure(
            None, in_channels, stencil, hidden, depth, act, padding=padding, input_normalizer=input_normalizer
        )
        self.dx = float(dx)
        self.k_scale = float(k_scale)
        self.in_channels = in_channels

    @torch.jit.export
    def diffusivity(self, x: Tensor) -> Tensor:
        """K at interior faces: (batch, N - 1)."""
        return self.k_scale * F.softplus(self.k_net.interior(x))

    def forward(self, x: Tensor, surface_flux: Tensor) -> Tensor:
        u = _channels(x)[:, 0]
        inner = -self.diffusivity(x) * ((u[:, 1:] - u[:, :-1]) / self.dx)
        surface = surface_flux.reshape(-1, 1).to(inner.dtype)
        return torch.cat([surface, inner, torch.zeros_like(surface)], dim=1)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x", "surface_flux"],
            "output_names": ["flux"],
            "variable_dims": {"x": [0 if self.in_channels == 1 else 1]},
            "meaning": {"flux": _meaning("column", self.dx, "surface_flux")},
        }


class NonNegative(nn.Module):
    """Wrap a one-output module so its output is >= 0 (softplus or relu).

    Parameters
    ----------
    module : nn.Module
    mode : {"softplus", "relu"}
    """

    def __init__(self, module: nn.Module, mode: str = "softplus"):
        super().__init__()
        if mode not in ("softplus", "relu"):
            raise ValueError(f"mode must be 'softplus' or 'relu', got {mode!r}")
        self.module = module
        self.softplus = mode == "softplus"

    def forward(self, x: Tensor) -> Tensor:
        y = self.module(x)
        return F.softplus(y) if self.softplus else F.relu(y)

    @torch.jit.unused
    def lipschitz_bound(self) -> float:
        return certified_bound(self.module)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        inner = getattr(self.module, "pyclosure_contract", None)
        c = inner() if callable(inner) else {"input_names": ["x"], "output_names": ["y"]}
        c["constraint"] = {c["output_names"][0]: "non_negative"}
        return c


class ResidualClosure(nn.Module):
    """Grey-box periodic closure: classical flux plus a learned correction.

    ``flux = -(Cs dx)^2 |du/dx| du/dx - kappa du/dx + correction(x)``, with the gradient at
    face ``i`` ``(u[i] - u[i-1]) / dx`` (Smagorinsky-type eddy viscosity for Burgers plus
    down-gradient diffusion ``kappa >= 0``). The correction is a
    :class:`PeriodicFluxClosure` whose last layer starts at zero, so an untrained model is
    exactly the classical closure.

    Parameters
    ----------
    cs, kappa : float
        Initial Smagorinsky constant and diffusivity.
    trainable_classical : bool
        Whether ``cs`` and ``kappa`` are learned too.
    """

    def __init__(
        self,
        dx: float = 1.0,
        cs: float = 0.17,
        kappa: float = 0.0,
        trainable_classical: bool = False,
        stencil: int = 4,
        hidden: int = 32,
        depth: int = 2,
        act: str = "tanh",
        input_normalizer: Normalizer | None = None,
        output_normalizer: Normalizer | None = None,
    ):
        super().__init__()
        self.dx = float(dx)
        self.cs = nn.Parameter(torch.tensor(float(cs)), requires_grad=trainable_classical)
        self.kappa = nn.Parameter(torch.tensor(float(kappa)), requires_grad=trainable_classical)
        self.correction = PeriodicFluxClosure(
            1, stencil, hidden, depth, act, None, dx, input_normalizer, output_normalizer
        )
        last = self.correction.net[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()

    @torch.jit.export
    def classical(self, x: Tensor) -> Tensor:
        u = _channels(x)[:, 0]
        grad = (u - torch.roll(u, 1, dims=-1)) / self.dx
        cs = self.cs.to(u.dtype)
        nu_t = (cs * self.dx) ** 2 * grad.abs()
        return -(nu_t + torch.clamp(self.kappa.to(u.dtype), min=0.0)) * grad

    def forward(self, x: Tensor) -> Tensor:
        return self.classical(x) + self.correction(x)

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x"],
            "output_names": ["flux"],
            "variable_dims": {"x": [0]},
            "meaning": {"flux": _meaning("periodic", self.dx)},
        }
