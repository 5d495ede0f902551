"""Status values agree in the header, the Fortran module and Python."""

import pathlib
import re

from pyclosure import errors
from pyclosure.bridge import lib

ROOT = pathlib.Path(__file__).parents[2]


def _header_statuses():
    text = (ROOT / "cbridge" / "include" / "nn_closure.h").read_text()
    body = re.search(r"enum nnc_status \{(.*?)\};", text, re.DOTALL).group(1)
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(NNC_\w+)\s*=\s*(\d+)", body)}


def _fortran_statuses():
    text = (ROOT / "fortran" / "nn_closure.f90").read_text()
    found = re.findall(r"integer, parameter, public :: (NN_\w+) = (\d+)", text)
    return {"NNC_" + name[3:]: int(value) for name, value in found}


def test_status_values_agree_in_header_fortran_and_python():
    header = _header_statuses()
    assert len(header) >= 15
    assert _fortran_statuses() == header
    assert errors.STATUS_NAMES == header
    for name, value in header.items():
        assert getattr(lib, name) == value  # the compiled cffi module, from the same header
        if value:
            assert errors.BY_STATUS[value].status == value


def test_fortran_generated_region_is_up_to_date():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "fortran" / "generate.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
