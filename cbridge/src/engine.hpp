// engine.hpp: what a model format must provide behind a handle. The contract,
// layout, guardrails, statistics and recording live above this seam, in
// model.cpp, and are the same for every engine. One file per engine:
// engine_torchscript.cpp (TorchScript .pt), engine_aoti.cpp (AOTInductor .pt2),
// engine_native.cpp (native programs .nnp, no torch on the call path); engine.cpp reads the file once, checks it is trusted, and picks the engine.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "layout.hpp"

namespace nnc {

class Engine {
public:
    virtual ~Engine() = default;
    /// "torchscript", "aotinductor" or "native" (as nnc_model_engine reports it).
    virtual const char *name() const = 0;
    /// The embedded pyclosure contract (JSON), "" when the file carries none.
    virtual const std::string &contract_json() const = 0;
    /// Number of inputs forward takes, -1 when the engine cannot tell.
    virtual int arity() const { return -1; }
    /// True when inputs must be dense in C order (the engine reads raw buffers
    /// without looking at strides); the model copies only views that are not.
    virtual bool needs_contiguous() const = 0;
    /// True when a call with zero columns may reach the engine.
    virtual bool runs_empty_batch() const = 0;
    /// Run prepared tensors (already on the model's device); throws on failure.
    /// Raw engines need not implement it.
    virtual std::vector<at::Tensor> run(std::vector<at::Tensor> inputs) = 0;

    /// True for an engine that runs raw host buffers (run_raw) and no tensors: the
    /// model then keeps torch off the call path.
    virtual bool raw() const { return false; }
    /// Raw engines: run `batch` columns. in[i] is input i, dense in C (torch) order,
    /// of torch-order sizes in_sizes[i]; out[i] is output i, dense in C order, of
    /// sizes out_sizes[i] (the engine checks both against its program). Splits the columns over `threads` threads
    /// (same bits for any count). No allocation in steady state; throws nnc::Error.
    virtual void run_raw(int64_t batch, int num_inputs, const Dims *in_sizes, const void *const *in, int num_outputs,
                         const Dims *out_sizes, void *const *out, int threads);

    /// Online training (nnc_train_sync): true when the engine takes new weights as
    /// one packed program (native) instead of named tensors.
    virtual bool takes_program() const { return false; }
    /// Replace the weights: `weights` by their module names (dense CPU tensors), or
    /// `program` (takes_program engines). Checks every name and shape first and
    /// changes nothing on a mismatch (NNC_ERR_SHAPE). Default: NNC_ERR_ARGUMENT.
    virtual void update_weights(const std::map<std::string, at::Tensor> &weights, const std::string &program);
};

/// Load options that concern the file itself, not the guardrails.
struct LoadOptions {
    std::vector<std::string> trusted_sha256;  ///< lower-case hex; empty: every file is trusted
    std::string engine;                       ///< "native", "torchscript" or "aoti": the only engine to open; "" any
};

/// Open `path` on `device` with the engine its content calls for. The file is
/// read once; a trusted list (options, or PYCLOSURE_TRUSTED_SHA256) is checked
/// against that content before any of it is loaded, and so is the engine the
/// host requires (options.engine: a file for another engine is NNC_ERR_FORMAT).
/// Throws nnc::Error: NNC_ERR_IO, NNC_ERR_FORMAT, NNC_ERR_UNTRUSTED, NNC_ERR_NO_DEVICE.
std::unique_ptr<Engine> open_engine(const std::string &path, const c10::Device &device, const LoadOptions &options);

/// The per-format openers engine.cpp dispatches to (`bytes` is the whole file).
std::unique_ptr<Engine> open_torchscript(const std::string &path, const std::string &bytes, const c10::Device &device);
std::unique_ptr<Engine> open_aoti(const std::string &path, const std::string &bytes, const c10::Device &device);
std::unique_ptr<Engine> open_native(const std::string &path, const std::string &bytes, const c10::Device &device);

/// The first bytes of a native program file (cbridge/native/README.md).
constexpr char kNativeMagic[] = "PYCLNATV";
/// True when the file at `path` starts with kNativeMagic (false when it cannot be read).
bool is_native_file(const std::string &path);

/// Check that `weights` has exactly the names, shapes and dtypes of the engine's
/// `current` weights; throws NNC_ERR_SHAPE naming the first difference (model_weights.cpp).
void match_weights(const std::map<std::string, at::Tensor> &current, const std::map<std::string, at::Tensor> &weights,
                   const char *engine);

/// A torch exception's message without the C++ backtrace, at most 4000 characters.
std::string torch_message(const std::exception &e);

}  // namespace nnc
