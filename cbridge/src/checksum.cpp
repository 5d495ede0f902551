// checksum.cpp: streaming SHA-256 over the native library's block function
// (cbridge/native/sha256.c), and CRC-32, written from its specification.
#include "checksum.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "errors.hpp"

extern "C" void nnn_sha256_block(uint32_t h[8], const unsigned char *p);  // cbridge/native/sha256.c

namespace nnc {
namespace {

std::array<uint32_t, 256> crc_table() {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t[i] = c;
    }
    return t;
}

}  // namespace

Sha256::Sha256() : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const unsigned char *p) { nnn_sha256_block(h_, p); }

void Sha256::update(const void *data, size_t size) {
    const auto *p = static_cast<const unsigned char *>(data);
    total_ += size;
    while (size > 0) {
        if (fill_ == 0 && size >= 64) {
            block(p);
            p += 64;
            size -= 64;
            continue;
        }
        size_t n = std::min(size, 64 - fill_);
        std::memcpy(buf_ + fill_, p, n);
        fill_ += n;
        p += n;
        size -= n;
        if (fill_ == 64) {
            block(buf_);
            fill_ = 0;
        }
    }
}

std::string Sha256::hex() {
    const uint64_t bits = total_ * 8;
    const unsigned char one = 0x80, zero = 0;
    update(&one, 1);
    while (fill_ != 56) update(&zero, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
    update(len, 8);
    static const char *digits = "0123456789abcdef";
    std::string out;
    for (uint32_t v : h_)
        for (int s = 28; s >= 0; s -= 4) out += digits[(v >> s) & 0xf];
    return out;
}

std::string sha256_file(const std::string &path) {
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) throw Error(NNC_ERR_IO, "cannot read '" + path + "' to hash it: " + std::strerror(errno));
    Sha256 sha;
    std::vector<char> buf(1 << 16);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) sha.update(buf.data(), n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw Error(NNC_ERR_IO, "error while reading '" + path + "' to hash it");
    return sha.hex();
}

uint32_t crc32(const void *data, size_t size, uint32_t crc) {
    static const std::array<uint32_t, 256> table = crc_table();
    const auto *p = static_cast<const unsigned char *>(data);
    crc = ~crc;
    for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

}  // namespace nnc
