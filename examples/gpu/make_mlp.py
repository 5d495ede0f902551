"""Write the float32 MLP 30-128-128-31 (tanh, seeded weights) that acc_forward runs.

python make_mlp.py mlp.pt
"""

import sys

import torch

import pyclosure


def main(path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(30, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 128),
        torch.nn.Tanh(),
        torch.nn.Linear(128, 31),
    )
    pyclosure.export(net, path, torch.zeros(8, 30))


if __name__ == "__main__":
    main(sys.argv[1])
