// model.cpp: a loaded model above the engine seam (engine.hpp): devices,
// arrays to tensors (in place, by strides), the contract check, guardrails,
// statistics and recording around each engine's forward call, with outputs
// copied into the caller's buffers. Arrays are host memory, or on the
// on-device route memory of the model's device. Format-specific code lives in
// the engines; device strings and pointers in device.cpp.
#include "model.hpp"

#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "device.hpp"
#include "engine.hpp"
#include "errors.hpp"
#include "model_impl.hpp"
#include "layout.hpp"
#include "record.hpp"
#include "json.hpp"
#include "stats.hpp"

#ifndef NNC_VERSION_STRING
#define NNC_VERSION_STRING "0.0.0"
#endif

namespace nnc {

namespace {

c10::ScalarType scalar_type(int dtype) {
    switch (dtype) {
        case NNC_FLOAT32: return torch::kFloat32;
        case NNC_FLOAT64: return torch::kFloat64;
        case NNC_INT32: return torch::kInt32;
        case NNC_INT64: return torch::kInt64;
        default: throw Error(NNC_ERR_DTYPE, "unknown dtype code " + std::to_string(dtype));
    }
}

std::string scalar_name(c10::ScalarType t) {
    switch (t) {
        case torch::kFloat32: return "float32";
        case torch::kFloat64: return "float64";
        case torch::kInt32: return "int32";
        case torch::kInt64: return "int64";
        default: return c10::toString(t);
    }
}

/// A tensor over the caller's memory on `device`, no copy. Torch has no negative
/// strides, so such dims are viewed forwards and listed in `flipped`.
struct HostView {
    torch::Tensor tensor;
    std::vector<int64_t> flipped;
};

HostView view_of(const nnc_array &a, const torch::Device &device = torch::kCPU) {
    const auto opts = torch::TensorOptions().dtype(scalar_type(a.dtype)).device(device);
    const Dims sizes = torch_sizes(a);
    const c10::IntArrayRef size_ref(sizes.data(), sizes.size());
    if (numel(a) == 0) return {torch::empty(size_ref, opts), {}};
    Dims strides = torch_strides(a);
    HostView v;
    char *base = static_cast<char *>(a.data);
    for (size_t d = 0; d < sizes.size(); ++d) {
        if (strides[d] >= 0) continue;
        base += strides[d] * (sizes[d] - 1) * static_cast<int64_t>(dtype_size(a.dtype));
        strides[d] = -strides[d];
        v.flipped.push_back(static_cast<int64_t>(d));
    }
    v.tensor = torch::from_blob(base, size_ref, c10::IntArrayRef(strides.data(), strides.size()), opts);
    return v;
}

/// An input as the model sees it (a copy only for negative strides).
torch::Tensor input_tensor(const nnc_array &a, const torch::Device &device = torch::kCPU) {
    HostView v = view_of(a, device);
    return v.flipped.empty() ? v.tensor : v.tensor.flip(v.flipped);
}

/// Write a result into the caller's output array.
void write_output(const nnc_array &a, const torch::Tensor &r, const torch::Device &device) {
    if (numel(a) == 0) return;
    HostView v = view_of(a, device);
    v.tensor.copy_(v.flipped.empty() ? r : r.flip(v.flipped));
}

/// scan_nonfinite for a tensor in device memory: the reduction runs on the
/// device and only one byte per column comes to the host. Returns the flat index
/// of the first non-finite element, or -1.
int64_t scan_on_device(const torch::Tensor &t, int64_t batch, uint8_t bit, std::vector<uint8_t> &col) {
    if (!t.is_floating_point()) return -1;
    const torch::Tensor bad = torch::isfinite(t).logical_not_().reshape({batch, -1});
    const torch::Tensor rows = bad.any(1).to(torch::kCPU, torch::kUInt8).contiguous();
    const uint8_t *r = rows.data_ptr<uint8_t>();
    int64_t first_row = -1;
    for (int64_t b = 0; b < batch; ++b) {
        if (!r[b]) continue;
        col[static_cast<size_t>(b)] |= bit;
        if (first_row < 0) first_row = b;
    }
    if (first_row < 0) return -1;
    const int64_t within = bad[first_row].to(torch::kInt64).argmax().item<int64_t>();  // the first true entry
    return first_row * bad.size(1) + within;
}

/// A tensor's bytes as a record array (C order, as the model sees it).
NpyArray record_of(const std::string &name, const torch::Tensor &t) {
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    NpyArray a;
    a.name = name;
    a.dtype = c.scalar_type() == torch::kFloat32   ? NNC_FLOAT32
              : c.scalar_type() == torch::kFloat64 ? NNC_FLOAT64
              : c.scalar_type() == torch::kInt32   ? NNC_INT32
              : c.scalar_type() == torch::kInt64   ? NNC_INT64
                                                   : 0;
    if (a.dtype == 0)
        throw Error(NNC_ERR_DTYPE, "cannot record '" + name + "' of type " + scalar_name(c.scalar_type()));
    a.shape = c.sizes().vec();
    a.bytes.assign(static_cast<const char *>(c.data_ptr()), c.numel() * c.element_size());
    return a;
}

void check_record_name(const std::string &name) {
    if (name.empty() || name.size() >= NNC_NAME_LEN ||
        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
            std::string::npos)
        throw Error(NNC_ERR_ARGUMENT, "record array name '" + name + "' must be 1 to " +
                                          std::to_string(NNC_NAME_LEN - 1) + " letters, digits, '_', '-' or '.'");
}

}  // namespace

Model::Model(const std::string &path, const std::string &device, const Policy &policy)
    : impl_(std::make_unique<Impl>()) {
    // A native program runs on the CPU only: "auto" means the CPU, and any GPU
    // is refused with that reason whether or not this host has one.
    const bool native = is_native_file(path);
    if (native && device != "" && device != "cpu" && device != "auto") {
        resolve_device(device == "cuda" || device.rfind("cuda:", 0) == 0 ? "cpu" : device);  // a malformed string
        throw Error(NNC_ERR_NO_DEVICE, "'" + path +
                                           "' is a native program, which runs on the CPU only; load it with "
                                           "device 'cpu' (asked for '" +
                                           device + "')");
    }
    const DeviceChoice dev = native ? DeviceChoice{"cpu", device == "auto" ? "auto: a native program runs on the "
                                                                             "CPU only"
                                                                           : "requested"}
                                    : resolve_device(device);
    get_num_threads();  // a bad NN_CLOSURE_NUM_THREADS fails the load, not a later call
    impl_->path = path;
    impl_->policy = policy;
    impl_->device = torch::Device(dev.device);
    impl_->device_reason = dev.reason;
    LoadOptions options;
    options.trusted_sha256 = policy.trusted_sha256;
    options.engine = policy.engine;
    impl_->engine = open_engine(path, impl_->device, options);
    const std::string &json = impl_->engine->contract_json();
    if (!json.empty()) impl_->contract = std::make_unique<Contract>(parse_contract(json));
    if (policy.ood != Policy::Ood::Off) setup_ood(path);
    RecordSetup env = setup_from_environment(path);
    if (!env.dir.empty()) record_start(env.dir, env.every, env.max_bytes);
}

Model::~Model() = default;

void Model::setup_ood(const std::string &path) {
    const Contract *c = impl_->contract.get();
    const json::Value *ood = nullptr;
    json::Value doc;
    if (c) {
        doc = json::parse(c->json);
        ood = doc.find("ood");
    }
    const json::Value *out = ood ? ood->find("output") : nullptr;
    if (!out || !out->is(json::Value::Kind::String))
        throw Error(NNC_ERR_ARGUMENT,
                    "ood=" + std::string(impl_->policy.ood == Policy::Ood::Flag ? "flag" : "fallback") +
                        " needs a model with an out-of-distribution score, and '" + path +
                        "' declares none (export a pyclosure.ood.GuardedClosure)");
    for (size_t k = 0; k < c->outputs.size(); ++k)
        if (c->outputs[k].name == out->string) impl_->ood_output = static_cast<int>(k);
    if (impl_->ood_output < 0)
        throw Error(NNC_ERR_FORMAT, "the contract's ood output '" + out->string + "' is not one of its outputs");
    const json::Value *t = ood->find("threshold");
    if (impl_->policy.has_threshold) impl_->ood_threshold = impl_->policy.ood_threshold;
    else if (t && t->is(json::Value::Kind::Number)) impl_->ood_threshold = t->number;
    else throw Error(NNC_ERR_FORMAT, "the contract's ood entry has no numeric threshold: give ood_threshold=X");
}

const Contract *Model::contract() const { return impl_->contract.get(); }

std::string Model::device() const { return impl_->device.str(); }

std::string Model::engine() const { return impl_->engine->name(); }

void Model::forward(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs,
                    int num_fallback, const nnc_array *fallback, const nnc_array *flags, bool on_device) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
        CallThreads threads;
        run(num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags, on_device, t0);
    } catch (...) {
        impl_->stats.add_error();
        throw;
    }
}

namespace {

/// The call's argument counts and arrays against the contract, or, for a plain
/// TorchScript file, each array on its own and the count against forward's arity.
void check_arguments(const Contract *c, const Engine &engine, int num_inputs, const nnc_array *inputs, int num_outputs,
                     const nnc_array *outputs) {
    if (num_inputs < 0 || num_outputs < 0) throw Error(NNC_ERR_NARGS, "negative number of inputs or outputs");
    if (num_inputs > 0) require_nonnull(inputs, "inputs");
    if (num_outputs > 0) require_nonnull(outputs, "outputs");
    if (c) {
        check_call(*c, num_inputs, inputs, num_outputs, outputs);
        return;
    }
    for (int i = 0; i < num_inputs; ++i) validate(inputs[i], "input " + std::to_string(i + 1));
    for (int i = 0; i < num_outputs; ++i) validate(outputs[i], "output " + std::to_string(i + 1));
    const int arity = engine.arity();
    if (arity >= 0 && num_inputs != arity)
        throw Error(NNC_ERR_NARGS, "the model's forward takes " + std::to_string(arity) + " input(s), got " +
                                       std::to_string(num_inputs));
}

/// Output `i` as the model returned it, checked against the caller's array
/// before anything is written: dtype, shape, and strides that do not overlap.
void check_result(const Contract *c, int i, const nnc_array &o, const torch::Tensor &r) {
    if (r.scalar_type() != scalar_type(o.dtype))
        throw Error(NNC_ERR_DTYPE, out_label(c, i) + ": the model returned " + scalar_name(r.scalar_type()) +
                                       ", the output array is " + dtype_name(o.dtype));
    const Dims want = torch_sizes(o);
    if (r.sizes() != c10::IntArrayRef(want.data(), want.size()))
        throw Error(NNC_ERR_SHAPE, out_label(c, i) + ": the model returned shape " +
                                       format_dims(r.sizes().data(), r.sizes().size(), o.order) +
                                       ", the output array has shape " + caller_shape(o));
    check_no_overlap(c, i, o);
}

}  // namespace

void check_no_overlap(const Contract *c, int i, const nnc_array &o) {
    const Dims sizes = torch_sizes(o), strides = torch_strides(o);
    for (size_t d = 0; d < sizes.size(); ++d)
        if (strides[d] == 0 && sizes[d] > 1)
            throw Error(NNC_ERR_ARGUMENT, out_label(c, i) +
                                              ": its strides make elements overlap (stride 0 "
                                              "along a dimension of extent " +
                                              std::to_string(sizes[d]) + ")");
}

void throw_nonfinite(const Contract *c, bool output, int i, const nnc_array &a, int64_t first, int64_t batch,
                     double v) {
    const int64_t b = first / (numel(a) / batch);
    const std::string value = std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
    const std::string where =
        a.order == NNC_ORDER_F
            ? "column " + std::to_string(b + 1) + " of " + std::to_string(batch) + " (the last Fortran index)"
            : "batch row " + std::to_string(b) + " of " + std::to_string(batch) + " (0-based)";
    const std::string what = output ? out_label(c, i) + " of the model"
                                    : "input " + (c ? "'" + c->inputs[static_cast<size_t>(i)].name + "' " : "") +
                                          "(argument " + std::to_string(i + 1) + ")";
    throw Error(NNC_ERR_NONFINITE, what + " has " + value + " in " + where +
                                       "; load with nonfinite=fallback to give such columns the host's result");
}

FlagCounts count_flags(const std::vector<uint8_t> &col, int64_t batch, uint8_t replace, std::vector<int64_t> &rows) {
    FlagCounts counts;
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t f = col[static_cast<size_t>(b)];
        if (!f) continue;
        counts.nonfinite_in += (f & kNonFiniteInput) != 0;
        counts.nonfinite_out += (f & kNonFiniteOutput) != 0;
        counts.ood += (f & kOod) != 0;
        if (f & replace) rows.push_back(b);
    }
    counts.replaced = static_cast<int64_t>(rows.size());
    return counts;
}

/// One forward call on the tensor path: the caller's arrays, where they live,
/// and the per-column guardrail flags its steps fill in. Model::run lists the
/// steps in order.
struct Model::Call {
    const Model &model;
    const Contract *c;
    int num_inputs;
    const nnc_array *inputs;
    int num_outputs;
    const nnc_array *outputs;
    int num_fallback;
    const nnc_array *fallback;
    const nnc_array *flags;
    bool on_device;
    int64_t batch;
    torch::Device at;           // where the caller's arrays live
    std::vector<uint8_t> &col;  // per-column nnc_flag bits

    Call(const Model &model, const Contract *c, int num_inputs, const nnc_array *inputs, int num_outputs,
         const nnc_array *outputs, int num_fallback, const nnc_array *fallback, const nnc_array *flags, bool on_device,
         int64_t batch, torch::Device at, std::vector<uint8_t> &col)
        : model(model), c(c), num_inputs(num_inputs), inputs(inputs), num_outputs(num_outputs), outputs(outputs),
          num_fallback(num_fallback), fallback(fallback), flags(flags), on_device(on_device), batch(batch), at(at),
          col(col) {}

    /// The inputs as tensors on the model's device (in place where they can
    /// be), scanned for non-finite values and, when `recorded`, kept for the record.
    std::vector<torch::Tensor> input_tensors(std::vector<NpyArray> *recorded) const {
        const Engine &engine = *model.impl_->engine;
        std::vector<torch::Tensor> args;
        args.reserve(static_cast<size_t>(num_inputs));
        for (int i = 0; i < num_inputs; ++i) {
            torch::Tensor t = input_tensor(inputs[i], at);
            if (engine.needs_contiguous() && !t.is_contiguous()) t = t.contiguous();  // a strided view: one copy
            if (model.impl_->policy.nonfinite != Policy::NonFinite::Off)
                model.check_finite(t, inputs[i], c, false, i, batch, col, on_device);
            if (recorded) recorded->push_back(record_of(io_name(c, false, i), t));
            args.emplace_back(t.device() == model.impl_->device ? t : t.to(model.impl_->device));
        }
        return args;
    }

    /// The engine's outputs (empty ones of the checked shapes for an empty batch
    /// the engine cannot run); its errors become NNC_ERR_RUNTIME.
    std::vector<torch::Tensor> run_engine(std::vector<torch::Tensor> args) const {
        Engine &engine = *model.impl_->engine;
        std::vector<torch::Tensor> results;
        try {
            if (batch == 0 && !engine.runs_empty_batch()) {
                for (int i = 0; i < num_outputs; ++i)
                    results.push_back(torch::empty(torch_sizes(outputs[i]).vec(),
                                                   torch::TensorOptions().dtype(scalar_type(outputs[i].dtype))));
            } else {
                results = engine.run(std::move(args));
            }
        } catch (const Error &) {
            throw;
        } catch (const std::exception &e) {
            throw Error(NNC_ERR_RUNTIME, "the model raised an error: " + torch_message(e));
        }
        if (static_cast<int>(results.size()) != num_outputs)
            throw Error(NNC_ERR_NARGS, "the model returned " + std::to_string(results.size()) + " output(s), but " +
                                           std::to_string(num_outputs) + " output array(s) were given");
        return results;
    }

    /// Every output checked against its array, and scanned for non-finite values.
    void check_results(std::vector<torch::Tensor> &results) const {
        for (int i = 0; i < num_outputs; ++i) {  // check all before writing any
            torch::Tensor &r = results[static_cast<size_t>(i)];
            check_result(c, i, outputs[i], r);
            if (model.impl_->policy.nonfinite != Policy::NonFinite::Off) {
                if (!on_device && !r.device().is_cpu()) r = r.to(torch::kCPU);  // the copy the host route makes anyway
                model.check_finite(r, outputs[i], c, true, i, batch, col, on_device);
            }
        }
    }

    /// Columns whose out-of-distribution score is over the threshold get kOod.
    void flag_ood(const std::vector<torch::Tensor> &results) const {
        const Impl &impl = *model.impl_;
        torch::Tensor score = results[static_cast<size_t>(impl.ood_output)].to(torch::kCPU).contiguous();
        scan_ood(score.data_ptr(), outputs[impl.ood_output].dtype, batch, batch ? score.numel() / batch : 0,
                 impl.ood_threshold, col);
    }

    /// The flagged columns counted by kind; `rows` gets those the policy replaces.
    FlagCounts count_flags(std::vector<int64_t> &rows) const {
        const Policy &pol = model.impl_->policy;
        const uint8_t replace =
            (pol.nonfinite == Policy::NonFinite::Fallback ? kNonFiniteInput | kNonFiniteOutput : 0) |
            (pol.ood == Policy::Ood::Fallback ? kOod : 0);
        return nnc::count_flags(col, batch, replace, rows);
    }

    /// The host's fallback values in the flagged `rows`, the network's elsewhere.
    void replace_flagged(std::vector<torch::Tensor> &results, const std::vector<int64_t> &rows) const {
        if (rows.empty()) return;
        torch::Tensor idx = torch::tensor(rows, torch::kInt64);
        for (int i = 0; i < num_fallback; ++i) {
            torch::Tensor &r = results[static_cast<size_t>(i)];
            torch::Tensor fb = input_tensor(fallback[i], at).to(r.device());
            r = r.clone();
            r.index_copy_(0, idx.to(r.device()), fb.index_select(0, idx.to(r.device())));
        }
    }

    /// The outputs into the caller's arrays, and the column flags if asked for.
    void write(const std::vector<torch::Tensor> &results) const {
        for (int i = 0; i < num_outputs; ++i) write_output(outputs[i], results[static_cast<size_t>(i)], at);
        if (flags && batch > 0) {
            HostView v = view_of(*flags, at);
            v.tensor.copy_(torch::from_blob(col.data(), {batch}, torch::kUInt8).to(torch::kInt32));
        }
    }

    /// The record of call number `call`: its inputs and the network's outputs, as replay recomputes them.
    void record(Recorder &rec, int64_t call, std::vector<NpyArray> recorded_inputs,
                const std::vector<torch::Tensor> &network) const {
        std::vector<NpyArray> out;
        for (int i = 0; i < num_outputs; ++i)
            out.push_back(record_of(io_name(c, true, i), network[static_cast<size_t>(i)]));
        rec.open(call, get_num_threads(), std::move(recorded_inputs), std::move(out));
    }
};

void Model::run(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs, int num_fallback,
                const nnc_array *fallback, const nnc_array *flags, bool on_device,
                std::chrono::steady_clock::time_point t0) {
    const Contract *c = impl_->contract.get();
    check_arguments(c, *impl_->engine, num_inputs, inputs, num_outputs, outputs);
    const int64_t batch = num_inputs > 0 && inputs[0].rank > 0 ? torch_sizes(inputs[0])[0] : 1;
    check_guard_arrays(c, num_outputs, outputs, num_fallback, fallback, flags, batch);
    if (on_device) check_resident_arrays(c, num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags);
    if (impl_->engine->raw()) {
        run_raw(num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags, batch, t0);
        return;
    }
    Recorder *rec = impl_->recorder.get();
    if (rec) rec->flush();  // the previous call's record, with its host arrays
    const bool recorded = rec && rec->sample();
    c10::InferenceMode inference;
    thread_local std::vector<uint8_t> col;  // per-column nnc_flag bits, reused across calls
    col.assign(static_cast<size_t>(batch), 0);
    const torch::Device at = on_device ? impl_->device : torch::Device(torch::kCPU);  // where the arrays live
    const Call call(*this, c, num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags, on_device, batch,
                    at, col);
    std::vector<NpyArray> recorded_inputs;
    std::vector<torch::Tensor> results = call.run_engine(call.input_tensors(recorded ? &recorded_inputs : nullptr));
    call.check_results(results);
    if (impl_->policy.ood != Policy::Ood::Off) call.flag_ood(results);
    std::vector<int64_t> rows;
    const FlagCounts counts = call.count_flags(rows);
    const std::vector<torch::Tensor> network = recorded ? results : std::vector<torch::Tensor>();
    call.replace_flagged(results, rows);
    call.write(results);
    wait_for(impl_->device);  // outputs are complete when the call returns
    const int64_t n = ++impl_->calls;
    if (recorded) call.record(*rec, n, std::move(recorded_inputs), network);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    impl_->stats.add_call(seconds, batch, counts.nonfinite_in, counts.nonfinite_out, counts.ood, counts.replaced);
}

void Model::check_guard_arrays(const Contract *c, int num_outputs, const nnc_array *outputs, int num_fallback,
                               const nnc_array *fallback, const nnc_array *flags, int64_t batch) const {
    const Policy &pol = impl_->policy;
    if (num_fallback < 0 || num_fallback > num_outputs)
        throw Error(NNC_ERR_NARGS, "num_fallback is " + std::to_string(num_fallback) + "; it must be 0 to " +
                                       std::to_string(num_outputs) + " (one per output, from the first)");
    if (num_fallback > 0) require_nonnull(fallback, "fallback");
    if (pol.needs_fallback() && num_fallback == 0)
        throw Error(NNC_ERR_ARGUMENT, "the model was loaded with " + pol.describe() +
                                          ": every forward call must pass the host's fallback result "
                                          "(nnc_model_forward_fallback; Fortran nn_forward(..., fallback=...))");
    for (int i = 0; i < num_fallback; ++i) {
        const std::string what = "fallback for " + out_label(c, i);
        validate(fallback[i], what);
        if (fallback[i].dtype != outputs[i].dtype)
            throw Error(NNC_ERR_DTYPE,
                        what + ": expected " + dtype_name(outputs[i].dtype) + ", got " + dtype_name(fallback[i].dtype));
        if (torch_sizes(fallback[i]) != torch_sizes(outputs[i]))
            throw Error(NNC_ERR_SHAPE,
                        what + ": expected shape " + caller_shape(outputs[i]) + ", got " + caller_shape(fallback[i]));
    }
    if (flags) {
        validate(*flags, "flags");
        if (flags->dtype != NNC_INT32)
            throw Error(NNC_ERR_DTYPE, "flags: expected int32, got " + dtype_name(flags->dtype));
        if (numel(*flags) != batch)
            throw Error(NNC_ERR_SHAPE, "flags: expected " + std::to_string(batch) + " entries (one per column), got " +
                                           std::to_string(numel(*flags)));
    }
}

void Model::check_resident_arrays(const Contract *c, int num_inputs, const nnc_array *inputs, int num_outputs,
                                  const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                                  const nnc_array *flags) const {
    const torch::Device &dev = impl_->device;
    for (int i = 0; i < num_inputs; ++i)
        check_resident(inputs[i].data, dev,
                       "input " + (c ? "'" + c->inputs[static_cast<size_t>(i)].name + "' " : "") + "(argument " +
                           std::to_string(i + 1) + ")");
    for (int i = 0; i < num_outputs; ++i) check_resident(outputs[i].data, dev, out_label(c, i));
    for (int i = 0; i < num_fallback; ++i) check_resident(fallback[i].data, dev, "fallback for " + out_label(c, i));
    if (flags) check_resident(flags->data, dev, "flags");
}

void Model::check_finite(const torch::Tensor &t, const nnc_array &a, const Contract *c, bool output, int i,
                         int64_t batch, std::vector<uint8_t> &col, bool on_device) const {
    if (batch == 0 || t.numel() == 0) return;
    torch::Tensor d = t.is_contiguous() ? t : t.contiguous();
    const int64_t per = d.numel() / batch;
    const uint8_t bit = output ? kNonFiniteOutput : kNonFiniteInput;
    const int64_t first = on_device || !d.device().is_cpu()
                              ? scan_on_device(d, batch, bit, col)  // also on a CPU
                              : scan_nonfinite(d.data_ptr(), a.dtype, batch, per, bit, col);
    if (first < 0 || impl_->policy.nonfinite != Policy::NonFinite::Error) return;
    // one element (a copy to the host on a device)
    throw_nonfinite(c, output, i, a, first, batch, d.reshape({-1})[first].item<double>());
}

const Policy &Model::policy() const { return impl_->policy; }

nnc_stats Model::stats() const { return impl_->stats.snapshot(); }

std::string Model::stats_summary() const {
    return impl_->stats.summary(impl_->path) + "; device " + impl_->device.str() + " (" + impl_->device_reason + ")";
}

void Model::record_start(const std::string &dir, int every, int64_t max_bytes) {
    if (impl_->recorder)
        throw Error(NNC_ERR_RECORD,
                    "the model is already recording into '" + impl_->recorder->dir() + "'; stop that recording first");
    RecordSetup s;
    s.dir = dir;
    s.every = every;
    s.max_bytes = max_bytes;
    s.model_path = impl_->path;
    s.device = impl_->device.str();
    s.libtorch = TORCH_VERSION;
    s.engine = impl_->engine->name();
    s.bridge = NNC_VERSION_STRING;
    impl_->recorder = std::make_unique<Recorder>(s);
    impl_->recorder->set_weights(impl_->weights_version, impl_->weights_sha256);
}

bool Model::record_array(const std::string &name, const nnc_array &a) {
    check_record_name(name);
    validate(a, "host array '" + name + "'");
    if (!impl_->recorder) return false;
    c10::InferenceMode inference;
    NpyArray r = record_of(name, input_tensor(a));
    if (a.order == NNC_ORDER_F) {  // keep the caller's shape; torch order reversed is Fortran order
        r.shape.assign(a.shape, a.shape + a.rank);
        r.fortran_order = true;
    }
    return impl_->recorder->add(std::move(r));
}

void Model::record_stop() {
    if (!impl_->recorder) return;
    std::unique_ptr<Recorder> r = std::move(impl_->recorder);
    r->finish();
}

std::string Model::record_dir() const { return impl_->recorder ? impl_->recorder->dir() : std::string(); }

const char *libtorch_version() { return TORCH_VERSION; }

}  // namespace nnc
