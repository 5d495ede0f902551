// model_impl.hpp: a Model's state, shared by model.cpp (the tensor path) and
// model_raw.cpp (the torch-free path of raw engines).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "contract.hpp"
#include "engine.hpp"
#include "model.hpp"
#include "policy.hpp"
#include "record.hpp"
#include "stats.hpp"

namespace nnc {

struct Model::Impl {
    std::unique_ptr<Engine> engine;
    c10::Device device{c10::kCPU};
    std::string device_reason;  // why this device: "requested", or how "auto" chose it
    std::unique_ptr<Contract> contract;
    std::string path;
    std::atomic<int64_t> calls{0};       // forward calls that succeeded
    std::unique_ptr<Recorder> recorder;  // while recording
    Policy policy;
    int ood_output = -1;  // index of the OOD score output (ood policy on)
    double ood_threshold = 0.0;
    Stats stats;
    int64_t weights_version = 0;  // nnc_train_sync's version (0: the file's weights)
    std::string weights_sha256;
};

/// An input's or output's name in records: the contract's, else its index.
inline std::string io_name(const Contract *c, bool output, int i) {
    if (c) return (output ? c->outputs : c->inputs)[static_cast<size_t>(i)].name;
    return std::to_string(i);
}

/// "output 'flux' (argument 1)" for messages.
inline std::string out_label(const Contract *c, int i) {
    std::string name = c ? "'" + c->outputs[static_cast<size_t>(i)].name + "' " : "";
    return "output " + name + "(argument " + std::to_string(i + 1) + ")";
}

// Steps shared by the tensor path (model.cpp) and the raw path (model_raw.cpp).

/// NNC_ERR_ARGUMENT when output `i`'s strides make elements overlap (stride 0, extent > 1).
void check_no_overlap(const Contract *c, int i, const nnc_array &o);

/// NNC_ERR_NONFINITE for the first non-finite element (flat index `first`, value `v`) of
/// input or output `i`, naming its column as the caller counts them.
[[noreturn]] void throw_nonfinite(const Contract *c, bool output, int i, const nnc_array &a, int64_t first,
                                  int64_t batch, double v);

/// How many columns each guardrail flagged, for the statistics.
struct FlagCounts {
    int64_t nonfinite_in = 0, nonfinite_out = 0, ood = 0, replaced = 0;
};

/// The flags of `batch` columns counted by kind; `rows` gets the columns whose
/// flags meet the `replace` mask (those the fallback policy gives the host's values).
FlagCounts count_flags(const std::vector<uint8_t> &col, int64_t batch, uint8_t replace, std::vector<int64_t> &rows);

}  // namespace nnc
