"""The Mahalanobis guard flags shifted inputs and passes training-like ones."""

import functools
import warnings

import conftest
import pytest
import torch

from pyclosure.models import PeriodicFluxClosure
from pyclosure.ood import GuardedClosure, MahalanobisGuard

smooth_fields = functools.partial(conftest.smooth_fields, noise=0.05)  # fields with 5% noise


TRAIN = smooth_fields(4000, seed=1)
HELD_OUT = smooth_fields(2000, seed=2)


@pytest.mark.parametrize("window", [0, 4])
def test_guard_passes_held_out_training_like_inputs(window):
    guard = MahalanobisGuard(window=window).fit(TRAIN)
    rate = float((guard(HELD_OUT) > guard.threshold).float().mean())
    assert rate <= 0.01, rate  # threshold is the 0.999 quantile of training scores


# Measured flag rates (window 0 / 4): mean shift +3: 1.00 / 0.63, +6: 1.00 / 1.00;
# amplitude x5: 0.93 / 0.92, x10: 0.993 / 0.992 (random amplitudes overlap at small scale).
@pytest.mark.parametrize("window", [0, 4])
@pytest.mark.parametrize("shift", [{"shift": 6.0}, {"amp": 10.0}])
def test_guard_flags_shifted_inputs(window, shift):
    guard = MahalanobisGuard(window=window).fit(TRAIN)
    shifted = smooth_fields(2000, seed=3, **shift)
    rate = float((guard(shifted) > guard.threshold).float().mean())
    assert rate >= 0.95, rate


def test_window_guard_runs_on_other_grid_sizes():
    guard = MahalanobisGuard(window=4).fit(TRAIN)
    assert guard(smooth_fields(3, cells=80)).shape == (3,)


def test_guarded_closure_scripts_and_reports_threshold_in_contract(tmp_path):
    guard = MahalanobisGuard(window=0).fit(TRAIN)
    module = GuardedClosure(PeriodicFluxClosure(hidden=8), guard)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        path = tmp_path / "g.pt"
        torch.jit.save(torch.jit.script(module), str(path))
        loaded = torch.jit.load(str(path))
    flux, score = loaded(HELD_OUT[:5])
    eager_flux, eager_score = module(HELD_OUT[:5])
    assert torch.equal(flux, eager_flux) and torch.equal(score, eager_score)
    contract = module.pyclosure_contract()
    assert contract["output_names"] == ["flux", "ood_score"]
    assert contract["ood"] == {"output": "ood_score", "threshold": guard.threshold}
    assert contract["variable_dims"] == {}  # a flattened guard fixes the cell count
