// contract.hpp: the input/output contract a pyclosure model file carries
// (embedded JSON, see pyclosure/contract.py), and the check of every call
// against it. Shapes here are per sample, in torch order, batch dim excluded.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn_closure.h"

namespace nnc {

/// One per-sample dimension: a fixed extent, any extent, or (outputs only)
/// an input's extent plus an offset, e.g. N cells -> N+1 faces.
struct Dim {
    enum class Kind {
        Fixed,
        Any,
        FromInput
    };
    Kind kind = Kind::Any;
    int64_t extent = -1;  // Fixed
    int input = -1;       // FromInput: index of the input
    int input_dim = -1;   //            its per-sample dim
    int64_t offset = 0;   //            extent = input extent + offset
    int64_t min = 0;      // Any (inputs): the extents a compiled package accepts,
    int64_t max = -1;     //               max -1 = unbounded
};

struct IoSpec {
    std::string name;
    int dtype = 0;  // nnc_dtype, 0 = not stated
    std::vector<Dim> dims;
};

struct Contract {
    std::string json;  // the document as embedded
    std::vector<IoSpec> inputs;
    std::vector<IoSpec> outputs;
    int64_t batch_min = 0;   // "batch_range": the batch sizes a compiled package accepts
    int64_t batch_max = -1;  // (a call with no columns never reaches the package)
    /// "state": (input, output) index pairs the host carries between calls; the bridge
    /// keeps nothing, it only checks each pair names an input and an output alike.
    std::vector<std::pair<int, int>> state;
};

/// Parse the embedded JSON; NNC_ERR_FORMAT if it is not a valid contract.
Contract parse_contract(const std::string &json);

/// Check a call against the contract before anything runs; throws nnc::Error
/// naming the argument, the expected and the actual shape or dtype.
void check_call(const Contract &c, int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs);

/// Fill the C description of input/output `index`.
void describe(const IoSpec &io, nnc_io_info *info);

}  // namespace nnc
