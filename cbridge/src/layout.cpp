// layout.cpp: descriptor checks and the shape/stride bookkeeping of layout.hpp.
#include "layout.hpp"

#include <algorithm>

#include "errors.hpp"

namespace nnc {

bool well_formed(const nnc_array &a) {
    if (dtype_size(a.dtype) == 0 || a.rank < 0 || a.rank > NNC_MAX_RANK) return false;
    if (a.order != NNC_ORDER_C && a.order != NNC_ORDER_F) return false;
    for (int d = 0; d < a.rank; ++d)
        if (a.shape[d] < 0) return false;
    return a.data != nullptr || numel(a) == 0;
}

void validate(const nnc_array &a, const std::string &what) {
    if (dtype_size(a.dtype) == 0)
        throw Error(NNC_ERR_DTYPE, what + ": unknown dtype code " + std::to_string(a.dtype));
    if (a.rank < 0 || a.rank > NNC_MAX_RANK)
        throw Error(NNC_ERR_RANK, what + ": rank " + std::to_string(a.rank) + " is outside 0.." +
                                      std::to_string(NNC_MAX_RANK));
    if (a.order != NNC_ORDER_C && a.order != NNC_ORDER_F)
        throw Error(NNC_ERR_ARGUMENT, what + ": unknown order code " + std::to_string(a.order));
    for (int d = 0; d < a.rank; ++d)
        if (a.shape[d] < 0)
            throw Error(NNC_ERR_SHAPE, what + ": negative extent " + std::to_string(a.shape[d]));
    if (a.data == nullptr && numel(a) > 0) throw Error(NNC_ERR_ARGUMENT, what + ": data pointer is NULL");
}

bool Dims::operator==(const Dims &o) const { return std::equal(begin(), end(), o.begin(), o.end()); }

namespace {

/// The caller's n values in torch order: reversed for Fortran order.
Dims in_torch_order(const int64_t *values, int n, int order) {
    Dims d;
    for (int k = 0; k < n; ++k) d.push_back(values[order == NNC_ORDER_F ? n - 1 - k : k]);
    return d;
}

}  // namespace

Dims torch_sizes(const nnc_array &a) { return in_torch_order(a.shape, a.rank, a.order); }

Dims torch_strides(const nnc_array &a) {
    if (a.strides != nullptr) return in_torch_order(a.strides, a.rank, a.order);
    const Dims sz = torch_sizes(a);
    Dims st = sz;
    int64_t acc = 1;
    for (int d = a.rank - 1; d >= 0; --d) {
        st[static_cast<size_t>(d)] = acc;
        acc *= std::max<int64_t>(sz[static_cast<size_t>(d)], 1);
    }
    return st;
}

int64_t numel(const nnc_array &a) {
    int64_t n = 1;
    for (int d = 0; d < a.rank && d < NNC_MAX_RANK; ++d) n *= a.shape[d];
    return n;
}

std::string dtype_name(int dtype) {
    switch (dtype) {
        case NNC_FLOAT32: return "float32";
        case NNC_FLOAT64: return "float64";
        case NNC_INT32: return "int32";
        case NNC_INT64: return "int64";
        default: return "unknown dtype " + std::to_string(dtype);
    }
}

int dtype_from_name(const std::string &name) {
    if (name == "float32") return NNC_FLOAT32;
    if (name == "float64") return NNC_FLOAT64;
    if (name == "int32") return NNC_INT32;
    if (name == "int64") return NNC_INT64;
    return 0;
}

size_t dtype_size(int dtype) {
    switch (dtype) {
        case NNC_FLOAT32: case NNC_INT32: return 4;
        case NNC_FLOAT64: case NNC_INT64: return 8;
        default: return 0;
    }
}

std::string format_dims(const int64_t *dims, size_t n, int order) {
    std::string s = "(";
    for (size_t i = 0; i < n; ++i) {
        const int64_t v = dims[order == NNC_ORDER_F ? n - 1 - i : i];
        if (i) s += ", ";
        s += v < 0 ? std::string(":") : std::to_string(v);
    }
    return s + (n == 1 && order == NNC_ORDER_C ? ",)" : ")");
}

std::string caller_shape(const nnc_array &a) {
    const Dims sizes = torch_sizes(a);
    std::string s = format_dims(sizes.data(), sizes.size(), a.order);
    return a.order == NNC_ORDER_F ? s + " in Fortran order" : s;
}

}  // namespace nnc
