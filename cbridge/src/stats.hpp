// stats.hpp: per-model call statistics (calls, columns, time per call,
// fallbacks and flags by reason), safe to update from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>

#include "nn_closure.h"

namespace nnc {

class Stats {
public:
    /// One finished call: its duration, its columns and the flagged ones.
    void add_call(double seconds, int64_t columns, int64_t nonfinite_in, int64_t nonfinite_out, int64_t ood,
                  int64_t fallback);
    void add_error();
    nnc_stats snapshot() const;
    /// One paragraph: "closure.pt: 120 calls, ... ".
    std::string summary(const std::string &label) const;

private:
    static constexpr int kBins = 1400;  // log bins of 2 % from 10 ns: median to about 1 %
    mutable std::mutex mutex_;
    nnc_stats s_{};
    std::array<int64_t, kBins> bins_{};
};

}  // namespace nnc
