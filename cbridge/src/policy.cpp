// policy.cpp: parsing load-time guardrail options and the column scans.
#include "policy.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "errors.hpp"
#include "nn_closure.h"

namespace nnc {
namespace {

/// True when every value is finite: x - x is 0 for finite x, NaN otherwise;
/// four accumulators keep the loop fast (this runs on every call).
template <class T> bool all_finite(const T *p, int64_t n) {
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a0 += p[i] - p[i];
        a1 += p[i + 1] - p[i + 1];
        a2 += p[i + 2] - p[i + 2];
        a3 += p[i + 3] - p[i + 3];
    }
    for (; i < n; ++i) a0 += p[i] - p[i];
    return std::isfinite(a0 + a1 + a2 + a3);
}

template <class T>
int64_t scan(const T *p, int64_t batch, int64_t per_column, uint8_t bit, std::vector<uint8_t> &flags) {
    if (all_finite(p, batch * per_column)) return -1;
    int64_t first = -1;
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k < per_column; ++k) {
            if (!std::isfinite(p[b * per_column + k])) {
                if (first < 0) first = b * per_column + k;
                flags[static_cast<size_t>(b)] |= bit;
                break;
            }
        }
    }
    return first;
}

template <class T>
int64_t scan_scores(const T *p, int64_t batch, int64_t per_column, double threshold, std::vector<uint8_t> &flags) {
    int64_t marked = 0;
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k < per_column; ++k) {
            const double s = static_cast<double>(p[b * per_column + k]);
            if (!(s <= threshold)) {  // also catches NaN
                flags[static_cast<size_t>(b)] |= kOod;
                ++marked;
                break;
            }
        }
    }
    return marked;
}

}  // namespace

std::string Policy::describe() const {
    std::string s = std::string("nonfinite=") +
                    (nonfinite == NonFinite::Error      ? "error"
                     : nonfinite == NonFinite::Fallback ? "fallback"
                                                        : "off") +
                    ", ood=" +
                    (ood == Ood::Off    ? "off"
                     : ood == Ood::Flag ? "flag"
                                        : "fallback");
    if (has_threshold) s += ", ood_threshold=" + std::to_string(ood_threshold);
    if (!engine.empty()) s += ", engine=" + engine;
    return s;
}

std::vector<std::string> parse_digests(const std::string &list, const std::string &source) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= list.size()) {
        size_t end = list.find_first_of(",: \t\n", pos);
        if (end == std::string::npos) end = list.size();
        std::string d = list.substr(pos, end - pos);
        pos = end + 1;
        if (d.empty()) continue;
        for (char &ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (d.size() != 64 || d.find_first_not_of("0123456789abcdef") != std::string::npos)
            throw Error(NNC_ERR_ARGUMENT, source + ": '" + d + "' is not a SHA-256 digest (64 hex digits)");
        out.push_back(d);
    }
    if (out.empty()) throw Error(NNC_ERR_ARGUMENT, source + " is set but lists no SHA-256 digest");
    return out;
}

Policy parse_policy(const std::string &options) {
    Policy p;
    size_t pos = 0;
    while (pos < options.size()) {
        size_t end = options.find_first_of(", ;", pos);
        if (end == std::string::npos) end = options.size();
        const std::string item = options.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty()) continue;
        const size_t eq = item.find('=');
        if (eq == std::string::npos)
            throw Error(NNC_ERR_ARGUMENT,
                        "option '" + item + "' is not key=value (nonfinite=..., ood=..., ood_threshold=...)");
        const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        if (key == "nonfinite") {
            if (value == "error") p.nonfinite = Policy::NonFinite::Error;
            else if (value == "fallback") p.nonfinite = Policy::NonFinite::Fallback;
            else if (value == "off") p.nonfinite = Policy::NonFinite::Off;
            else throw Error(NNC_ERR_ARGUMENT, "nonfinite='" + value + "': use error, fallback or off");
        } else if (key == "ood") {
            if (value == "off") p.ood = Policy::Ood::Off;
            else if (value == "flag") p.ood = Policy::Ood::Flag;
            else if (value == "fallback") p.ood = Policy::Ood::Fallback;
            else throw Error(NNC_ERR_ARGUMENT, "ood='" + value + "': use off, flag or fallback");
        } else if (key == "ood_threshold") {
            char *stop = nullptr;
            p.ood_threshold = std::strtod(value.c_str(), &stop);
            if (value.empty() || *stop != '\0' || !std::isfinite(p.ood_threshold))
                throw Error(NNC_ERR_ARGUMENT, "ood_threshold='" + value + "' is not a finite number");
            p.has_threshold = true;
        } else if (key == "engine") {
            if (value != "native" && value != "torchscript" && value != "aoti")
                throw Error(NNC_ERR_ARGUMENT, "engine='" + value + "': use native, torchscript or aoti");
            p.engine = value;
        } else if (key == "trusted_sha256") {
            for (const std::string &d : parse_digests(value, "trusted_sha256")) p.trusted_sha256.push_back(d);
        } else {
            throw Error(NNC_ERR_ARGUMENT,
                        "unknown option '" + key + "' (known: nonfinite, ood, ood_threshold, trusted_sha256, engine)");
        }
    }
    return p;
}

int64_t scan_nonfinite(const void *data, int dtype, int64_t batch, int64_t per_column, uint8_t bit,
                       std::vector<uint8_t> &flags) {
    if (dtype == NNC_FLOAT32) return scan(static_cast<const float *>(data), batch, per_column, bit, flags);
    if (dtype == NNC_FLOAT64) return scan(static_cast<const double *>(data), batch, per_column, bit, flags);
    return -1;
}

int64_t scan_ood(const void *data, int dtype, int64_t batch, int64_t per_column, double threshold,
                 std::vector<uint8_t> &flags) {
    if (dtype == NNC_FLOAT32) return scan_scores(static_cast<const float *>(data), batch, per_column, threshold, flags);
    if (dtype == NNC_FLOAT64)
        return scan_scores(static_cast<const double *>(data), batch, per_column, threshold, flags);
    throw Error(NNC_ERR_DTYPE, "the OOD score output must be float32 or float64");
}

}  // namespace nnc
