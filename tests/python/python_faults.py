"""The Python side of the fault catalog (tests/python/test_fault_catalog.py): the
misbehaving models of the fault folder, each fault done through pyclosure.bridge
on one model, and the next call on that same model against known values."""

import pathlib

import numpy as np
import torch

from pyclosure import errors
from pyclosure.bridge import Model, set_num_threads


# Misbehaving models with a hand-written contract: x (batch, 3) -> output0 (batch, 2).
# Each misbehaves only on some inputs and otherwise returns x[:, :2], so the very
# model that misbehaved can be called again and give known values.
class Raises(torch.nn.Module):
    def forward(self, x):
        if bool((x < 0).any()):
            raise RuntimeError("negative input refused")
        return x[:, :2]


class ReturnsWide(torch.nn.Module):  # misbehaves when no entry is negative, as below
    def forward(self, x):
        return x * 2.0 if bool((x >= 0).all()) else x[:, :2]


class ReturnsFloat32(torch.nn.Module):
    def forward(self, x):
        return x[:, :2].float() if bool((x >= 0).all()) else x[:, :2]


class ReturnsTwo(torch.nn.Module):
    def forward(self, x) -> list[torch.Tensor]:
        return [x[:, :2], x[:, :2]] if bool((x >= 0).all()) else [x[:, :2]]


class ReturnsInt(torch.nn.Module):
    def forward(self, x) -> int | torch.Tensor:
        if bool((x >= 0).all()):
            return 3
        return x[:, :2]


# Inputs of the next calls: dyadic, so W x + b is exact in any summation order, and
# with negative entries, so the misbehaving models take their well-behaved branch.
X_NEXT = np.arange(15.0).reshape(5, 3) / 4 - 1
W, B = np.arange(1.0, 7.0).reshape(2, 3) / 8, np.array([-0.5, -0.25])  # plain_affine64.pt
MISBEHAVING = {"returns_wide.pt", "returns_float32.pt", "returns_two.pt", "returns_int.pt"}


def _torch(path, *arrays):
    with torch.no_grad():
        out = torch.jit.load(str(path))(*[torch.from_numpy(a.copy()) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def _gives_known_values(model):
    """A valid call on ``model`` (the one that got the fault) gives the numbers it must."""
    name = pathlib.Path(model.path).name
    if name == "cells64.pt2":  # 4 cells -> 5 faces: 0, the means of neighbouring cells, 0
        q = X_NEXT[:, :2].repeat(2, axis=1)
        faces = np.zeros((5, 5))
        faces[:, 1:4] = 0.5 * (q[:, 1:] + q[:, :-1])
        return np.array_equal(model(q), faces)
    if name in ("plain_affine64.pt", "plain_affine64.pt2", "plain_affine64.nnp"):
        fb = {"fallback": [np.full((5, 2), 99.0)]} if "nonfinite=fallback" in model.policy else {}
        return np.array_equal(model(X_NEXT, **fb), X_NEXT @ W.T + B)
    if name == "raises.pt":
        x = X_NEXT + 1  # no negative entry: returns x[:, :2]
        return np.array_equal(model(x), x[:, :2])
    if name in MISBEHAVING:
        return np.array_equal(model(X_NEXT), X_NEXT[:, :2])
    if name == "two_in_two_out.pt":
        u, t = X_NEXT, X_NEXT[:, :2] / 2
        flux, s = model(u, t)
        ref_flux, _ = _torch(model.path, u, t)
        return np.array_equal(s, (u * u).sum(1, keepdims=True) - t[:, :1]) and np.array_equal(flux, ref_flux)
    if name == "no_contract.pt":
        y = np.full((5, 2), np.nan)
        model(X_NEXT, out=[y])
        return np.array_equal(y, _torch(model.path, X_NEXT)[0])
    raise AssertionError(f"no known values for {name}")


def python_fault(case, d):
    """Run one fault through pyclosure.bridge.

    Returns (status, message, model): model is the Model that got the fault when
    the fault leaves it loaded (its next call must work), else None.
    """
    models = {}

    def model(name, **kw):  # one Model per file and policy: the one the fault is done on
        key = (name, tuple(sorted(kw.items())))
        if key not in models:
            models[key] = Model(d / name, **kw)
        return models[key]

    good = model("plain_affine64.pt")
    x, y = np.full((5, 3), 0.5), np.empty((5, 2))
    ro = np.empty((5, 2))
    ro.flags.writeable = False

    def closed():
        m = Model(d / "plain_affine64.pt")
        m.close()
        return m

    def double_close():
        m = Model(d / "plain_affine64.pt")
        m.close()
        m.close()

    def zero_batch():
        out = good(np.empty((0, 3)))
        assert out.shape == (0, 2)

    def overlapping():
        row = np.zeros(2)
        good(x, out=[np.lib.stride_tricks.as_strided(row, shape=(5, 2), strides=(0, 8))])

    def good2():  # plain_affine64.pt2, the same model as an AOTInductor package: loaded by pt2 cases only
        return model("plain_affine64.pt2")

    def pt2_known_values(x_in):
        got = good2()(x_in)
        if not np.array_equal(got, np.ascontiguousarray(x_in) @ W.T + B):
            raise AssertionError("NNC_OK with wrong numbers")

    def native():  # plain_affine64.nnp, the same model as a native program: loaded by native cases only
        return model("plain_affine64.nnp")

    def native_known_values(x_in):
        if not np.array_equal(native()(x_in), np.ascontiguousarray(x_in) @ W.T + B):
            raise AssertionError("NNC_OK with wrong numbers")

    def pt2_zero_batch():
        out = np.full((0, 2), 99.0)
        good2()(np.empty((0, 3)), out=[out])
        assert out.shape == (0, 2)

    def record_twice():
        m = model("plain_affine64.pt", nonfinite="error")  # a model of its own, left recording
        m.record_start(d / "record_twice" / "a")
        m.record_start(d / "record_twice" / "b")

    fallback = {"nonfinite": "fallback"}
    actions = {
        "missing_file": lambda: Model(d / "missing.pt"),
        "directory": lambda: Model(d / "directory.pt"),
        "empty_file": lambda: Model(d / "empty.pt"),
        "truncated": lambda: Model(d / "truncated.pt"),
        "not_torchscript": lambda: Model(d / "not_torchscript.pt"),
        "untrusted_file": lambda: Model(d / "affine64.pt", trusted_sha256="0" * 64),
        "bad_trusted_digest": lambda: Model(d / "affine64.pt", trusted_sha256="abc"),
        "state_dict": lambda: Model(d / "state_dict.pt"),
        "corrupt_contract_json": lambda: Model(d / "corrupt_contract.pt"),
        "unknown_contract_schema": lambda: Model(d / "unknown_schema.pt"),
        "malformed_device": lambda: Model(d / "plain_affine64.pt", device="cuda0"),
        "cuda_without_cuda": lambda: Model(d / "plain_affine64.pt", device="cuda:0"),
        "unloaded_handle": lambda: closed()(x),
        "double_free": double_close,
        "wrong_number_of_inputs": lambda: good(x, x, out=[y]),
        "wrong_number_of_outputs": lambda: good(x, out=[y, y.copy()]),
        "wrong_rank": lambda: good(x[:, :, None]),
        "rank_9_numpy_array": lambda: good(np.zeros((5, 3) + (1,) * 7)),
        "wrong_shape": lambda: good(np.zeros((5, 5))),
        "output_batch_mismatch": lambda: good(x, out=[np.empty((4, 2))]),
        "batch_mismatch": lambda: model("two_in_two_out.pt")(np.zeros((4, 3)), np.zeros((5, 2))),
        "wrong_dtype": lambda: good(x.astype(np.float32), out=[y.astype(np.float32)]),
        "unsupported_numpy_dtype": lambda: good(x.astype(np.float16), out=[y]),
        "zero_size_batch": zero_batch,
        "overlapping_output": overlapping,
        "read_only_output": lambda: good(x, out=[ro]),
        "output_not_an_array": lambda: good(x, out=[[0.0, 0.0]]),
        "plain_model_without_out": lambda: model("no_contract.pt")(x),
        "model_raises": lambda: model("raises.pt")(-x),
        "model_returns_wrong_shape": lambda: model("returns_wide.pt")(x),
        "model_returns_wrong_dtype": lambda: model("returns_float32.pt")(x),
        "model_returns_wrong_count": lambda: model("returns_two.pt")(x),
        "model_returns_non_tensor": lambda: model("returns_int.pt")(x),
        "zero_threads": lambda: set_num_threads(0),
        "nan_input": lambda: good(np.where(np.arange(15).reshape(5, 3) == 7, np.nan, x)),
        "inf_output": lambda: model("plain_affine64.pt", nonfinite="error")(np.full((5, 3), 1e308)),
        "fallback_policy_without_fallback": lambda: model("plain_affine64.pt", **fallback)(x),
        "fallback_of_wrong_shape": lambda: model("plain_affine64.pt", **fallback)(
            x, fallback=[np.zeros((5, 3))]
        ),
        "ood_policy_without_score": lambda: Model(d / "plain_affine64.pt", ood="flag"),
        "unknown_policy_option": lambda: Model(d / "plain_affine64.pt", nonfinite="ignore"),
        "record_into_a_file": lambda: good.record_start(d / "empty.pt" / "records"),
        "record_bad_array_name": lambda: good.record_array("a/b", x),
        "record_twice": record_twice,
        "pt2_wrong_dtype": lambda: good2()(x.astype(np.float32), out=[y.astype(np.float32)]),
        "pt2_wrong_rank": lambda: good2()(x[:, :, None]),
        "pt2_wrong_shape": lambda: good2()(np.zeros((5, 5))),
        "pt2_grid_outside_range": lambda: model("cells64.pt2")(np.full((5, 1), 0.5)),
        "pt2_fortran_order": lambda: pt2_known_values(np.asfortranarray(X_NEXT)),
        "pt2_strided_input": lambda: pt2_known_values(np.repeat(X_NEXT, 2, axis=0)[::2]),
        "pt2_zero_size_batch": pt2_zero_batch,
        "pt2_untrusted": lambda: Model(d / "plain_affine64.pt2", trusted_sha256="0" * 64),
        "pt2_export_archive": lambda: Model(d / "export_archive.pt2"),
        "pt2_torchscript_named": lambda: Model(d / "torchscript_named.pt2"),
        "pt2_truncated": lambda: Model(d / "truncated.pt2"),
        "pt2_without_contract": lambda: Model(d / "no_contract.pt2"),
        "pt2_missing_cpu_feature": lambda: Model(d / "needs_missing_feature.pt2"),
        "pt2_unknown_cpu_feature": lambda: Model(d / "needs_made_up_feature.pt2"),
        "pt2_built_for_cuda": lambda: Model(d / "built_for_cuda.pt2"),
        "native_truncated": lambda: Model(d / "truncated.nnp"),
        "native_bad_sizes": lambda: Model(d / "bad_sizes.nnp"),
        "native_absurd_dims": lambda: Model(d / "absurd_dims.nnp"),
        "native_wrong_arith": lambda: Model(d / "wrong_arith.nnp"),
        "native_not_native": lambda: Model(d / "torchscript_named.nnp"),
        "native_wrong_dtype": lambda: native()(x.astype(np.float32), out=[y.astype(np.float32)]),
        "native_wrong_shape": lambda: native()(np.zeros((5, 5))),
        "native_strided_input": lambda: native_known_values(np.repeat(X_NEXT, 2, axis=0)[::2]),
        "native_cuda": lambda: Model(d / "plain_affine64.nnp", device="cuda"),
        "native_engine_required": lambda: Model(d / "plain_affine64.nnp", engine="torchscript"),
    }
    try:
        actions[case]()
        status, message = 0, ""
    except errors.ClosureError as e:
        status, message = e.status, str(e)
    faulted = [m for key, m in models.items() if key != ("plain_affine64.pt", ())] or [good]
    assert len(faulted) == 1, "a case works on one model"
    loaded = faulted[0] if case not in LEAVES_NO_MODEL else None
    return status, message, loaded


# Faults that leave no model loaded: failed loads and policies, closed models,
# the thread count. Their next call runs on a model loaded before the fault.
LEAVES_NO_MODEL = {
    "missing_file",
    "directory",
    "empty_file",
    "truncated",
    "not_torchscript",
    "state_dict",
    "untrusted_file",
    "bad_trusted_digest",
    "corrupt_contract_json",
    "unknown_contract_schema",
    "malformed_device",
    "cuda_without_cuda",
    "unloaded_handle",
    "double_free",
    "zero_threads",
    "ood_policy_without_score",
    "unknown_policy_option",
    "pt2_untrusted",
    "pt2_export_archive",
    "pt2_torchscript_named",
    "pt2_truncated",
    "pt2_without_contract",
    "pt2_missing_cpu_feature",
    "pt2_unknown_cpu_feature",
    "pt2_built_for_cuda",
    "native_truncated",
    "native_bad_sizes",
    "native_absurd_dims",
    "native_wrong_arith",
    "native_not_native",
    "native_cuda",
    "native_engine_required",
}


def python_next_call_works(d, model, pt2=False, native=False):
    """The model that got the fault (or, when none is left loaded, one loaded
    before it) gives known values, and a fresh load does too (of a package as
    well, for a pt2 case; of a native program, for a native case)."""
    with Model(d / "plain_affine64.pt") as fresh:
        ok = _gives_known_values(model) and _gives_known_values(fresh)
    for wanted, name in ((pt2, "plain_affine64.pt2"), (native, "plain_affine64.nnp")):
        if ok and wanted:
            with Model(d / name) as fresh:
                ok = _gives_known_values(fresh)
    return ok


# Online training (nnc_train_*): train64.pt is a float64 Linear(3, 2), train_other.pt
# a network of another architecture with the same inputs and outputs.
T_X = X_NEXT
T_Y = np.stack([0.5 * np.arange(5.0), -0.25 * np.arange(5.0)], 1)


def python_train_fault(case, d):
    """Run one training fault through pyclosure.bridge.Trainer.

    Returns (status, message, recovered): recovered is True when, right after the
    fault, a trainer (the one that got the fault, or a fresh one after a failed
    create) steps with a finite loss and syncs into its model.
    """
    from pyclosure.bridge import Trainer

    model = Model(d / "train64.pt")
    trainer = Trainer(model, lr=0.01)

    def closed():
        t = Trainer(model)
        t.close()
        return t

    actions = {
        "train_missing_spec": lambda: Trainer(model, spec=f"{d / 'no_such_spec.py'}:spec"),
        "train_spec_raises": lambda: Trainer(model, spec=f"{d / 'raising_spec.py'}:spec"),
        "train_wrong_shape": lambda: trainer.step(T_X, np.zeros((5, 3))),
        "train_wrong_dtype": lambda: trainer.step(T_X.astype(np.float32), T_Y.astype(np.float32)),
        "train_nan_loss": lambda: trainer.step(T_X, np.where(np.arange(10).reshape(5, 2) == 5, np.nan, T_Y)),
        "train_sync_other_architecture": lambda: trainer.sync(Model(d / "train_other.pt")),
        "train_never_created": lambda: closed().step(T_X, T_Y),
    }
    try:
        actions[case]()
        status, message = 0, ""
    except errors.ClosureError as e:
        status, message = e.status, str(e)
    loss = trainer.step(T_X, T_Y)
    recovered = bool(np.isfinite(loss)) and trainer.sync(model) == 1
    trainer.close()
    return status, message, recovered
