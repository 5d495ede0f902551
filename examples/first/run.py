"""The same call from Python, through the C bridge the Fortran host uses."""

import sys

import numpy as np

from pyclosure.bridge import Model

model = Model(sys.argv[1])  # checks every call against the contract
q = (np.arange(12, dtype=np.float64) / 12).reshape(3, 4)  # (columns, levels)
flux = model(q)  # shape (3, 5)
for row in flux:
    print("flux", " ".join(f"{v:.16e}" for v in row))
