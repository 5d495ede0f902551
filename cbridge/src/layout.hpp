// layout.hpp: array descriptors as the caller sees them, and as torch sees
// them. Fortran x(nfeat, ncol) with NNC_ORDER_F is torch (ncol, nfeat): the
// shape and strides reversed, the memory untouched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nn_closure.h"

namespace nnc {

/// Throw NNC_ERR_ARGUMENT / NNC_ERR_DTYPE / NNC_ERR_RANK for a malformed
/// descriptor; `what` names it in messages ("input 'u'").
void validate(const nnc_array &a, const std::string &what);

/// Shape in torch (C) order.
std::vector<int64_t> torch_sizes(const nnc_array &a);
/// Element strides in torch (C) order (contiguous ones when a.strides is NULL).
std::vector<int64_t> torch_strides(const nnc_array &a);

/// Number of elements.
int64_t numel(const nnc_array &a);

/// "float32", "float64", ... ("unknown dtype N" otherwise).
std::string dtype_name(int dtype);
/// NNC_FLOAT32... from "float32"..., 0 when unknown.
int dtype_from_name(const std::string &name);
/// Bytes per element, 0 when unknown.
size_t dtype_size(int dtype);

/// "(4, 10)" in the caller's order, with the order named for Fortran.
std::string caller_shape(const nnc_array &a);
/// Format torch-order dims in the given caller order; negative dims print ":".
std::string format_dims(std::vector<int64_t> torch_order_dims, int order);

}  // namespace nnc
