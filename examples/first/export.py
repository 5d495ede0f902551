"""Export a small closure: 4 levels of q per column in, 5 interface fluxes out."""

import sys

import torch

import pyclosure

torch.manual_seed(0)
closure = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh()).double()
q = torch.zeros(3, 4, dtype=torch.float64)  # torch order (columns, levels): Fortran q(4, ncol)
path = sys.argv[1] if len(sys.argv) > 1 else "closure.pt"  # .pt2 and .nnp work the same
pyclosure.export(closure, path, example_inputs=(q,), input_names=["q"], output_names=["flux"])
