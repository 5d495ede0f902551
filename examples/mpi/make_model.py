"""Export a small closure for the MPI example: 16 features in, 4 out per column.

    python make_model.py closure.pt

From Fortran the model takes x(16, ncol) and gives y(4, ncol). Any closure with
one input and one output works with mpi_columns; give its sizes on the command line.
"""

import sys

import torch

import pyclosure


def make(path, nin=16, nhidden=64, nout=4, seed=0):
    """Write a seeded float64 MLP with its contract to `path`; returns the contract."""
    torch.manual_seed(seed)
    closure = torch.nn.Sequential(
        torch.nn.Linear(nin, nhidden), torch.nn.Tanh(), torch.nn.Linear(nhidden, nout)
    ).double()
    return pyclosure.export(
        closure,
        path,
        example_inputs=(torch.zeros(8, nin, dtype=torch.float64),),
        input_names=["x"],
        output_names=["y"],
    )


if __name__ == "__main__":
    make(sys.argv[1] if len(sys.argv) > 1 else "closure.pt")
    print(
        f"wrote {sys.argv[1] if len(sys.argv) > 1 else 'closure.pt'}: x(16, ncol) -> y(4, ncol) from Fortran"
    )
