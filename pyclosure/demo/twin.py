"""Torch twin of the Fortran Burgers core (burgers_core.f90).

Same grid, same face fluxes, same SSP-RK3 arithmetic in the same order, same
xorshift64 forcing sequence, in float64: for the closures "none" and
"smagorinsky" it reproduces the Fortran core bit for bit on the same machine
(see tests/python/test_burgers_core.py). Every step is differentiable in torch,
so a closure can be trained a posteriori by unrolling :func:`step`.

Shapes: a state ``u`` is ``(..., n)`` (any leading batch dimensions); face
``i`` is the LEFT face of cell ``i`` (periodic), so a flux is ``(..., n)`` too.
A learned closure is any callable ``closure(u) -> tau`` with ``tau`` of the
same shape: exactly what the Fortran side passes as the torch tensor ``(1, n)``.
"""

import math
from dataclasses import dataclass

import torch

MASK64 = (1 << 64) - 1
SEED_MIX = 0x2545F4914F6CDD1D
TWOPI = 2.0 * math.pi  # the double nearest 2 pi, as the Fortran literal


@dataclass
class BurgersConfig:
    """Parameters of a run (the arguments of ``burgers_core.init`` and ``set_closure``)."""

    n: int = 128
    length: float = 100.0
    nu: float = 0.02
    dt: float = 0.01
    seed: int = 1
    force_amp: float = 0.1
    kmin: int = 1
    kmax: int = 3
    force_tau: float = 1.0
    closure: str = "none"
    cs: float = 0.2
    scheme: str = "central"

    @property
    def dx(self):
        return self.length / float(self.n)

    @property
    def nforce(self):
        """Steps between forcing redraws: max(1, nint(force_tau/dt))."""
        r = self.force_tau / self.dt
        return max(1, math.floor(r + 0.5))  # Fortran nint, r > 0


class Xorshift64:
    """The core's generator: xorshift64 (13, 7, 17), seeded as in ``rng_seed``."""

    def __init__(self, seed):
        s = (seed & MASK64) ^ SEED_MIX
        self.state = s if s != 0 else 1
        for _ in range(16):
            self.uniform()

    def uniform(self):
        """Next deviate in [0, 1): the top 53 bits of the state times 2**-53."""
        x = self.state
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        self.state = x
        return float(x >> 11) * 2.0**-53


def forcing_basis(cfg):
    """Cell means of cos and sin(2 pi k x / L), each ``(kmax-kmin+1, n)``."""
    n = cfg.n
    cb, sb = [], []
    for k in range(cfg.kmin, cfg.kmax + 1):
        if k == 0:
            cb.append([1.0] * n)
            sb.append([0.0] * n)
            continue
        kw = TWOPI * float(k) / float(n)
        t = [TWOPI * float(k * j) / float(n) for j in range(n + 1)]
        cb.append([(math.sin(t[i + 1]) - math.sin(t[i])) / kw for i in range(n)])
        sb.append([(math.cos(t[i]) - math.cos(t[i + 1])) / kw for i in range(n)])
    return torch.tensor(cb, dtype=torch.float64), torch.tensor(sb, dtype=torch.float64)


class Forcing:
    """Forcing sequence of the core: ``forcing(step_index)`` gives the cell forcing.

    Must be called with consecutive step indices 0, 1, 2, ... (like the core,
    it redraws when ``step_index % nforce == 0``).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.rng = Xorshift64(cfg.seed)
        self.cb, self.sb = forcing_basis(cfg)
        self.frc = torch.zeros(cfg.n, dtype=torch.float64)
        self.mom = 0.0  # accumulated dt*dx*sum(frc), as mom_forcing
        self.next_step = 0  # index of the next step run() will take

    def __call__(self, step_index):
        if step_index % self.cfg.nforce == 0:
            frc = torch.zeros(self.cfg.n, dtype=torch.float64)
            coef = []
            for _ in range(self.cb.shape[0]):
                a = 2.0 * self.rng.uniform() - 1.0
                b = 2.0 * self.rng.uniform() - 1.0
                coef.append((a, b))
            for j, (a, b) in enumerate(coef):
                frc = frc + a * self.cb[j] + b * self.sb[j]
            self.frc = self.cfg.force_amp * frc
        return self.frc


def fluxes(u, cfg, closure=None):
    """Total face flux ``(..., n)`` (resolved + viscous + subgrid) from cells ``u``.

    ``closure`` overrides ``cfg.closure``: None uses the config ("none" or
    "smagorinsky"); a callable is a learned closure ``u -> tau``.
    """
    ul = torch.roll(u, 1, dims=-1)  # u(i-1), periodic
    ur = u
    if cfg.scheme == "rusanov":
        res = 0.25 * (ul * ul + ur * ur) - 0.5 * torch.maximum(ul.abs(), ur.abs()) * (ur - ul)
    else:
        res = (ul * ul + ul * ur + ur * ur) / 6.0
    g = (ur - ul) / cfg.dx
    vis = -cfg.nu * g
    if callable(closure):
        sgs = closure(u)
    elif (closure or cfg.closure) == "smagorinsky":
        cdx = cfg.cs * cfg.dx
        cdx2 = cdx * cdx
        sgs = -(cdx2 * g.abs() * g)
    else:
        sgs = torch.zeros_like(u)
    return res + vis + sgs


def rk_stage(uin, frc, cfg, closure=None):
    """One Euler substep ``uin - dt*(F(i+1) - F(i))/dx + dt*frc``."""
    f = fluxes(uin, cfg, closure)
    fr = torch.roll(f, -1, dims=-1)  # F(i+1)
    return uin - cfg.dt * (fr - f) / cfg.dx + cfg.dt * frc


def step(u, frc, cfg, closure=None):
    """One SSP-RK3 step with the forcing ``frc`` held fixed (differentiable)."""
    u1 = rk_stage(u, frc, cfg, closure)
    w = rk_stage(u1, frc, cfg, closure)
    u2 = 0.75 * u + 0.25 * w
    w = rk_stage(u2, frc, cfg, closure)
    return u / 3.0 + 2.0 * w / 3.0


def run(u0, nsteps, cfg, forcing=None, closure=None, every=0):
    """Advance ``nsteps`` steps from ``u0``; return the final state (and snapshots).

    ``forcing`` is a :class:`Forcing` positioned at the current step (a fresh
    one starts at step 0). With ``every > 0`` also return the list of states
    at steps 0, every, 2*every, ...
    """
    forcing = forcing if forcing is not None else Forcing(cfg)
    start = forcing.next_step
    u = u0
    snaps = [u0] if every else None
    for s in range(start, start + nsteps):
        frc = forcing(s)
        forcing.mom += cfg.dt * cfg.dx * float(frc.sum())
        u = step(u, frc, cfg, closure)
        if every and (s + 1 - start) % every == 0:
            snaps.append(u)
    forcing.next_step = start + nsteps
    return (u, snaps) if every else u
