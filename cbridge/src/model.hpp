// model.hpp: a loaded model (TorchScript module, device, optional contract)
// behind a torch-free interface, so only model.cpp compiles torch headers.
// Every format-specific line lives in model.cpp.
#pragma once

#include <memory>
#include <string>

#include "contract.hpp"
#include "nn_closure.h"

namespace nnc {

class Model {
public:
    /// Load `path` onto `device` ("cpu", "cuda", "cuda:N", "auto").
    Model(const std::string &path, const std::string &device);
    ~Model();
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    /// Check against the contract (if any), run, write outputs; see nn_closure.h.
    void forward(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs);

    const Contract *contract() const;  ///< nullptr for a plain TorchScript file
    std::string device() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Parse a device string and check it is usable; returns its canonical form.
std::string resolve_device(const std::string &device);

/// libtorch version "MAJOR.MINOR.PATCH"; thread-count control.
const char *libtorch_version();
void set_num_threads(int n);
int get_num_threads();

}  // namespace nnc
