// checksum.hpp: SHA-256 (FIPS 180-4) and CRC-32 (the zip polynomial), for
// replay records: the model file's identity and each record's self-check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nnc {

/// Streaming SHA-256; hex() finishes it.
class Sha256 {
public:
    Sha256();
    void update(const void *data, size_t size);
    std::string hex();  ///< lowercase hex digest; call once

private:
    void block(const unsigned char *p);
    uint32_t h_[8];
    unsigned char buf_[64];
    size_t fill_ = 0;
    uint64_t total_ = 0;
};

/// SHA-256 of a whole file (throws NNC_ERR_IO when unreadable).
std::string sha256_file(const std::string &path);

/// CRC-32 as zip computes it; pass the previous value to continue.
uint32_t crc32(const void *data, size_t size, uint32_t crc = 0);

}  // namespace nnc
