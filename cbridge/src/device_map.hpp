// device_map.hpp: what device="auto" stands for, as a pure function of the
// number of visible GPUs and the environment (no torch, no CUDA), so that the
// mapping is testable on a machine without a GPU.
#pragma once

#include <string>

namespace nnc {

/// Local-rank variables of the MPI launchers and Slurm, in the order they are read.
extern const char *const kLocalRankVariables[5];

/// A device and, in words, why it was chosen (for the statistics summary).
struct DeviceChoice {
    std::string device;  ///< "cpu" or "cuda:N"
    std::string reason;
};

/// The device "auto" resolves to: with n > 0 visible CUDA devices, the local MPI
/// rank (the first of kLocalRankVariables that is set; 0 when none is) round robin
/// over them, cuda:(rank mod n); with none, the CPU. `getenv` reads the environment
/// (std::getenv in the bridge, a table in tests). A rank variable that is not a
/// non-negative integer is an NNC_ERR_BAD_DEVICE error naming it.
DeviceChoice auto_device(int visible_gpus, const char *(*getenv)(const char *));

}  // namespace nnc
