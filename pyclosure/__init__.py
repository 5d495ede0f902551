"""pyclosure: machine-learned closures for Fortran models.

Train a closure in PyTorch, export it as one TorchScript file that carries its
input/output contract, run it in-process from Fortran (``use nn_closure``), C
(``nn_closure.h``) or Python (``pyclosure.bridge``), and verify the run.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("pyclosure")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

from .contract import read_contract
from .errors import ClosureError
from .export import export

__all__ = ["ClosureError", "__version__", "export", "read_contract"]
