"""Verdict on a replayed record's outputs: bit for bit, or within tolerance where bits are not promised.

Bit-for-bit reproduction is promised only on the device, intra-op thread
count and libtorch build a record was made with. Elsewhere the summation
order of reductions may change (how a matrix product is blocked, how a sum is
split across threads), and the last bits with it. There a replay passes only
if

* the bridge and torch in Python agree with each other bit for bit at the
  replay setting (both run the same graph on the same libtorch, so any
  difference between them is a real one), and
* every output is within a relative tolerance of the recorded one, measured
  norm-wise: ``max|replayed - recorded| <= rtol * max|recorded|`` per output
  array (elementwise relative errors mean nothing where an output crosses
  zero, and the rounding error of a reduction scales with the magnitude of
  its terms, not of its result).

Default ``rtol`` (:data:`DEFAULT_RTOL`): 1e-12 for float64, 1e-5 for float32.
Why: a sum of ``K`` terms evaluated in two orders differs by at most about
``2 K u`` times the sum of the terms' magnitudes (unit roundoff ``u`` =
1.1e-16 in float64, 6.0e-8 in float32), and typically by ``sqrt(K) u`` of it.
A closure of ``L`` layers of width ``K`` accumulates that layer by layer: for
float64 with ``K`` up to 4096 and ``L`` up to 10, ``L sqrt(K) u`` is 7e-14,
so 1e-12 holds with a margin above 10 (and the worst case ``2 K u`` = 9e-13
of one layer is still inside); for float32 with ``K`` up to 256 and ``L`` up
to 8 it is 8e-6, hence 1e-5. Wider or deeper models, or a replay on another
device (GPU kernels reorder far more), may need a larger ``rtol``. A model
with other weights (anything beyond rounding) differs by many orders of
magnitude more; but a model that differs from the recorded one by a few ulps
in one weight can hide inside the tolerance, which is why replay refuses a
model file whose SHA-256 is not the recorded one unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .budget import same_bits, ulps_between

__all__ = ["DEFAULT_RTOL", "compare", "default_rtol", "outputs_verdict", "tag_tolerance", "within"]

DEFAULT_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def default_rtol(dtype: DTypeLike) -> float:
    """Tolerance for outputs of ``dtype`` (100 eps for float types not in :data:`DEFAULT_RTOL`)."""
    dtype = np.dtype(dtype)
    if dtype in DEFAULT_RTOL:
        return DEFAULT_RTOL[dtype]
    return 100 * float(np.finfo(dtype).eps) if dtype.kind == "f" else 0.0


def compare(name: str, got: ArrayLike, want: ArrayLike) -> dict:
    """Bit-for-bit comparison of one array; a dict for the report.

    When not equal: ``elements_differing``, ``first_index``, and for floats
    ``max_ulps`` (finite pairs), ``max_abs_diff`` and ``rel_diff``
    (``max|got - want| / max|want|``, infinite when the non-finite values do not
    sit at the same places with the same values).
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return {
            "array": name,
            "equal": False,
            "rel_diff": float("inf"),
            "message": f"shape/dtype {got.shape} {got.dtype} against recorded {want.shape} {want.dtype}",
        }
    same = got.tobytes() == want.tobytes()
    out = {"array": name, "equal": same}
    if same:
        return out
    differ = ~same_bits(got, want).reshape(-1)
    out["elements_differing"] = int(differ.sum())
    out["first_index"] = int(np.argmax(differ))
    out["rel_diff"] = float("inf")
    if got.dtype.kind == "f":
        g, w = got.reshape(-1), want.reshape(-1)
        finite = np.isfinite(g) & np.isfinite(w)
        if finite.any():
            out["max_ulps"] = int(ulps_between(g[finite], w[finite]).max())
            diff = np.abs(g[finite].astype(np.float64) - w[finite].astype(np.float64))
            out["max_abs_diff"] = float(diff.max())
            scale = float(np.abs(w[finite].astype(np.float64)).max())
            same_nonfinite = np.array_equal(g[~finite], w[~finite], equal_nan=True)
            if same_nonfinite:
                out["rel_diff"] = out["max_abs_diff"] / scale if scale > 0 else float("inf")
    return out


def within(arrays: Iterable[dict]) -> bool:
    """True when every compared array is equal or within its ``rtol`` (set by :func:`tag_tolerance`)."""
    return all(a["equal"] or a.get("rel_diff", float("inf")) <= a.get("rtol", 0.0) for a in arrays)


def tag_tolerance(
    arrays: list[dict], outputs: Iterable[tuple[str, np.ndarray]], rtol: float | None
) -> list[dict]:
    """Set each compared array's ``rtol`` (given, or the default of its recorded dtype)."""
    dtypes = dict(outputs)
    for a in arrays:
        rec = dtypes.get(a["array"])
        a["rtol"] = float(rtol) if rtol is not None else (default_rtol(rec.dtype) if rec is not None else 0.0)
    return arrays


def outputs_verdict(
    call: int, paths: Mapping[str, dict], engines_agree: dict | None
) -> tuple[str, str | None]:
    """``(status, message)`` from the per-path comparisons of one record.

    ``paths`` maps "bridge"/"torch" to ``{"equal", "comparable", "reasons", "arrays"[, "message"]}``;
    ``engines_agree`` is the bit-for-bit comparison of bridge and torch outputs (None if only one ran).
    Status: ``equal``, ``within_tolerance`` or ``mismatch``.
    """
    if all(p["equal"] for p in paths.values()):
        return "equal", None
    for k, p in paths.items():
        if not p["equal"] and (p["comparable"] or not p["arrays"]):
            return "mismatch", _describe(call, k, p, "")
    if engines_agree is not None and not engines_agree["equal"]:
        return "mismatch", (
            f"call {call}: the bridge and torch disagree at the replay setting "
            f"(output '{engines_agree['array']}'"
            + (f", up to {engines_agree['max_ulps']} ulp(s)" if "max_ulps" in engines_agree else "")
            + "): they run one graph on one libtorch, so this is a real difference"
        )
    reasons = "; ".join(sorted({r for p in paths.values() for r in p["reasons"]}))
    for k, p in paths.items():
        if not p["equal"] and not within(p["arrays"]):
            return "mismatch", _describe(
                call, k, p, f" at a setting not bit-comparable ({reasons}), beyond the tolerance"
            )
    worst = max(a.get("rel_diff", 0.0) for p in paths.values() for a in p["arrays"] if not a["equal"])
    return "within_tolerance", (
        f"{reasons}: not bit for bit, within tolerance (largest relative "
        f"difference {worst:.2e}; bridge and torch agree bit for bit)"
    )


def _describe(call: int, k: str, p: dict, where: str) -> str:
    """The failure message of path ``k``'s first differing output."""
    bad = [a for a in p["arrays"] if not a["equal"]]
    a = bad[0] if bad else {"array": "*"}
    return (
        f"call {call}: output '{a['array']}' differs through {k}{where}"
        + (f" by up to {a['max_ulps']} ulp(s)" if "max_ulps" in a else "")
        + (
            f", relative {a['rel_diff']:.2e} > rtol {a['rtol']:.0e}"
            if where and "rtol" in a and a.get("rel_diff", 0) != float("inf")
            else ""
        )
        + (f" ({p['message']})" if "message" in p else "")
    )
