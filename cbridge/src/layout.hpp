// layout.hpp: array descriptors as the caller sees them, and as torch sees
// them. Fortran x(nfeat, ncol) with NNC_ORDER_F is torch (ncol, nfeat): the
// shape and strides reversed, the memory untouched.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn_closure.h"

namespace nnc {

/// Throw NNC_ERR_ARGUMENT / NNC_ERR_DTYPE / NNC_ERR_RANK for a malformed
/// descriptor; `what` names it in messages ("input 'u'").
void validate(const nnc_array &a, const std::string &what);
/// True when validate would not throw; per-call checks build the name for
/// validate's message only when this is false.
bool well_formed(const nnc_array &a);

/// Up to NNC_MAX_RANK extents or strides, held inline: every forward call
/// builds several, and none of them touches the heap.
class Dims {
public:
    Dims() = default;
    Dims(const int64_t *first, size_t n) {
        for (size_t d = 0; d < n; ++d) push_back(first[d]);
    }
    void push_back(int64_t v) {
        if (n_ == v_.size()) throw std::length_error("more than NNC_MAX_RANK dims");
        v_[n_++] = v;
    }
    int64_t &operator[](size_t d) { return v_[d]; }
    int64_t operator[](size_t d) const { return v_[d]; }
    size_t size() const { return n_; }
    const int64_t *data() const { return v_.data(); }
    const int64_t *begin() const { return v_.data(); }
    const int64_t *end() const { return v_.data() + n_; }
    std::vector<int64_t> vec() const { return {begin(), end()}; }
    bool operator==(const Dims &o) const;
    bool operator!=(const Dims &o) const { return !(*this == o); }

private:
    std::array<int64_t, NNC_MAX_RANK> v_{};
    size_t n_ = 0;
};

/// Shape in torch (C) order.
Dims torch_sizes(const nnc_array &a);
/// Element strides in torch (C) order (contiguous ones when a.strides is NULL).
Dims torch_strides(const nnc_array &a);

/// Number of elements.
int64_t numel(const nnc_array &a);

/// "float32", "float64", ... ("unknown dtype N" otherwise).
std::string dtype_name(int dtype);
/// NNC_FLOAT32... from "float32"..., 0 when unknown.
int dtype_from_name(const std::string &name);
/// Bytes per element, 0 when unknown.
size_t dtype_size(int dtype);

/// True when `a`'s memory is the dense C-order array of its torch sizes (what a
/// raw engine reads in place); extents of 0 or 1 may have any stride.
bool dense_c(const nnc_array &a);
/// Copy rows [begin, end) (along torch dim 0) of `a`, any strides, into `dst`,
/// dense in C order. No allocation.
void gather_rows(const nnc_array &a, int64_t begin, int64_t end, void *dst);
/// Copy dense C-order rows from `src` (row `begin` first) into rows [begin, end) of `a`.
void scatter_rows(const void *src, const nnc_array &a, int64_t begin, int64_t end);

/// "(4, 10)" in the caller's order, with the order named for Fortran.
std::string caller_shape(const nnc_array &a);
/// Format n torch-order dims in the given caller order; negative dims print ":".
std::string format_dims(const int64_t *torch_order_dims, size_t n, int order);

}  // namespace nnc
