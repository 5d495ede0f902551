// model.hpp: a loaded model (an engine, its device, optional contract, the
// guardrails) behind a torch-free interface. Format-specific code lives in the
// engines behind engine.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>
#include <string>

#include "contract.hpp"
#include "nn_closure.h"
#include "policy.hpp"

namespace at {
class Tensor;
}

namespace nnc {

/// One named weight array handed to Model::update_weights (caller's memory).
struct NamedArray {
    std::string name;
    nnc_array array;
};

class Model {
public:
    /// Load `path` onto `device` ("cpu", "cuda", "cuda:N", "auto") with guardrails.
    Model(const std::string &path, const std::string &device, const Policy &policy = Policy());
    ~Model();
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;

    /// Check against the contract (if any), run, apply the guardrails, write
    /// outputs; see nnc_model_forward_fallback in nn_closure.h. With `on_device`
    /// every array lives in the memory of the model's device (checked), and is
    /// used there in place: nnc_model_forward_on_device.
    void forward(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs,
                 int num_fallback = 0, const nnc_array *fallback = nullptr, const nnc_array *flags = nullptr,
                 bool on_device = false);

    const Policy &policy() const;
    nnc_stats stats() const;
    std::string stats_summary() const;  ///< ends with the device and why it was chosen

    const Contract *contract() const;  ///< nullptr for a plain TorchScript file
    std::string device() const;
    std::string engine() const;  ///< "torchscript", "aotinductor" or "native"

    /// Recording for replay (see record.hpp). Not to be called while another
    /// thread runs forward on the same model.
    void record_start(const std::string &dir, int every, int64_t max_bytes);
    /// Add a host array to the open record; false when none is open.
    bool record_array(const std::string &name, const nnc_array &a);
    void record_stop();
    /// The directory being recorded into, "" when not recording.
    std::string record_dir() const;

    /// Online training (train.cpp, model_weights.cpp): the file, its engine's
    /// contract ("" if none), whether the engine takes new weights as one packed
    /// program (native) rather than by name.
    const std::string &path() const;
    std::string contract_json() const;
    bool takes_program() const;
    /// Put new weights into the running engine (nnc_train_sync): by name, or a
    /// packed program. Checks everything first; throws NNC_ERR_SHAPE and changes
    /// nothing when the network differs. Not while forward runs on another thread.
    void update_weights(const std::vector<NamedArray> &weights, const std::string &program);
    /// The weight version now running and its SHA-256 (named in later records).
    void set_weights_version(int64_t version, const std::string &sha256);

private:
    void run(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs, int num_fallback,
             const nnc_array *fallback, const nnc_array *flags, bool on_device,
             std::chrono::steady_clock::time_point t0);
    /// The torch-free path of raw engines (model_raw.cpp), after the call checks.
    void run_raw(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs, int num_fallback,
                 const nnc_array *fallback, const nnc_array *flags, int64_t batch,
                 std::chrono::steady_clock::time_point t0);
    void check_guard_arrays(const Contract *c, int num_outputs, const nnc_array *outputs, int num_fallback,
                            const nnc_array *fallback, const nnc_array *flags, int64_t batch) const;
    void check_resident_arrays(const Contract *c, int num_inputs, const nnc_array *inputs, int num_outputs,
                               const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                               const nnc_array *flags) const;
    /// Mark columns with a NaN or Inf; on the on-device route (and for tensors
    /// on a GPU) the scan runs where the tensor lives.
    void check_finite(const at::Tensor &t, const nnc_array &a, const Contract *c, bool output, int i, int64_t batch,
                      std::vector<uint8_t> &col, bool on_device) const;
    void setup_ood(const std::string &path);
    struct Call;  ///< one forward call on the tensor path, as its steps (model.cpp)
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The model behind a live handle (api.cpp's registry); throws NNC_ERR_HANDLE.
Model &live_model(nnc_model m);

/// libtorch version "MAJOR.MINOR.PATCH"; thread-count control.
const char *libtorch_version();
/// The intra-op thread count of every call (threads.cpp): nnc_set_num_threads, else
/// NN_CLOSURE_NUM_THREADS, else 1. The first call reads the environment (and may throw).
void set_num_threads(int n);
int get_num_threads();

/// Runs a call with get_num_threads() intra-op threads and restores the caller's OpenMP
/// thread count when it ends.
class CallThreads {
public:
    CallThreads();
    ~CallThreads();
    CallThreads(const CallThreads &) = delete;
    CallThreads &operator=(const CallThreads &) = delete;

private:
    int host_;
};

}  // namespace nnc
