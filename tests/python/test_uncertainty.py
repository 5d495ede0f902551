"""Seeded stochastic sampling is reproducible; ensemble spread grows off the training data."""

import pytest
import torch
from conftest import roundtrip, smooth_fields

from pyclosure.models import PeriodicFluxClosure
from pyclosure.train import fit
from pyclosure.uncertainty import (
    DeepEnsemble,
    SeededSampler,
    StochasticHead,
    gaussian_nll,
    hash_normal,
)


def quadratic_flux(u):
    """flux_i = 0.5 * u_face^2 with u_face the mean of cells i-1 and i."""
    return 0.5 * (0.5 * (u + torch.roll(u, 1, -1))) ** 2


@pytest.mark.parametrize("seed_dtype", [torch.int64, torch.float32, torch.float64])
def test_same_seed_gives_identical_samples_across_calls_and_after_save_load(tmp_path, seed_dtype):
    sampler = SeededSampler(StochasticHead(hidden=8))
    x = smooth_fields(4)
    seed = torch.tensor([[1], [2], [3], [2**40 + 5]], dtype=torch.int64).to(seed_dtype)
    first = sampler(x, seed)
    torch.manual_seed(123)  # global RNG state must not matter
    torch.rand(10)
    assert torch.equal(sampler(x, seed), first)
    assert torch.equal(roundtrip(sampler, tmp_path)(x, seed), first)


def test_different_seeds_give_different_samples():
    sampler = SeededSampler(StochasticHead(hidden=8))
    x = smooth_fields(1).expand(2, 32)
    out = sampler(x, torch.tensor([[5], [2**40 + 5]]))  # high bits count too
    assert not torch.equal(out[0], out[1])
    assert bool((out[0] != out[1]).all())


def test_hash_noise_is_standard_normal_and_uncorrelated_between_seeds():
    z = hash_normal(torch.arange(200), 500)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    corr = torch.corrcoef(z[:20])
    off_diagonal = corr - torch.eye(20, dtype=corr.dtype)
    assert float(off_diagonal.abs().max()) < 0.2  # 500 samples: |r| ~ 0.045 typical


def test_stochastic_head_std_is_positive_everywhere():
    head = StochasticHead(hidden=8)
    for scale in (1.0, 1e3, 1e6):
        _, std = head(scale * torch.randn(8, 32))
        assert bool((std > 0).all())


def test_gaussian_nll_training_learns_the_noise_level():
    torch.manual_seed(0)
    u = smooth_fields(600, seed=1)
    noise_std = 0.1
    target = quadratic_flux(u) + noise_std * torch.randn(u.shape)
    head = StochasticHead(hidden=16)
    fit(head, u, target, loss_fn=gaussian_nll, epochs=40, batch_size=64, lr=1e-2, progress=False)
    with torch.no_grad():
        _, std = head(smooth_fields(200, seed=2))
    assert abs(float(std.mean()) - noise_std) < 0.3 * noise_std


def test_ensemble_spread_is_larger_on_shifted_inputs(tmp_path):
    u = smooth_fields(800, seed=3)
    members = []
    for seed in range(4):
        torch.manual_seed(seed)
        member = PeriodicFluxClosure(hidden=16)
        fit(member, u, quadratic_flux(u), epochs=30, batch_size=64, lr=1e-2, seed=seed, progress=False)
        members.append(member)
    ensemble = DeepEnsemble(members)
    loaded = roundtrip(ensemble, tmp_path)
    with torch.no_grad():
        held_out = smooth_fields(200, seed=4)
        shifted = smooth_fields(200, amp=4.0, seed=4)
        _, spread_in = loaded(held_out)
        _, spread_out = loaded(shifted)
        assert torch.equal(loaded(held_out)[0], ensemble(held_out)[0])
    ratio = float(spread_out.mean() / spread_in.mean())
    assert ratio > 3.0, ratio
    contract = ensemble.pyclosure_contract()
    assert contract["output_names"] == ["flux", "flux_spread"]
