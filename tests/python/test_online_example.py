"""The online Burgers example (pyclosure demo --example online --quick): the Fortran LES
trains its closure with nn_train_step / nn_train_sync against a DNS companion run in the
same process, and its error against the filtered DNS falls over the run."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def online_example(tmp_path_factory):
    from pyclosure.demo.online import run

    out = tmp_path_factory.mktemp("online_example")
    code = run(out=out, quick=True)
    return out, code, json.loads((out / "report.json").read_text())


def test_quick_online_example_holds_its_claims(online_example):
    out, code, report = online_example
    assert code == 0, {k: c for k, c in report["claims"].items() if not c["held"]}
    assert (out / "report.png").stat().st_size > 10_000
    assert "Against the offline-trained closure" in (out / "report.md").read_text()


def test_error_against_the_filtered_dns_falls_over_the_run(online_example):
    out, _, report = online_example
    r = report["in_run"]
    assert r["error_late"] < r["error_start"], r
    assert r["ratio_to_none_late"] < r["ratio_to_none_start"], r  # not only an easier flow
    assert r["ratio_to_none_late"] < 0.9, r  # a closure clearly better than none
    assert r["loss_late"] < r["loss_start"], r
    table = np.loadtxt(out / "online" / "online.txt", ndmin=2)
    assert table.shape[0] == report["settings"]["windows"]
    assert np.array_equal(table[:, 2], np.arange(table.shape[0]))  # window k ran weight version k - 1


def test_every_sync_is_a_saved_version_and_the_checkpoint_loads_weights_only(online_example):
    out, _, report = online_example
    listed = json.loads((out / "online" / "versions" / "versions.json").read_text())["versions"]
    assert [v["version"] for v in listed] == list(range(1, report["settings"]["windows"] + 1))
    ckpt = torch.load(str(out / "online" / "ckpt.pt"), weights_only=True)
    assert ckpt["version"] == len(listed)
    last = torch.load(str(out / "online" / "versions" / listed[-1]["file"]), weights_only=True)
    assert all(torch.equal(last[k], ckpt["module"][k]) for k in last)
    untrained = torch.jit.load(str(out / "closure.pt")).state_dict()
    assert any(not torch.equal(untrained[k], last[k]) for k in last)  # the weights did move


def test_the_spec_trains_on_the_demos_own_coarse_graining():
    from pyclosure import data
    from pyclosure.demo.online.spec import prepare, relative_mse

    fine = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 256)))
    cells = torch.from_numpy(data.coarsen(fine.numpy(), 32))
    xs, ys = prepare([cells], [fine])
    assert xs[0] is cells
    assert np.array_equal(ys[0].numpy(), data.subgrid_flux(fine.numpy(), 32, filter="face_box")[1])
    assert float(relative_mse(torch.zeros_like(ys[0]), ys[0])) == pytest.approx(1.0)


def test_the_replay_buffer_trains_on_the_new_snapshot_and_copies_of_earlier_ones():
    from pyclosure import data
    from pyclosure.demo.online.spec import Replay

    replay = Replay(size=3, batch=3)
    rng = np.random.default_rng(1)
    seen = []
    for _ in range(5):
        fine = torch.from_numpy(rng.standard_normal((1, 64)))
        cells = torch.from_numpy(data.coarsen(fine.numpy(), 8))
        xs, ys = replay([cells], [fine])
        seen.append(cells.clone())
        cells.fill_(99.0)  # the host overwrites its arrays after the step
        assert xs[0].shape[0] == min(len(seen), 3) and ys[0].shape == xs[0].shape
        assert torch.equal(xs[0][0], seen[-1][0])  # the new snapshot first
        for row in xs[0][1:]:  # then earlier ones, kept as they were
            assert any(torch.equal(row, s[0]) for s in seen[-3:-1])
