// engine_native.cpp: the native engine (.nnp programs run by the plain C
// kernels of cbridge/native, no torch on the call path). The program is loaded
// from the bytes engine.cpp read, its contract comes from the file, and calls
// arrive as raw buffers (Engine::raw): the model hands dense C-order input and
// output buffers and the engine splits the columns over threads, each with its
// own workspace. A column's bits do not depend on the split (README.md there).
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "engine.hpp"
#include "errors.hpp"
#include "json.hpp"
#include "nn_native.h"

namespace nnc {

namespace {

/// Fewest columns a thread is given: below 2x this a call runs on one thread.
constexpr int64_t kGrain = 32;

/// A workspace per thread, grown to the largest program it served, never shrunk.
void *workspace(size_t bytes) {
    thread_local std::vector<unsigned char> space;
    if (space.size() < bytes) space.resize(bytes);
    return space.data();
}

std::string dtype_of(int nnn) { return nnn == NNN_F32 ? "float32" : "float64"; }

class NativeEngine final : public Engine {
public:
    NativeEngine(const std::string &path, const std::string &bytes, const c10::Device &device) {
        if (!device.is_cpu())
            throw Error(NNC_ERR_NO_DEVICE, "'" + path +
                                               "' is a native program, which runs on the CPU only; load it "
                                               "with device 'cpu' (asked for '" +
                                               device.str() + "')");
        char msg[512] = {};
        nnn_program *p = nullptr;
        if (nnn_load(bytes.data(), bytes.size(), &p, msg, sizeof msg) != NNN_OK)
            throw Error(NNC_ERR_FORMAT, "'" + path + "' is not a valid native program: " + msg);
        program_.reset(p);
        size_t size = 0;
        const char *text = nnn_contract(p, &size);
        contract_.assign(text, size);
        inputs_ = nnn_num_inputs(p);
        check_contract(path);
        window_ = nnn_is_window(p) != 0;
        work_bytes_ = nnn_workspace_size(p);
    }

    const char *name() const override { return "native"; }
    const std::string &contract_json() const override { return contract_; }
    int arity() const override { return inputs_; }
    bool needs_contiguous() const override { return true; }
    bool runs_empty_batch() const override { return false; }
    bool raw() const override { return true; }

    std::vector<at::Tensor> run(std::vector<at::Tensor>) override {
        throw Error(NNC_ERR_RUNTIME, "the native engine runs raw buffers, not tensors");
    }

    void run_raw(int64_t batch, int num_inputs, const Dims *in_sizes, const void *const *in, int num_outputs,
                 const Dims *out_sizes, void *const *out, int threads) override {
        if (num_inputs != inputs_ || num_outputs != 1)
            throw Error(NNC_ERR_NARGS,
                        "this native program takes " + std::to_string(inputs_) + " input(s) and gives one output");
        const Dims &sz = in_sizes[0];
        const int64_t ncells = window_ ? sz[sz.size() - 1] : 0;
        int64_t n_in = 0, n_out = 0;
        if (nnn_sizes(program_.get(), ncells, &n_in, &n_out) != NNN_OK)
            throw Error(NNC_ERR_SHAPE,
                        "a native window program needs at least one cell, got " + std::to_string(ncells));
        int64_t per = 1;
        for (size_t d = 1; d < sz.size(); ++d) per *= sz[d];
        if (per != n_in)
            throw Error(NNC_ERR_SHAPE, "a column of the input holds " + std::to_string(per) +
                                           " values; the native program takes " + std::to_string(n_in));
        for (int i = 1; i < num_inputs; ++i) {
            int64_t n = 1;
            for (size_t d = 1; d < in_sizes[i].size(); ++d) n *= in_sizes[i][d];
            if (n != 1 || in_sizes[i].size() == 0 || in_sizes[i][0] != batch)
                throw Error(NNC_ERR_SHAPE, "input " + std::to_string(i + 1) +
                                               " of a native program holds one value "
                                               "a column (the surface value)");
        }
        int64_t per_out = 1;
        for (size_t d = 1; d < out_sizes[0].size(); ++d) per_out *= out_sizes[0][d];
        if (per_out != n_out || out_sizes[0].size() == 0 || out_sizes[0][0] != batch)
            throw Error(NNC_ERR_SHAPE, "a column of the output holds " + std::to_string(per_out) +
                                           " values; the native program gives " + std::to_string(n_out));
        if (batch <= 0) return;
        void *y = out[0];
        if (threads <= 1 || batch < 2 * kGrain) {
            run_range(ncells, in, y, 0, batch);
            return;
        }
        const int64_t grain = std::max(kGrain, (batch + threads - 1) / threads);
        at::parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) { run_range(ncells, in, y, begin, end); });
    }

    bool takes_program() const override { return true; }

    /// Swap in a program packed with the new weights (pyclosure._native.encode):
    /// it must run the same network (dtype, window, sizes). No recompilation.
    void update_weights(const std::map<std::string, at::Tensor> &, const std::string &program) override {
        char msg[512] = {};
        nnn_program *p = nullptr;
        if (nnn_load(program.data(), program.size(), &p, msg, sizeof msg) != NNN_OK)
            throw Error(NNC_ERR_SHAPE,
                        std::string("the trainer's module does not make a valid native program: ") + msg);
        std::unique_ptr<nnn_program, Free> next(p);
        int64_t a_in = 0, a_out = 0, b_in = 0, b_out = 0;
        const int64_t cells = window_ ? 16 : 0;
        const bool same = nnn_dtype(p) == nnn_dtype(program_.get()) && (nnn_is_window(p) != 0) == window_ &&
                          nnn_sizes(p, cells, &a_in, &a_out) == NNN_OK &&
                          nnn_sizes(program_.get(), cells, &b_in, &b_out) == NNN_OK && a_in == b_in && a_out == b_out;
        if (!same)
            throw Error(NNC_ERR_SHAPE, "the trainer's module makes a native program of another shape or dtype than "
                                       "the model's: another architecture; nothing was changed");
        nnn_set_isa(p, nnn_isa(program_.get()), msg, sizeof msg);
        work_bytes_ = std::max(work_bytes_, nnn_workspace_size(p));
        program_.swap(next);
    }

private:
    struct Free {
        void operator()(nnn_program *p) const { nnn_free(p); }
    };

    void run_range(int64_t ncells, const void *const *x, void *y, int64_t begin, int64_t end) const {
        char msg[256];
        if (nnn_run_inputs(program_.get(), workspace(work_bytes_), ncells, inputs_, x, y, begin, end, msg,
                           sizeof msg) != NNN_OK)
            throw Error(NNC_ERR_RUNTIME, std::string("the native program refused the call: ") + msg);
    }

    /// The contract is the file's own: a native one, with the program's dtype throughout.
    void check_contract(const std::string &path) const {
        const std::string start = "'" + path + "': the native program's contract ";
        const json::Value doc = json::parse(contract_);
        const json::Value *format = doc.find("format");
        if (!format || !format->is(json::Value::Kind::String) || format->string != "native")
            throw Error(NNC_ERR_FORMAT, start + "does not say \"format\": \"native\"");
        const json::Value *engine = doc.find("engine");
        const json::Value *arith = engine ? engine->find("arith") : nullptr;
        if (!arith || !arith->is(json::Value::Kind::String) || arith->string != nnn_arith())
            throw Error(NNC_ERR_FORMAT, start + "names arithmetic contract '" +
                                            (arith && arith->is(json::Value::Kind::String) ? arith->string : "") +
                                            "'; this bridge implements " + nnn_arith());
        const std::string want = dtype_of(nnn_dtype(program_.get()));
        for (const char *kind : {"inputs", "outputs"}) {
            const size_t count = std::string(kind) == "inputs" ? static_cast<size_t>(inputs_) : 1;
            const json::Value *list = doc.find(kind);
            if (!list || !list->is(json::Value::Kind::Array) || list->array.size() != count)
                throw Error(NNC_ERR_FORMAT, start + "must list " + std::to_string(count) + " entr" +
                                                (count == 1 ? "y" : "ies") + " under '" + kind + "'");
            for (const json::Value &entry : list->array) {
                const json::Value *dt = entry.find("dtype");
                if (!dt || !dt->is(json::Value::Kind::String) || dt->string != want)
                    throw Error(NNC_ERR_FORMAT, start + "gives " + kind + " a dtype other than the program's " + want);
            }
        }
    }

    std::unique_ptr<nnn_program, Free> program_;
    std::string contract_;
    bool window_ = false;
    int inputs_ = 1;
    size_t work_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Engine> open_native(const std::string &path, const std::string &bytes, const c10::Device &device) {
    return std::make_unique<NativeEngine>(path, bytes, device);
}

}  // namespace nnc
