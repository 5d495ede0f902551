"""Helpers for a model team's own test suite.

    from pyclosure.testing import assert_replays

    def test_coupled_run_signed_off():
        assert_replays("runs/records", "closure.pt")

:func:`elf_dynamic` reads what a built host or library links (``NEEDED``) and where it looks
for it (its run path), e.g. to check that a host links ``libnnclosure`` and no torch library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from .replay import FAILING, format_report, replay

__all__ = ["assert_replays", "elf_dynamic"]


def assert_replays(
    directory: str | os.PathLike,
    model: str | os.PathLike,
    *,
    budgets: bool = True,
    threads: int | None = None,
    device: str = "cpu",
    use_torch: bool = True,
    cell_update: str = "exact",
    rtol: float | None = None,
    allow_within_tolerance: bool = False,
    allow_other_model: bool = False,
) -> dict:
    """Replay the records under ``directory`` through ``model`` and assert they hold.

    Strict by default: every record must be reproduced bit for bit by the model
    file the records were made with. Fails (AssertionError with the replay
    summary) on any mismatch, budget violation, corrupt record or record made
    with another model file, when no complete record exists, and on records
    only within tolerance (replayed at another thread count, device or
    libtorch build) unless ``allow_within_tolerance=True``. A model file other
    than the recorded one is replayed only with ``allow_other_model=True``.

    Returns the report dict.
    """
    report = replay(
        directory,
        model,
        threads=threads,
        device=device,
        use_torch=use_torch,
        budgets=budgets,
        cell_update=cell_update,
        rtol=rtol,
        allow_other_model=allow_other_model,
    )
    bad = [
        r
        for r in report["records"]
        if r["status"] in FAILING or (not allow_within_tolerance and r["status"] == "within_tolerance")
    ]
    if bad or not report["summary"]["ok"]:
        why = ""
        if bad and all(r["status"] == "within_tolerance" for r in bad):
            why = " (records within tolerance only, not bit for bit: pass allow_within_tolerance=True to accept)"
        raise AssertionError("replay of " + str(directory) + " failed" + why + ":\n" + format_report(report))
    return report


def elf_dynamic(path):
    """The ``NEEDED`` entries and the run path of an ELF file's dynamic section.

    Read with ``readelf -d`` (binutils).

    Returns
    -------
    needed : list of str
        The shared libraries the file names, in order (``["libnnclosure.so", "libc.so.6", ...]``).
    runpath : list of str
        Its ``RUNPATH`` (or older ``RPATH``) split at ``:``, ``$ORIGIN`` left as written; ``[""]``
        when it has none.

    Raises
    ------
    FileNotFoundError
        readelf is not installed.
    subprocess.CalledProcessError
        readelf cannot read ``path`` (missing, or not ELF).
    """
    if shutil.which("readelf") is None:
        raise FileNotFoundError("readelf (binutils) is needed to read an ELF file's dynamic section")
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    runpath = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]", out)
    return needed, ":".join(runpath).split(":")
