"""The host's side of a record: what the model got, what the host applied, and the update it made.

A chain of bit-for-bit links from the model to the host's state, each checked
from arrays the host recorded (see docs/replay.md):

1. ``given_<input>`` (the host state an input was built from) equals the
   recorded input: the model got what the host had.
2. ``applied_<output>`` (what the host applied) equals the recorded output:
   the host used what the model returned.
3. ``flux`` (the total face flux the update used) equals ``other_flux`` (its
   non-closure part, as the host summed it) plus ``applied_<output>``, one
   IEEE addition per face: the closure's flux is in the total.
4. ``state_after`` is the flux-form update of ``state_before`` with that
   ``flux`` (and ``dt``, ``dx``, optional ``source``), and the domain budget
   closes (:func:`pyclosure.budget.update_budget`): the update used the total.

Links 3 and 4 run for an output the contract declares a flux at faces, once
the host records its update (``state_before``, ``state_after``, ``flux``,
``dt``, ``dx``); an update recorded without ``other_flux`` and
``applied_<output>`` fails, since nothing would then tie the closure to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from ._verdict import compare
from .budget import closure_in_total, update_budget

__all__ = ["BUDGET_ARRAYS", "check_given", "check_update", "flux_outputs"]

BUDGET_ARRAYS = ("state_before", "state_after", "flux", "dt", "dx")


def flux_outputs(contract: dict | None) -> dict[str, dict]:
    """Output name -> meaning, for the outputs a contract declares as fluxes at faces."""
    if not contract:
        return {}
    return {
        io["name"]: io["meaning"]
        for io in contract["outputs"]
        if isinstance(io.get("meaning"), dict) and io["meaning"].get("kind") == "flux_at_faces"
    }


def _flat_compare(name: str, got: np.ndarray, want: np.ndarray, what: str) -> dict:
    """Compare in memory order: a Fortran host's (nfeat, ncol) array is the model's (ncol, nfeat)."""
    if got.size != want.size:
        return {
            "array": name,
            "equal": False,
            "message": f"{what} has {got.size} values, the record {want.size}",
        }
    return compare(name, np.ravel(got, order="K"), np.ravel(want, order="K"))


def check_given(
    call: int, inputs: Iterable[tuple[str, np.ndarray]], host: Mapping[str, np.ndarray]
) -> tuple[dict | None, str | None]:
    """Link 1 for every input with a ``given_<input>``: ``(per-input dict or None, failure message or None)``."""
    given, failure = {}, None
    for name, recorded in inputs:
        g = host.get(f"given_{name}")
        if g is None:
            continue
        c = _flat_compare(name, recorded, g, f"given_{name}")
        given[name] = c
        if not c["equal"] and failure is None:
            failure = f"call {call}: input '{name}' is not the host's given_{name}" + (
                f" (up to {c['max_ulps']} ulp(s) apart)" if "max_ulps" in c else ""
            )
    return given or None, failure


def check_update(
    call: int,
    outputs: Iterable[tuple[str, np.ndarray]],
    host: Mapping[str, np.ndarray],
    contract: dict | None,
    *,
    budgets: bool = True,
    cell_update: str = "exact",
) -> tuple[dict | None, str | None]:
    """Links 2 to 4: ``(checks dict or None, failure message or None)``.

    The checks dict holds ``applied_<name>`` (link 2), ``closure_in_total``
    (link 3) and ``budget`` (link 4, a :class:`~pyclosure.budget.BudgetCheck`
    as a dict) where they ran, and ``closes`` (links 2 to 4 all held) when the
    update was checked.
    """
    checks, failures = {}, []
    recorded_outputs = dict(outputs)
    for name, meaning in flux_outputs(contract).items():
        recorded, applied = recorded_outputs.get(name), host.get(f"applied_{name}")
        if recorded is not None and applied is not None:
            c = _flat_compare(f"applied_{name}", applied, recorded, f"applied_{name}")
            checks[f"applied_{name}"] = c
            if not c["equal"]:
                failures.append(f"call {call}: the host applied a flux that is not the model's '{name}'")
        if not budgets or not all(k in host for k in BUDGET_ARRAYS):
            continue
        boundary = meaning.get("boundary", "periodic")
        missing = [k for k in ("other_flux", f"applied_{name}") if k not in host]
        if missing:
            tie = {
                "array": "flux",
                "equal": False,
                "message": f"the host recorded its update but not {' and '.join(missing)}: nothing ties the "
                f"closure's '{name}' to the flux the update used",
            }
        else:
            try:
                tie = closure_in_total(
                    host["flux"],
                    host["other_flux"],
                    host[f"applied_{name}"],
                    host["state_before"].shape,
                    boundary=boundary,
                    name=name,
                )
            except ValueError as exc:
                tie = {"array": "flux", "equal": False, "message": str(exc)}
        checks["closure_in_total"] = tie
        if not tie["equal"]:
            failures.append(f"call {call}: {tie['message']}")
        try:
            budget = update_budget(
                host["state_before"],
                host["state_after"],
                host["flux"],
                host["dt"],
                host["dx"],
                host.get("source"),
                boundary=boundary,
                mode=cell_update,
            ).as_dict()
        except ValueError as exc:
            budget = {"closes": False, "message": str(exc)}
        checks["budget"] = budget
        if not budget["closes"]:
            failures.append(f"call {call}: budget: {budget['message']}")
        checks["closes"] = bool(
            budget["closes"] and tie["equal"] and checks.get(f"applied_{name}", {}).get("equal", False)
        )
        break  # one update per record: checked against the first flux output
    return checks or None, (failures[0] if failures else None)
