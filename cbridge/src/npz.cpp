// npz.cpp: .npy headers and a minimal stored-zip writer (PKWARE APPNOTE
// 4.3: local headers, central directory, end record), written atomically.
#include "npz.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "checksum.hpp"
#include "errors.hpp"
#include "nn_closure.h"

namespace nnc {
namespace {

const char *descr(int dtype) {
    switch (dtype) {
        case NNC_FLOAT32: return "<f4";
        case NNC_FLOAT64: return "<f8";
        case NNC_INT32: return "<i4";
        case NNC_INT64: return "<i8";
        default: throw Error(NNC_ERR_DTYPE, "cannot record dtype code " + std::to_string(dtype));
    }
}

void put16(std::string &s, uint32_t v) {
    s += static_cast<char>(v & 0xff);
    s += static_cast<char>((v >> 8) & 0xff);
}

void put32(std::string &s, uint32_t v) {
    put16(s, v & 0xffff);
    put16(s, v >> 16);
}

/// Local (central = false) or central directory header of a stored member.
std::string zip_header(bool central, const std::string &name, uint32_t crc, uint32_t size, uint32_t offset) {
    std::string h;
    put32(h, central ? 0x02014b50u : 0x04034b50u);
    if (central) put16(h, 20);  // version made by
    put16(h, 20);               // version needed: 2.0
    put16(h, 0);                // flags
    put16(h, 0);                // method: stored
    put16(h, 0);                // time
    put16(h, 0x21);             // date: 1980-01-01 (the record's time is in meta.json)
    put32(h, crc);
    put32(h, size);  // compressed size
    put32(h, size);  // uncompressed size
    put16(h, static_cast<uint32_t>(name.size()));
    put16(h, 0);  // extra field length
    if (central) {
        put16(h, 0);  // comment length
        put16(h, 0);  // disk number
        put16(h, 0);  // internal attributes
        put32(h, 0);  // external attributes
        put32(h, offset);
    }
    return h + name;
}

struct File {
    std::FILE *f = nullptr;
    std::string path;
    ~File() {
        if (f) {
            std::fclose(f);
            std::remove(path.c_str());
        }
    }
    void write(const std::string &s) {
        if (!s.empty() && std::fwrite(s.data(), 1, s.size(), f) != s.size())
            throw Error(NNC_ERR_RECORD, "cannot write record '" + path + "': " + std::strerror(errno));
    }
};

}  // namespace

std::string npy_header(const NpyArray &a) {
    std::string shape = "(";
    for (int64_t d : a.shape) shape += std::to_string(d) + ", ";
    if (a.shape.size() > 1) shape.resize(shape.size() - 2);
    else if (a.shape.size() == 1) shape.resize(shape.size() - 1);
    shape += ")";
    std::string dict = std::string("{'descr': '") + descr(a.dtype) +
                       "', 'fortran_order': " + (a.fortran_order ? "True" : "False") + ", 'shape': " + shape + ", }";
    size_t total = 10 + dict.size() + 1;
    dict.append((64 - total % 64) % 64, ' ');
    dict += '\n';
    std::string h("\x93NUMPY\x01\x00", 8);
    put16(h, static_cast<uint32_t>(dict.size()));
    return h + dict;
}

void write_zip(const std::string &path, const std::vector<ZipMember> &members) {
    uint64_t total = 22;
    for (const auto &m : members) total += 2 * (46 + m.name.size()) + m.head->size() + (m.body ? m.body->size() : 0);
    if (total >= 0xffffffffull)
        throw Error(NNC_ERR_RECORD, "record '" + path + "' would be " + std::to_string(total) +
                                        " bytes; records are limited to 4 GiB (record fewer or smaller arrays)");
    File out;
    out.path = path + ".partial";
    out.f = std::fopen(out.path.c_str(), "wb");
    if (!out.f) throw Error(NNC_ERR_RECORD, "cannot create record '" + out.path + "': " + std::strerror(errno));
    std::string central;
    uint32_t offset = 0;
    for (const auto &m : members) {
        uint32_t size = static_cast<uint32_t>(m.head->size() + (m.body ? m.body->size() : 0));
        uint32_t crc = crc32(m.head->data(), m.head->size());
        if (m.body) crc = crc32(m.body->data(), m.body->size(), crc);
        std::string local = zip_header(false, m.name, crc, size, 0);
        central += zip_header(true, m.name, crc, size, offset);
        out.write(local);
        out.write(*m.head);
        if (m.body) out.write(*m.body);
        offset += static_cast<uint32_t>(local.size()) + size;
    }
    std::string end;
    put32(end, 0x06054b50u);
    put16(end, 0);
    put16(end, 0);
    put16(end, static_cast<uint32_t>(members.size()));
    put16(end, static_cast<uint32_t>(members.size()));
    put32(end, static_cast<uint32_t>(central.size()));
    put32(end, offset);
    put16(end, 0);
    out.write(central);
    out.write(end);
    if (std::fflush(out.f) != 0 || ::fsync(::fileno(out.f)) != 0)
        throw Error(NNC_ERR_RECORD, "cannot flush record '" + out.path + "' to disk: " + std::strerror(errno));
    std::FILE *f = out.f;
    out.f = nullptr;
    if (std::fclose(f) != 0) {
        std::remove(out.path.c_str());
        throw Error(NNC_ERR_RECORD, "cannot close record '" + out.path + "': " + std::strerror(errno));
    }
    if (std::rename(out.path.c_str(), path.c_str()) != 0) {
        std::remove(out.path.c_str());
        throw Error(NNC_ERR_RECORD, "cannot rename '" + out.path + "' to '" + path + "': " + std::strerror(errno));
    }
}

}  // namespace nnc
