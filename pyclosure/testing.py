"""Helpers for a model team's own test suite.

    from pyclosure.testing import assert_replays

    def test_coupled_run_signed_off():
        assert_replays("runs/records", "closure.pt")
"""

from .replay import FAILING, format_report, replay


def assert_replays(directory, model, *, budgets=True, threads=None, device="cpu", use_torch=True,
                   cell_update="exact", allow_not_comparable=True):
    """Replay the records under ``directory`` through ``model`` and assert they hold.

    Fails (AssertionError with the replay summary) on any mismatch, budget
    violation or corrupt record, when no complete record exists, and, with
    ``allow_not_comparable=False``, on records that are not comparable.
    Returns the report dict.
    """
    report = replay(directory, model, threads=threads, device=device, use_torch=use_torch, budgets=budgets,
                    cell_update=cell_update)
    bad = [r for r in report["records"] if r["status"] in FAILING
           or (not allow_not_comparable and r["status"] == "not_comparable")]
    if bad or not report["summary"]["ok"]:
        raise AssertionError("replay of " + str(directory) + " failed:\n" + format_report(report))
    return report
