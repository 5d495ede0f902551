"""pyclosure's exceptions are also the Python builtins that fit them, and still ClosureErrors."""

import numpy as np
import pytest

from pyclosure import errors
from pyclosure.bridge import Model

BUILTIN = {
    errors.FileAccessError: OSError,
    errors.ModelFormatError: ValueError,
    errors.BadDeviceError: ValueError,
    errors.DeviceUnavailableError: RuntimeError,
    errors.InvalidHandleError: RuntimeError,
    errors.ArgumentCountError: TypeError,
    errors.RankError: ValueError,
    errors.ShapeError: ValueError,
    errors.DtypeError: TypeError,
    errors.ArgumentError: ValueError,
    errors.ModelRuntimeError: RuntimeError,
    errors.NonFiniteError: ValueError,
    errors.RecordError: OSError,
    errors.OutOfMemoryError: MemoryError,
    errors.UntrustedModelError: PermissionError,
    errors.TrainingError: RuntimeError,
    errors.InternalError: RuntimeError,
}


def test_every_status_class_has_its_builtin():
    assert set(BUILTIN) == set(errors.BY_STATUS.values())


@pytest.mark.parametrize("cls", list(BUILTIN), ids=lambda c: c.__name__)
def test_status_error_is_its_builtin_and_a_closure_error(cls):
    exc = cls("the message", cls.status)
    assert isinstance(exc, BUILTIN[cls]) and isinstance(exc, errors.ClosureError)
    assert str(exc) == "the message" and exc.status == cls.status


def test_bridge_shape_error_is_caught_as_value_error(model_dir):
    model = Model(model_dir / "affine64.pt")
    with pytest.raises(ValueError, match=r"expected shape \(:, 3\), got \(4, 5\)") as info:
        model(np.ones((4, 5)))
    assert isinstance(info.value, errors.ShapeError) and info.value.status == errors.ShapeError.status


def test_bridge_dtype_error_is_caught_as_type_error(model_dir):
    model = Model(model_dir / "affine64.pt")
    with pytest.raises(TypeError, match="expected float64, got float32"):
        model(np.ones((4, 3), np.float32), out=[np.empty((4, 2))])


def test_missing_model_file_is_caught_as_os_error_and_as_closure_error(model_dir):
    with pytest.raises(OSError, match="cannot open model file"):
        Model(model_dir / "missing.pt")
    with pytest.raises(errors.ClosureError, match="cannot open model file"):
        Model(model_dir / "missing.pt")


def test_raise_for_status_raises_the_builtin_kind():
    with pytest.raises(MemoryError):
        errors.raise_for_status(errors.OutOfMemoryError.status, "out of memory")
    with pytest.raises(errors.ClosureError) as info:
        errors.raise_for_status(123, "unknown status")
    assert type(info.value) is errors.ClosureError and info.value.status == 123
