"""Print where the installed torch keeps its C++ headers and libraries.

Used by meson.build so the bridge links the very libtorch that Python's torch
uses. Finds the package without importing it (importing takes seconds).
Output: three lines: include dir, API include dir, lib dir.
"""

import importlib.util
import pathlib
import sys

spec = importlib.util.find_spec("torch")
if spec is None or spec.origin is None:
    sys.exit("torch is not installed: pip install torch==2.13.0 first")
root = pathlib.Path(spec.origin).parent
for path in (root / "include", root / "include" / "torch" / "csrc" / "api" / "include", root / "lib"):
    if not path.is_dir():
        sys.exit(f"torch at {root} has no {path.name} folder: is it a full torch install?")
    print(path)
