// engine_torchscript.cpp: the TorchScript engine (.pt files, including plain
// ones made for other tools). Deprecated by PyTorch; kept for existing files.
#include <torch/script.h>

#include <optional>
#include <sstream>

#include "engine.hpp"
#include "errors.hpp"

namespace nnc {

namespace {

const char *const kContractFile = "pyclosure_contract.json";

/// The tensors of a forward result, appended to `out`.
void as_tensors(const c10::IValue &r, std::vector<at::Tensor> &out) {
    if (r.isTensor()) {
        out.push_back(r.toTensor());
    } else if (r.isTuple()) {
        for (const auto &e : r.toTupleRef().elements()) {
            if (!e.isTensor()) throw Error(NNC_ERR_RUNTIME, "the model returned a tuple holding a non-tensor");
            out.push_back(e.toTensor());
        }
    } else if (r.isTensorList()) {
        for (const auto &t : r.toTensorVector()) out.push_back(t);
    } else {
        throw Error(NNC_ERR_RUNTIME, "the model returned " + r.tagKind() + ", expected tensors");
    }
}

class TorchScriptEngine final : public Engine {
public:
    TorchScriptEngine(const std::string &path, const std::string &bytes, const c10::Device &device) {
        torch::jit::ExtraFilesMap extra{{kContractFile, ""}};
        try {
            std::istringstream in(bytes);
            module_ = torch::jit::load(in, device, extra);
            module_.eval();
        } catch (const std::exception &e) {
            throw Error(NNC_ERR_FORMAT, "'" + path +
                                            "' is not a loadable TorchScript file (not TorchScript, "
                                            "truncated or corrupt): " +
                                            torch_message(e));
        }
        contract_ = extra[kContractFile];
        try {
            forward_.emplace(module_.get_method("forward"));
            const auto &schema = forward_->function().getSchema();
            arity_ = static_cast<int>(schema.arguments().size()) - 1;  // minus self
            for (const auto &arg : schema.arguments())
                if (arg.default_value().has_value()) arity_ = -1;  // optional args: let torch judge
        } catch (const std::exception &e) {
            throw Error(NNC_ERR_FORMAT, "'" + path + "' has no forward method: " + torch_message(e));
        }
    }

    const char *name() const override { return "torchscript"; }
    const std::string &contract_json() const override { return contract_; }
    int arity() const override { return arity_; }
    bool needs_contiguous() const override { return false; }  // torch reads strides
    bool runs_empty_batch() const override { return true; }

    /// Copy each parameter and buffer in place: no reload, no recompilation.
    void update_weights(const std::map<std::string, at::Tensor> &weights, const std::string &) override {
        std::map<std::string, at::Tensor> current;
        for (const auto &p : module_.named_parameters(true)) current[p.name] = p.value;
        for (const auto &b : module_.named_buffers(true)) current[b.name] = b.value;
        match_weights(current, weights, "TorchScript");
        torch::NoGradGuard no_grad;
        for (auto &[name, t] : current) t.copy_(weights.at(name));
    }

    std::vector<at::Tensor> run(std::vector<at::Tensor> inputs) override {
        std::vector<c10::IValue> args;
        args.reserve(inputs.size() + 1);  // + 1: the method puts the module in front, without reallocating
        for (at::Tensor &t : inputs) args.emplace_back(std::move(t));
        inputs.clear();  // its storage holds the results: no allocation for as many outputs as inputs
        as_tensors((*forward_)(std::move(args)), inputs);
        return inputs;
    }

private:
    torch::jit::Module module_;
    std::optional<torch::jit::Method> forward_;  // looked up once
    std::string contract_;
    int arity_ = -1;
};

}  // namespace

std::unique_ptr<Engine> open_torchscript(const std::string &path, const std::string &bytes, const c10::Device &device) {
    return std::make_unique<TorchScriptEngine>(path, bytes, device);
}

}  // namespace nnc
