// stats.cpp: Stats (see stats.hpp). The median time per call comes from a
// histogram of logarithmic bins, so memory stays fixed for any run length.
#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace nnc {
namespace {

constexpr double kFirst = 1e-8;       // lower edge of bin 0, seconds
const double kStep = std::log(1.02);  // bin width in log space

}  // namespace

void Stats::add_call(double seconds, int64_t columns, int64_t nonfinite_in, int64_t nonfinite_out, int64_t ood,
                     int64_t fallback) {
    int bin = seconds > kFirst ? static_cast<int>(std::log(seconds / kFirst) / kStep) : 0;
    bin = std::min(bin, kBins - 1);
    std::lock_guard<std::mutex> lock(mutex_);
    s_.time_min = s_.calls == 0 ? seconds : std::min(s_.time_min, seconds);
    s_.time_max = std::max(s_.time_max, seconds);
    s_.time_total += seconds;
    ++s_.calls;
    s_.columns += columns;
    s_.nonfinite_input_columns += nonfinite_in;
    s_.nonfinite_output_columns += nonfinite_out;
    s_.ood_columns += ood;
    s_.fallback_columns += fallback;
    ++bins_[static_cast<size_t>(bin)];
}

void Stats::add_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++s_.errors;
}

nnc_stats Stats::snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    nnc_stats out = s_;
    out.time_median = 0.0;
    int64_t seen = 0;
    for (int b = 0; b < kBins && s_.calls > 0; ++b) {
        seen += bins_[static_cast<size_t>(b)];
        if (2 * seen >= s_.calls) {
            out.time_median = kFirst * std::exp((b + 0.5) * kStep);  // bin centre
            out.time_median = std::clamp(out.time_median, s_.time_min, s_.time_max);
            break;
        }
    }
    return out;
}

std::string Stats::summary(const std::string &label) const {
    const nnc_stats s = snapshot();
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "%s: %lld calls (%lld failed), %lld columns; time per call min %.3g s, median %.3g s, "
                  "max %.3g s, total %.3g s; fallback columns %lld (non-finite input %lld, non-finite output "
                  "%lld, out of distribution %lld)",
                  label.c_str(), static_cast<long long>(s.calls), static_cast<long long>(s.errors),
                  static_cast<long long>(s.columns), s.time_min, s.time_median, s.time_max, s.time_total,
                  static_cast<long long>(s.fallback_columns), static_cast<long long>(s.nonfinite_input_columns),
                  static_cast<long long>(s.nonfinite_output_columns), static_cast<long long>(s.ood_columns));
    return buf;
}

}  // namespace nnc
