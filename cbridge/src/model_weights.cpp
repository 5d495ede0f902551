// model_weights.cpp: new weights for a running model (nnc_train_sync). The
// model hands them to its engine: TorchScript copies each parameter in place,
// AOTInductor updates the package's constant buffer, native swaps in a program
// rebuilt with the new weights. No engine recompiles anything.
#include <torch/types.h>

#include "engine.hpp"
#include "errors.hpp"
#include "layout.hpp"
#include "model.hpp"
#include "model_impl.hpp"

namespace nnc {

namespace {

at::ScalarType scalar_type(int dtype, const std::string &name) {
    switch (dtype) {
        case NNC_FLOAT32: return at::kFloat;
        case NNC_FLOAT64: return at::kDouble;
        case NNC_INT32: return at::kInt;
        case NNC_INT64: return at::kLong;
        default: throw Error(NNC_ERR_DTYPE, "weight '" + name + "' has unknown dtype code " + std::to_string(dtype));
    }
}

}  // namespace

void Engine::update_weights(const std::map<std::string, at::Tensor> &, const std::string &) {
    throw Error(NNC_ERR_ARGUMENT, std::string("the ") + name() + " engine cannot take new weights");
}

const std::string &Model::path() const { return impl_->path; }

std::string Model::contract_json() const { return impl_->engine->contract_json(); }

bool Model::takes_program() const { return impl_->engine->takes_program(); }

void Model::update_weights(const std::vector<NamedArray> &weights, const std::string &program) {
    std::map<std::string, at::Tensor> named;
    for (const NamedArray &w : weights) {
        validate(w.array, "weight '" + w.name + "'");
        if (!dense_c(w.array)) throw Error(NNC_ERR_ARGUMENT, "weight '" + w.name + "' is not dense in C order");
        const Dims sizes = torch_sizes(w.array);
        named[w.name] = at::from_blob(w.array.data, at::IntArrayRef(sizes.data(), sizes.size()),
                                      at::TensorOptions().dtype(scalar_type(w.array.dtype, w.name)));
    }
    impl_->engine->update_weights(named, program);
}

void Model::set_weights_version(int64_t version, const std::string &sha256) {
    impl_->weights_version = version;
    impl_->weights_sha256 = sha256;
    if (impl_->recorder) impl_->recorder->set_weights(version, sha256);
}

/// "(3, 4)" for messages.
std::string shape_text(at::IntArrayRef s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

/// Match `weights` to the engine's `current` tensors by name and shape; throws
/// NNC_ERR_SHAPE naming the first difference (another architecture).
void match_weights(const std::map<std::string, at::Tensor> &current, const std::map<std::string, at::Tensor> &weights,
                   const char *engine) {
    for (const auto &[name, t] : current) {
        auto it = weights.find(name);
        if (it == weights.end())
            throw Error(NNC_ERR_SHAPE, std::string("the trainer's module has no weight '") + name + "', which the " +
                                           engine + " model holds: another architecture; nothing was changed");
        if (it->second.sizes() != t.sizes() || it->second.scalar_type() != t.scalar_type())
            throw Error(NNC_ERR_SHAPE, "weight '" + name + "' is " + shape_text(it->second.sizes()) + " " +
                                           c10::toString(it->second.scalar_type()) + " in the trainer and " +
                                           shape_text(t.sizes()) + " " + c10::toString(t.scalar_type()) +
                                           " in the model: another architecture; nothing was changed");
    }
    for (const auto &[name, t] : weights)
        if (current.count(name) == 0)
            throw Error(NNC_ERR_SHAPE, "the model holds no weight '" + name +
                                           "', which the trainer's module has: "
                                           "another architecture; nothing was changed");
}

}  // namespace nnc
