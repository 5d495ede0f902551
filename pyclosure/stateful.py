"""Closures with memory, carried by the host: state in, state out, named in the contract.

The bridge keeps no per-column state. A stateful closure takes its state as an extra input
and returns the next state as an extra output; the contract's ``state`` list pairs them
(``{"input": "noise", "output": "noise_next", "init": ...}``), the host keeps the array
between calls (one column of state per column of input), and a replay record holds the
state like any other input and output, so replay is bit for bit.

* :class:`RedNoiseClosure`: a deterministic closure plus AR(1) ("red") noise,
  ``e(n+1) = phi e(n) + sqrt(1 - phi^2) sigma xi(n)``, with ``phi`` and ``sigma`` fitted
  from the residuals of the deterministic part (:func:`fit_ar1`). The host passes a
  zero-filled state at the start and no seed: each column seeds itself on its first call.
* :class:`DelayClosure`: a closure that sees the last ``m`` inputs as well as the current
  one (a delay, or memory, term), its history carried the same way.

Call a stateful closure once per host time step and keep the state it returns; a
Runge-Kutta host that calls it at every stage passes the same state to each stage (the
noise then stays constant over the step) and keeps the state from one of them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DelayClosure", "RedNoiseClosure", "fit_ar1", "initial_history", "state_pairs"]


def _hash(x: Tensor) -> Tensor:
    """A 32-bit integer hash (C. Wellons' prospector, multipliers < 2**31 so int64 never
    overflows) on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & 0xFFFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & 0xFFFFFFFF
    return x ^ (x >> 15)


def _column_keys(x: Tensor, seed: int) -> Tensor:
    """A nonzero 32-bit key per column from the seed, the row and its first input (to 2**-20)."""
    rows = torch.arange(x.shape[0], dtype=torch.int64, device=x.device)
    first = x.reshape(x.shape[0], -1)[:, 0].to(torch.float64).clamp(-1e12, 1e12)
    bits = torch.nan_to_num(first * 1048576.0).floor().to(torch.int64)
    mix = _hash((bits & 0xFFFFFFFF) ^ _hash((bits >> 32) & 0xFFFFFFFF))
    return (_hash(_hash(rows ^ seed) ^ mix)) | 1


def fit_ar1(residuals, lag_steps: int = 1) -> tuple[Tensor, Tensor]:
    """AR(1) coefficients of residual time series, per output.

    Parameters
    ----------
    residuals : array or Tensor, shape (T, ..., O)
        ``target - deterministic(x)`` in time order along axis 0 (any number of columns in
        between), sampled every ``lag_steps`` host time steps.
    lag_steps : int
        Host time steps between consecutive samples: ``phi`` per step is the lag-1
        autocorrelation to the power ``1 / lag_steps``.

    Returns
    -------
    phi, sigma : Tensor, shape (O,), float64
        Lag-1 autocorrelation per host step (clamped to [0, 0.9999]) and standard deviation.
    """
    r = torch.as_tensor(residuals, dtype=torch.float64)
    if r.dim() < 2 or r.shape[0] < 3:
        raise ValueError(f"residuals need shape (T >= 3, ..., outputs), got {tuple(r.shape)}")
    r = r - r.mean(dim=tuple(range(r.dim() - 1)))
    num = (r[1:] * r[:-1]).sum(dim=tuple(range(r.dim() - 1)))
    den = (r * r).sum(dim=tuple(range(r.dim() - 1)))
    if bool((den == 0).any()):
        raise ValueError("a residual series is constant: no noise to fit")
    rho = (num / den).clamp(0.0, 0.9999)
    phi = rho ** (1.0 / lag_steps)
    return phi, (den / r[..., 0].numel()).sqrt()


def state_pairs(module: nn.Module) -> list:
    """The contract's ``state`` list of a module (empty for a stateless one)."""
    hook = getattr(module, "pyclosure_contract", None)
    return list((hook() if callable(hook) else {}).get("state", []))


class RedNoiseClosure(nn.Module):
    """``forward(x, noise) -> (tendency, noise_next)``: deterministic part plus AR(1) noise.

    Parameters
    ----------
    deterministic : nn.Module
        One-output closure ``x (batch, ...) -> (batch, O)``.
    phi, sigma : float or sequence of float, one per output or one for all
        AR(1) coefficient per call and stationary standard deviation (``fit_ar1``).
        ``phi = 0`` gives white noise of the same size.
    seed : int
        Mixed into every column's key (0 to 2**31 - 1).

    Notes
    -----
    ``noise`` is float64, shape (batch, 2 O): the current noise per output, then a 32-bit
    generator state per output. Zeros mean "not started": on that call each generator is
    seeded from a hash of the seed, the column's row in the call and its first input value,
    and the noise starts from the stationary distribution. Each call advances each
    generator one step (a 32-bit linear congruential generator, whose upper bits make the
    uniform) and turns it into a standard normal (``ndtri``): a column's noise depends only
    on its own state, never on the global RNG, the batch size or the thread count, and a
    call costs a few tensor operations.
    """

    def __init__(self, deterministic: nn.Module, phi, sigma, seed: int = 0):
        super().__init__()
        phi = torch.as_tensor(phi, dtype=torch.float64).reshape(-1)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        if bool(((phi < 0) | (phi >= 1)).any()) or bool((sigma < 0).any()):
            raise ValueError("phi must be in [0, 1) and sigma >= 0")
        if not 0 <= seed < 2**31:
            raise ValueError(f"seed must be in 0 .. 2**31 - 1, got {seed}")
        self.deterministic = deterministic
        self.register_buffer("phi", phi)
        self.register_buffer("sigma", sigma)
        self.register_buffer("innovation", sigma * torch.sqrt(1.0 - phi * phi))
        self.seed = int(seed)
        self.state_name = "noise"

    @classmethod
    def from_residuals(
        cls, deterministic: nn.Module, residuals, lag_steps: int = 1, seed: int = 0
    ) -> RedNoiseClosure:
        """Fit ``phi`` and ``sigma`` to ``residuals`` (see :func:`fit_ar1`)."""
        phi, sigma = fit_ar1(residuals, lag_steps)
        return cls(deterministic, phi, sigma, seed)

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.deterministic(x)
        n_out = mean.shape[1]
        if noise.dim() != 2 or noise.shape[1] != 2 * n_out:
            raise ValueError(
                "noise state must have shape (batch, 2 * outputs): noise, then generator, per output"
            )
        e, gen = noise[:, :n_out], noise[:, n_out:].to(torch.int64)
        fresh = gen == 0
        # TorchScript (what the bridge runs) skips the seeding once every column has a
        # generator; traced and exported graphs (.pt2) cannot branch on data: they always seed.
        started = False
        if torch.jit.is_scripting():
            started = not bool(fresh.any())
        if not started:
            outs = torch.arange(n_out, dtype=torch.int64, device=x.device).unsqueeze(0)
            keys = _hash(_column_keys(x, self.seed).unsqueeze(1) ^ outs) | 1
            gen = torch.where(fresh, keys, gen)
        gen = (gen * 1664525 + 1013904223) & 0xFFFFFFFF  # one LCG step (Numerical Recipes)
        xi = torch.special.ndtri((gen.to(torch.float64) + 0.5) * (1.0 / 4294967296.0))
        e_next = self.phi * e + self.innovation * xi
        if not started:
            e_next = torch.where(fresh, self.sigma * xi, e_next)
        state = torch.cat([e_next, gen.to(torch.float64)], dim=1)
        return mean + e_next.to(mean.dtype), state

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        inner = getattr(self.deterministic, "pyclosure_contract", None)
        c = dict(inner()) if callable(inner) else {"input_names": ["x"], "output_names": ["tendency"]}
        c["input_names"] = list(c.get("input_names", ["x"]))[:1] + [self.state_name]
        name = c["output_names"][0]
        c["output_names"] = [name, self.state_name + "_next"]
        meaning = dict(c.get("meaning", {}))
        meaning[name] = {
            **meaning.get(name, {}),
            "noise": {
                "kind": "ar1",
                "phi": self.phi.tolist(),
                "sigma": self.sigma.tolist(),
                "seed": self.seed,
            },
        }
        meaning[self.state_name + "_next"] = {"kind": "state"}
        c["meaning"] = meaning
        c.pop("lipschitz_bound", None)  # the noise is not a function of x
        c["state"] = [
            {
                "input": self.state_name,
                "output": self.state_name + "_next",
                "init": "zeros",
                "layout": "noise per output, then a generator state per output (float64)",
            }
        ]
        return c


def initial_history(x: Tensor, m: int) -> Tensor:
    """A :class:`DelayClosure` history that repeats the first state: (batch, m * F)."""
    return x.reshape(x.shape[0], -1).repeat(1, m)


class DelayClosure(nn.Module):
    """``forward(x, history) -> (y, history_next)``: a closure of the last ``m + 1`` inputs.

    Parameters
    ----------
    net : nn.Module
        Maps (batch, (m + 1) * F) to (batch, O): the ``m`` past inputs, oldest first, then
        the current one.
    m : int
        Number of past inputs kept.

    Notes
    -----
    ``history`` has shape (batch, m * F), oldest first, in ``x``'s dtype; the host starts
    it with :func:`initial_history` (the first state repeated) and keeps ``history_next``.
    """

    def __init__(self, net: nn.Module, m: int, output_name: str = "tendency"):
        super().__init__()
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        self.net, self.m, self.output_name = net, int(m), output_name

    def forward(self, x: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.reshape(x.shape[0], -1)
        stacked = torch.cat([history, flat], dim=1)
        return self.net(stacked), stacked[:, flat.shape[1] :]

    @torch.jit.unused
    def pyclosure_contract(self) -> dict:
        return {
            "input_names": ["x", "history"],
            "output_names": [self.output_name, "history_next"],
            "meaning": {
                self.output_name: {"kind": "tendency", "per": "point", "delays": self.m},
                "history_next": {"kind": "state"},
            },
            "state": [
                {
                    "input": "history",
                    "output": "history_next",
                    "init": "repeat x",
                    "layout": f"the last {self.m} inputs, oldest first",
                }
            ],
        }
