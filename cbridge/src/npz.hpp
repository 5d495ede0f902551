// npz.hpp: numpy's .npy and .npz formats, written without numpy: replay
// records are zip archives (stored, no compression) of .npy members plus a
// meta.json, readable with numpy.load(..., allow_pickle=False) alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nnc {

/// One array of a record: element type, shape as the owner sees it, and
/// its bytes (C order, or Fortran order when fortran_order is set).
struct NpyArray {
    std::string name;  ///< member name without ".npy"
    int dtype = 0;     ///< nnc_dtype
    std::vector<int64_t> shape;
    bool fortran_order = false;
    std::string bytes;
};

/// The .npy v1.0 header for an array (magic, dict, padding to 64 bytes).
std::string npy_header(const NpyArray &a);

/// A zip member: a name and its content in up to two pieces.
struct ZipMember {
    std::string name;
    const std::string *head;  ///< e.g. the .npy header
    const std::string *body;  ///< e.g. the array bytes (may be nullptr)
};

/// Write `members` as a zip archive at `path`, crash-safe: the bytes go to
/// `path + ".partial"`, are flushed to disk (fsync), and only then renamed
/// to `path`. On failure the partial file is removed and NNC_ERR_RECORD
/// thrown. Archives are limited to 4 GiB (no zip64).
void write_zip(const std::string &path, const std::vector<ZipMember> &members);

}  // namespace nnc
