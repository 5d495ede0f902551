"""nn_closure.h is the contract: its constants, structs and functions agree with every copy.

The header's enums (statuses, dtypes, orders, limits, flags) are copied into the
Fortran modules and pyclosure/_header.py by fortran/generate.py; the Fortran
bind(c) types and interfaces are written by hand. Each test here fails when the
header changes without the copy it checks: the generated files (--check), the
compiled cffi module and Fortran modules (constants, struct sizes and field
offsets), and the set of functions Fortran binds.
"""

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from pyclosure import _header, errors
from pyclosure.bridge import ffi, lib

ROOT = pathlib.Path(__file__).parents[2]
HEADER = ROOT / "cbridge" / "include" / "nn_closure.h"
GENERATE = ROOT / "fortran" / "generate.py"
C_MODULE = ROOT / "fortran" / "nn_closure_c.f90"
MODULE = ROOT / "fortran" / "nn_closure.f90"

#: Header struct -> the Fortran bind(c) type that mirrors it.
FORTRAN_TYPES = {"nnc_array": "nnc_array", "nnc_io_info": "nnc_io_info", "nnc_stats": "nn_stats"}
#: Header functions Fortran does not bind, and what it uses instead.
NOT_BOUND = {
    "nnc_last_error": "returns a pointer; Fortran copies the message with nnc_last_error_copy",
    "nnc_model_load": "nn_load calls nnc_model_load_with, which is nnc_model_load when no option is given",
    "nnc_model_forward": "nn_forward calls nnc_model_forward_fallback (nnc_model_forward without a fallback)",
    "nnc_model_forward_on_device": "nn_forward(on_device=.true.) calls nnc_model_forward_on_device_fallback "
    "(with no fallback when none is given)",
}


def _generate():
    spec = importlib.util.spec_from_file_location("generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENUMS = _generate().header_enums(HEADER.read_text())


def _values(enum):
    return {name: value for name, value, _ in ENUMS[enum]}


def test_the_parser_reads_every_enum_of_the_header_as_the_compiler_does():
    declared = re.findall(r"^enum (nnc_\w+) \{", HEADER.read_text(), re.M)
    assert list(ENUMS) == declared
    assert {"nnc_status", "nnc_dtype", "nnc_order", "nnc_limits", "nnc_flag"} <= set(ENUMS)
    for enum in ENUMS:  # pyclosure._nnc is compiled from the header by the C compiler
        assert ffi.typeof(f"enum {enum}").relements == _values(enum), enum


def test_python_constants_are_the_headers():
    for enum in ENUMS:
        assert getattr(_header, enum[4:].upper()) == _values(enum), enum
        for name, value in _values(enum).items():
            assert getattr(_header, name) == value == getattr(lib, name), name


def test_every_status_has_its_python_error_class():
    statuses = _values("nnc_status")
    assert errors.STATUS_NAMES == statuses
    assert set(errors.BY_STATUS) == set(statuses.values()) - {0}
    for value, cls in errors.BY_STATUS.items():
        assert cls.status == value and issubclass(cls, errors.ClosureError)
        name = next(n for n, v in statuses.items() if v == value)
        assert f"({name})" in cls.__doc__, f"{cls.__name__} does not name {name}"


def test_generated_copies_are_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout


def _tree_copy(tmp_path):
    for rel in (
        "cbridge/include/nn_closure.h",
        "fortran/nn_closure.f90",
        "fortran/nn_closure_c.f90",
        "pyclosure/_header.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def _generate_in(root, *args):
    return subprocess.run(
        [sys.executable, str(GENERATE), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_fails_when_a_header_constant_changes_until_regenerated(tmp_path):
    root = _tree_copy(tmp_path)
    header = root / "cbridge/include/nn_closure.h"
    text = header.read_text()
    header.write_text(text.replace("NNC_FLAG_OOD = 4", "NNC_FLAG_OOD = 4,\n    NNC_FLAG_CLIPPED = 8"))
    proc = _generate_in(root, "--check")
    assert proc.returncode == 1
    for rel in ("nn_closure.f90", "nn_closure_c.f90", "_header.py"):
        assert f"{rel} is out of date" in proc.stdout, proc.stdout
    assert _generate_in(root).returncode == 0
    assert _generate_in(root, "--check").returncode == 0
    assert (
        "integer(c_int), parameter, public :: NNC_FLAG_CLIPPED = 8"
        in (root / "fortran/nn_closure_c.f90").read_text()
    )
    assert (
        "integer, parameter, public :: NN_FLAG_CLIPPED = 8" in (root / "fortran/nn_closure.f90").read_text()
    )
    assert '"NNC_FLAG_CLIPPED": NNC_FLAG_CLIPPED,' in (root / "pyclosure/_header.py").read_text()


def _struct_fields():
    """Header struct -> [(field, offset, size)], as the compiled cffi module lays them out."""
    return {
        name: [(f, t.offset, ffi.sizeof(t.type)) for f, t in ffi.typeof(name).fields]
        for name in FORTRAN_TYPES
    }


def _agreement_program():
    """A Fortran program printing every constant and each bind(c) type's size, field offsets and sizes."""
    public = ("nnc_status", "nnc_dtype", "nnc_flag")
    lines = [
        "program agreement",
        "  use, intrinsic :: iso_c_binding",
        "  use nn_closure_c",
        "  use nn_closure",
        "  implicit none",
    ]
    lines += [f"  type({ftype}), target :: v_{cname}" for cname, ftype in FORTRAN_TYPES.items()]
    lines += ["  integer(c_intptr_t) :: base"]
    for enum in ENUMS:
        lines += [f'  print "(a, 1x, i0)", "{n}", {n}' for n in _values(enum)]
    for enum in public:
        lines += [f'  print "(a, 1x, i0)", "NN_{n[4:]}", NN_{n[4:]}' for n in _values(enum)]
    for cname, fields in _struct_fields().items():
        lines += [
            f"  base = transfer(c_loc(v_{cname}), base)",
            f'  print "(a, 1x, i0)", "sizeof.{cname}", c_sizeof(v_{cname})',
        ]
        lines += [
            f'  print "(a, 1x, i0)", "offsetof.{cname}.{f}", &\n'
            f"      transfer(c_loc(v_{cname}%{f}), base) - base"
            for f, _, _ in fields
        ]
        lines += [
            f'  print "(a, 1x, i0)", "sizeof.{cname}.{f}", c_sizeof(v_{cname}%{f})' for f, _, _ in fields
        ]
    lines.append("end program agreement")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fortran_view(build_fortran, tmp_path_factory):
    src = tmp_path_factory.mktemp("agreement") / "agreement.f90"
    src.write_text(_agreement_program())
    out = subprocess.run(
        [str(build_fortran(src, name="agreement"))], capture_output=True, text=True, check=True
    )
    return {key: int(value) for key, value in (line.split() for line in out.stdout.splitlines())}


def test_fortran_constants_are_the_headers(fortran_view):
    for enum in ENUMS:
        for name, value in _values(enum).items():
            assert fortran_view[name] == value, name
    for enum in ("nnc_status", "nnc_dtype", "nnc_flag"):
        for name, value in _values(enum).items():
            assert fortran_view[f"NN_{name[4:]}"] == value, name


def test_every_header_struct_has_a_fortran_type_of_the_same_layout(fortran_view):
    assert set(re.findall(r"typedef struct (\w+) \{", HEADER.read_text())) == set(FORTRAN_TYPES)
    for cname, fields in _struct_fields().items():
        assert fortran_view[f"sizeof.{cname}"] == ffi.sizeof(cname), cname
        for field, offset, size in fields:
            assert fortran_view[f"offsetof.{cname}.{field}"] == offset, f"{cname}.{field}"
            assert fortran_view[f"sizeof.{cname}.{field}"] == size, f"{cname}.{field}"


def _header_functions():
    """Header function -> number of parameters."""
    found = re.findall(r"^(?:int|const char \*)\s*(nnc_\w+)\(([^)]*)\);", HEADER.read_text(), re.M)
    return {name: 0 if params.strip() == "void" else params.count(",") + 1 for name, params in found}


def _fortran_bindings():
    """C name -> number of dummy arguments, from nn_closure_c's interfaces and procedure declarations."""
    text = re.sub(r"&\s*\n\s*", "", C_MODULE.read_text())
    nargs = {
        name: len([a for a in args.split(",") if a.strip()])
        for name, args in re.findall(r"function (\w+)\(([^)]*)\)", text)
    }
    bound = {
        c: nargs[f] for f, c in re.findall(r"function (\w+)\([^)]*\)\s*bind\(c, name=\"(nnc_\w+)\"\)", text)
    }
    for interface, c in re.findall(r"procedure\((\w+)\), bind\(c, name=\"(nnc_\w+)\"\)", text):
        bound[c] = nargs[interface]
    return bound


def test_fortran_binds_every_header_function_but_those_it_replaces():
    header, bound = _header_functions(), _fortran_bindings()
    assert len(header) >= 30
    assert set(NOT_BOUND) <= set(header)
    assert set(bound) == set(header) - set(NOT_BOUND), (
        f"unbound: {sorted(set(header) - set(NOT_BOUND) - set(bound))}, "
        f"not in the header: {sorted(set(bound) - set(header))}"
    )
    for name, nargs in bound.items():
        assert nargs == header[name], f"{name}: {nargs} Fortran arguments, {header[name]} in the header"


def test_every_fortran_binding_is_used_by_the_public_module():
    module = MODULE.read_text()
    unused = [name for name in _fortran_bindings() if not re.search(rf"\b{name}\b", module)]
    assert not unused, f"bound but never called by nn_closure: {unused}"
