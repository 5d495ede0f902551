// policy.hpp: guardrails chosen at load time (what to do with non-finite
// values and out-of-distribution columns) and the per-column scans behind
// them. Torch-free: scans run over contiguous buffers the model hands in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nnc {

struct Policy {
    enum class NonFinite {
        Error,
        Fallback,
        Off
    };
    enum class Ood {
        Off,
        Flag,
        Fallback
    };
    NonFinite nonfinite = NonFinite::Error;
    Ood ood = Ood::Off;
    double ood_threshold = 0.0;  ///< used when has_threshold (else the contract's)
    bool has_threshold = false;
    std::vector<std::string> trusted_sha256;  ///< trusted_sha256=HEX[:HEX...], lower-case
    std::string engine;                       ///< engine=native|torchscript|aoti: the only engine to accept; "" any
    bool needs_fallback() const { return nonfinite == NonFinite::Fallback || ood == Ood::Fallback; }
    std::string describe() const;  ///< "nonfinite=error, ood=off"
};

/// Parse "nonfinite=error|fallback|off, ood=off|flag|fallback, ood_threshold=X,
/// trusted_sha256=HEX[:HEX...], engine=native|torchscript|aoti"
/// (commas or spaces between pairs; empty: defaults). NNC_ERR_ARGUMENT names
/// the bad key or value.
Policy parse_policy(const std::string &options);

/// Split a list of SHA-256 digests (hex, separated by commas, colons or
/// spaces) into lower case; NNC_ERR_ARGUMENT names `source` for a bad entry.
std::vector<std::string> parse_digests(const std::string &list, const std::string &source);

/// Per-column reasons, as in enum nnc_flag.
enum ColumnFlag : uint8_t {
    kNonFiniteInput = 1,
    kNonFiniteOutput = 2,
    kOod = 4
};

/// Mark columns (batch rows of `per_column` elements) holding a non-finite
/// value with `bit`; returns the flat index of the first one, or -1. Only
/// float32/float64 are scanned (integers are always finite).
int64_t scan_nonfinite(const void *data, int dtype, int64_t batch, int64_t per_column, uint8_t bit,
                       std::vector<uint8_t> &flags);

/// Mark columns whose score exceeds `threshold` (or is not finite) with kOod;
/// returns how many columns were marked.
int64_t scan_ood(const void *data, int dtype, int64_t batch, int64_t per_column, double threshold,
                 std::vector<uint8_t> &flags);

}  // namespace nnc
