// device_map.cpp: auto_device (see device_map.hpp).
#include "device_map.hpp"

#include <string>

#include "errors.hpp"

namespace nnc {

const char *const kLocalRankVariables[5] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                            "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PALS_LOCAL_RANKID"};

namespace {

/// The local rank and the variable it came from ("" when none is set).
long long local_rank(const char *(*getenv)(const char *), std::string &source) {
    for (const char *var : kLocalRankVariables) {
        const char *v = getenv(var);
        if (v == nullptr) continue;
        const std::string s(v);
        if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
            throw Error(NNC_ERR_BAD_DEVICE, "device 'auto': the local rank variable " + std::string(var) + "='" + s +
                                                "' is not a non-negative integer");
        source = var;
        return std::stoll(s);
    }
    source.clear();
    return 0;
}

}  // namespace

DeviceChoice auto_device(int visible_gpus, const char *(*getenv)(const char *)) {
    std::string source;
    const long long rank = local_rank(getenv, source);
    const std::string who = source.empty() ? "local rank 0 (no local rank variable set)"
                                           : "local rank " + std::to_string(rank) + " (" + source + ")";
    if (visible_gpus <= 0) return {"cpu", "auto: no CUDA device visible, so the CPU for " + who};
    const std::string device = "cuda:" + std::to_string(rank % visible_gpus);
    std::string reason = "auto: " + who + " mod " + std::to_string(visible_gpus) + " visible CUDA device(s)";
    if (const char *visible = getenv("CUDA_VISIBLE_DEVICES"))
        reason += ", CUDA_VISIBLE_DEVICES=" + std::string(visible);
    return {device, reason};
}

}  // namespace nnc
