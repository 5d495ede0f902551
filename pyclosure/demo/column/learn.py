"""The flux-form emulator of the column example: training, guard, exports.

The emulator is a plain MLP, ``nn.Sequential(Normalizer, Linear, Tanh, Linear, Tanh,
Linear)`` in float64, mapping a column's state x = [t (nlev), q (nlev), ts] to the net
downward flux at its nlev + 1 interfaces. It is trained on normalised fluxes with a loss
that also weighs the flux differences (the heating rates the host takes from them);
the output scaling is then folded into the last layer, so one module in physical units
runs on every engine, the native one included. The guard is a
:class:`~pyclosure.ood.MahalanobisGuard` (``window=0``) on the whole input.
"""

import time

import numpy as np
import torch
from torch import nn

from ...export import export
from ...models import mlp
from ...normalize import Normalizer
from ...ood import GuardedClosure, MahalanobisGuard
from ...train import fit

UNITS = {"x": "K (t), kg kg-1 (q), K (ts)", "flux": "W m-2", "ood_score": "1"}
MEANING = {"flux": {"kind": "flux_at_faces", "boundary": "column", "positive": "down"}}


def make_emulator(x, flux, hidden, seed=0):
    """An untrained emulator with its input normaliser, and the output normaliser (not in it yet)."""
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float64)
    ft = torch.as_tensor(flux, dtype=torch.float64)
    net = mlp(x.shape[1], flux.shape[1], hidden=hidden, depth=2, act="tanh").double()
    return nn.Sequential(Normalizer.fit(xt, per="feature"), *net), Normalizer.fit(ft, per="feature")


def flux_and_heating_loss(out_norm):
    """MSE of the normalised fluxes plus MSE of their differences, each level's scaled by its spread."""
    std = out_norm.std.detach()

    def loss(pred, target):
        diff = (pred[:, 1:] - pred[:, :-1] - target[:, 1:] + target[:, :-1]) * std[1:]
        scale = (target[:, 1:] - target[:, :-1]).mul(std[1:]).std(0).clamp(min=1e-3)
        return torch.mean((pred - target) ** 2) + torch.mean((diff / scale) ** 2)

    return loss


def fold_output(model, out_norm):
    """Fold ``y = z * std + mean`` into the last Linear layer (in place); return the model."""
    last = model[-1]
    with torch.no_grad():
        std, mean = out_norm.std.reshape(-1, 1), out_norm.mean.reshape(-1)
        last.weight.mul_(std)
        last.bias.mul_(std.reshape(-1)).add_(mean)
    return model


def train(x, flux, s, seed=0):
    """Train the emulator on (x, flux); return (model in physical units, history)."""
    model, out_norm = make_emulator(x, flux, s.hidden, seed)
    xt = torch.as_tensor(x, dtype=torch.float64)
    zt = out_norm(torch.as_tensor(flux, dtype=torch.float64))
    # The samples are blocks of runs, one block per humidity and jitter (data.generate): a
    # blocked split would validate on a humidity it never trained on, so split at random.
    hist = fit(
        model,
        xt,
        zt,
        loss_fn=flux_and_heating_loss(out_norm),
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=2e-3,
        patience=30,
        seed=seed,
        progress=False,
        split="random",
    )
    return fold_output(model, out_norm).eval(), hist


def guard(model, x, quantile):
    """The emulator with a Mahalanobis guard fitted on the training inputs x."""
    g = MahalanobisGuard(window=0).double().fit(torch.as_tensor(x, dtype=torch.float64), quantile=quantile)
    return GuardedClosure(model, g).eval()


def export_all(model, guarded, x, out, engines):
    """Export the emulator as column.<engine> for each engine and the guarded one as
    column_guarded.pt; return {name: seconds}."""
    example = (torch.as_tensor(x[:4], dtype=torch.float64),)
    kw = {"input_names": ["x"], "units": UNITS, "meaning": MEANING, "training_data": (x,)}
    seconds = {}
    for ext in engines:
        t0 = time.perf_counter()
        export(model, out / f"column.{ext}", example, output_names=["flux"], **kw)
        seconds[ext] = time.perf_counter() - t0
    t0 = time.perf_counter()
    export(guarded, out / "column_guarded.pt", example, output_names=["flux", "ood_score"], **kw)
    seconds["guarded_pt"] = time.perf_counter() - t0
    return seconds


def predict(model, x):
    """The model's fluxes of x in eager torch (numpy in, numpy out)."""
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float64)).numpy()


def heating(flux, dx):
    """Heating rates (K day-1) of net downward fluxes (samples, nlev + 1)."""
    return -(flux[:, 1:] - flux[:, :-1]) / np.asarray(dx) * 86400.0
