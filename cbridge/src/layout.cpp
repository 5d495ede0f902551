// layout.cpp: descriptor checks and the shape/stride bookkeeping of layout.hpp.
#include "layout.hpp"

#include <algorithm>
#include <cstring>

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
    if (dtype_size(a.dtype) == 0) throw Error(NNC_ERR_DTYPE, what + ": unknown dtype code " + std::to_string(a.dtype));
    if (a.rank < 0 || a.rank > NNC_MAX_RANK)
        throw Error(NNC_ERR_RANK,
                    what + ": rank " + std::to_string(a.rank) + " is outside 0.." + std::to_string(NNC_MAX_RANK));
    if (a.order != NNC_ORDER_C && a.order != NNC_ORDER_F)
        throw Error(NNC_ERR_ARGUMENT, what + ": unknown order code " + std::to_string(a.order));
    for (int d = 0; d < a.rank; ++d)
        if (a.shape[d] < 0) throw Error(NNC_ERR_SHAPE, what + ": negative extent " + std::to_string(a.shape[d]));
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

bool dense_c(const nnc_array &a) {
    if (a.strides == nullptr) return true;
    const Dims sz = torch_sizes(a), st = torch_strides(a);
    int64_t want = 1;
    for (size_t d = sz.size(); d-- > 0;) {
        if (sz[d] > 1 && st[d] != want) return false;
        want *= sz[d];
    }
    return true;
}

namespace {

/// Walk rows [begin, end) of `a` in C order, calling f(element address, flat index).
template <class F> void each_element(const nnc_array &a, int64_t begin, int64_t end, F f) {
    const Dims sz = torch_sizes(a), st = torch_strides(a);
    const size_t rank = sz.size();
    const int64_t item = static_cast<int64_t>(dtype_size(a.dtype));
    if (rank == 0) {
        if (begin < end) f(static_cast<char *>(a.data), 0);
        return;
    }
    int64_t inner = 1;
    for (size_t d = 1; d < rank; ++d) inner *= sz[d];
    if (inner == 0) return;
    std::array<int64_t, NNC_MAX_RANK> idx{};
    int64_t flat = 0;
    for (int64_t r = begin; r < end; ++r) {
        idx.fill(0);
        for (int64_t k = 0; k < inner; ++k, ++flat) {
            int64_t off = r * st[0];
            for (size_t d = 1; d < rank; ++d) off += idx[d] * st[d];
            f(static_cast<char *>(a.data) + off * item, flat);
            for (size_t d = rank; d-- > 1;) {  // next index in C order
                if (++idx[d] < sz[d]) break;
                idx[d] = 0;
            }
        }
    }
}

}  // namespace

void gather_rows(const nnc_array &a, int64_t begin, int64_t end, void *dst) {
    const size_t item = dtype_size(a.dtype);
    char *out = static_cast<char *>(dst);
    each_element(a, begin, end, [&](const char *p, int64_t k) { std::memcpy(out + k * item, p, item); });
}

void scatter_rows(const void *src, const nnc_array &a, int64_t begin, int64_t end) {
    const size_t item = dtype_size(a.dtype);
    const char *in = static_cast<const char *>(src);
    each_element(a, begin, end, [&](char *p, int64_t k) { std::memcpy(p, in + k * item, item); });
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
        case NNC_FLOAT32:
        case NNC_INT32: return 4;
        case NNC_FLOAT64:
        case NNC_INT64: return 8;
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
