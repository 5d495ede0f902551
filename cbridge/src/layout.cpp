// layout.cpp: descriptor checks and the shape/stride bookkeeping of layout.hpp.
#include "layout.hpp"

#include <algorithm>

#include "errors.hpp"

namespace nnc {

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

std::vector<int64_t> torch_sizes(const nnc_array &a) {
    std::vector<int64_t> s(a.shape, a.shape + a.rank);
    if (a.order == NNC_ORDER_F) std::reverse(s.begin(), s.end());
    return s;
}

std::vector<int64_t> torch_strides(const nnc_array &a) {
    std::vector<int64_t> st(static_cast<size_t>(a.rank));
    if (a.strides != nullptr) {
        st.assign(a.strides, a.strides + a.rank);
        if (a.order == NNC_ORDER_F) std::reverse(st.begin(), st.end());
        return st;
    }
    std::vector<int64_t> sz = torch_sizes(a);
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

std::string format_dims(std::vector<int64_t> dims, int order) {
    if (order == NNC_ORDER_F) std::reverse(dims.begin(), dims.end());
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) {
        if (i) s += ", ";
        s += dims[i] < 0 ? std::string(":") : std::to_string(dims[i]);
    }
    return s + (dims.size() == 1 && order == NNC_ORDER_C ? ",)" : ")");
}

std::string caller_shape(const nnc_array &a) {
    std::string s = format_dims(torch_sizes(a), a.order);
    return a.order == NNC_ORDER_F ? s + " in Fortran order" : s;
}

}  // namespace nnc
