// model.cpp: everything that touches libtorch: loading TorchScript with its
// embedded contract, devices, arrays to tensors (in place, by strides), and
// the forward call with outputs copied into the caller's buffers.
#include "model.hpp"

#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "errors.hpp"
#include "layout.hpp"
#include "record.hpp"

#ifndef NNC_VERSION_STRING
#define NNC_VERSION_STRING "0.0.0"
#endif

namespace nnc {

static const char *const kContractFile = "pyclosure_contract.json";

struct Model::Impl {
    torch::jit::Module module;
    torch::Device device{torch::kCPU};
    std::unique_ptr<Contract> contract;
    int forward_arity = -1;  // number of forward() arguments, -1 if unknown
    std::string path;
    std::atomic<int64_t> calls{0};       // forward calls that succeeded
    std::unique_ptr<Recorder> recorder;  // while recording
};

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

/// A tensor over the caller's memory, no copy (CPU). Torch has no negative
/// strides, so such dims are viewed forwards and listed in `flipped`.
struct HostView {
    torch::Tensor tensor;
    std::vector<int64_t> flipped;
};

HostView view_of(const nnc_array &a) {
    auto opts = torch::TensorOptions().dtype(scalar_type(a.dtype)).device(torch::kCPU);
    std::vector<int64_t> sizes = torch_sizes(a);
    if (numel(a) == 0) return {torch::empty(sizes, opts), {}};
    std::vector<int64_t> strides = torch_strides(a);
    HostView v;
    char *base = static_cast<char *>(a.data);
    for (size_t d = 0; d < sizes.size(); ++d) {
        if (strides[d] >= 0) continue;
        base += strides[d] * (sizes[d] - 1) * static_cast<int64_t>(dtype_size(a.dtype));
        strides[d] = -strides[d];
        v.flipped.push_back(static_cast<int64_t>(d));
    }
    v.tensor = torch::from_blob(base, sizes, strides, opts);
    return v;
}

/// An input as the model sees it (a copy only for negative strides).
torch::Tensor input_tensor(const nnc_array &a) {
    HostView v = view_of(a);
    return v.flipped.empty() ? v.tensor : v.tensor.flip(v.flipped);
}

/// Write a result into the caller's output array.
void write_output(const nnc_array &a, const torch::Tensor &r) {
    if (numel(a) == 0) return;
    HostView v = view_of(a);
    v.tensor.copy_(v.flipped.empty() ? r : r.flip(v.flipped));
}

std::string torch_message(const std::exception &e) {
    const auto *ce = dynamic_cast<const c10::Error *>(&e);
    std::string m = ce ? ce->what_without_backtrace() : e.what();
    if (m.size() > 4000) m = m.substr(0, 4000) + " [...]";
    return m;
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
    if (a.dtype == 0) throw Error(NNC_ERR_DTYPE, "cannot record '" + name + "' of type " + scalar_name(c.scalar_type()));
    a.shape = c.sizes().vec();
    a.bytes.assign(static_cast<const char *>(c.data_ptr()), c.numel() * c.element_size());
    return a;
}

std::string io_name(const Contract *c, bool output, int i) {
    if (c) return (output ? c->outputs : c->inputs)[static_cast<size_t>(i)].name;
    return std::to_string(i);
}

void check_record_name(const std::string &name) {
    if (name.empty() || name.size() >= NNC_NAME_LEN ||
        name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") !=
            std::string::npos)
        throw Error(NNC_ERR_ARGUMENT, "record array name '" + name + "' must be 1 to " +
                                          std::to_string(NNC_NAME_LEN - 1) + " letters, digits, '_', '-' or '.'");
}

int local_rank() {
    for (const char *var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                            "SLURM_LOCALID", "PALS_LOCAL_RANKID"}) {
        if (const char *v = std::getenv(var)) return std::atoi(v);
    }
    return 0;
}

std::vector<torch::Tensor> as_tensors(const c10::IValue &r) {
    std::vector<torch::Tensor> out;
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
    return out;
}

std::string out_label(const Contract *c, int i) {
    std::string name = c ? "'" + c->outputs[static_cast<size_t>(i)].name + "' " : "";
    return "output " + name + "(argument " + std::to_string(i + 1) + ")";
}

}  // namespace

std::string resolve_device(const std::string &device) {
    if (device.empty() || device == "cpu") return "cpu";
    const bool cuda = torch::cuda::is_available();
    const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
    if (device == "auto") return count > 0 ? "cuda:" + std::to_string(local_rank() % count) : "cpu";
    int index = 0;
    if (device.rfind("cuda", 0) != 0)
        throw Error(NNC_ERR_BAD_DEVICE, "malformed device string '" + device + "': use cpu, cuda, cuda:N or auto");
    if (device.size() > 4) {
        const std::string num = device.substr(4);
        if (num.size() < 2 || num[0] != ':' || num.find_first_not_of("0123456789", 1) != std::string::npos ||
            num.size() > 6)
            throw Error(NNC_ERR_BAD_DEVICE, "malformed device string '" + device + "': use cpu, cuda, cuda:N or auto");
        index = std::atoi(num.c_str() + 1);
    }
    if (!cuda)
        throw Error(NNC_ERR_NO_DEVICE, "device '" + device + "' requested, but CUDA is not available (no GPU, or " +
                                           "this libtorch " + TORCH_VERSION + " was built without CUDA)");
    if (index >= count)
        throw Error(NNC_ERR_NO_DEVICE, "device '" + device + "' requested, but only " + std::to_string(count) +
                                           " CUDA device(s) are present");
    return "cuda:" + std::to_string(index);
}

Model::Model(const std::string &path, const std::string &device) : impl_(std::make_unique<Impl>()) {
    const std::string dev = resolve_device(device);
    impl_->path = path;
    if (std::FILE *f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
    } else {
        throw Error(NNC_ERR_IO, "cannot open model file '" + path + "': " + std::strerror(errno));
    }
    torch::jit::ExtraFilesMap extra{{kContractFile, ""}};
    try {
        impl_->device = torch::Device(dev);
        impl_->module = torch::jit::load(path, impl_->device, extra);
        impl_->module.eval();
    } catch (const std::exception &e) {
        throw Error(NNC_ERR_FORMAT, "'" + path + "' is not a loadable TorchScript file (not TorchScript, truncated "
                                                 "or corrupt): " + torch_message(e));
    }
    if (!extra[kContractFile].empty()) impl_->contract = std::make_unique<Contract>(parse_contract(extra[kContractFile]));
    try {
        const auto &schema = impl_->module.get_method("forward").function().getSchema();
        impl_->forward_arity = static_cast<int>(schema.arguments().size()) - 1;  // minus self
        for (const auto &arg : schema.arguments())
            if (arg.default_value().has_value()) impl_->forward_arity = -1;  // optional args: let torch judge
    } catch (const std::exception &e) {
        throw Error(NNC_ERR_FORMAT, "'" + path + "' has no forward method: " + torch_message(e));
    }
    RecordSetup env = setup_from_environment(path);
    if (!env.dir.empty()) record_start(env.dir, env.every, env.max_bytes);
}

Model::~Model() = default;

const Contract *Model::contract() const { return impl_->contract.get(); }

std::string Model::device() const { return impl_->device.str(); }

void Model::forward(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs) {
    if (num_inputs < 0 || num_outputs < 0) throw Error(NNC_ERR_NARGS, "negative number of inputs or outputs");
    if (num_inputs > 0) require_nonnull(inputs, "inputs");
    if (num_outputs > 0) require_nonnull(outputs, "outputs");
    const Contract *c = impl_->contract.get();
    if (c) {
        check_call(*c, num_inputs, inputs, num_outputs, outputs);
    } else {
        for (int i = 0; i < num_inputs; ++i) validate(inputs[i], "input " + std::to_string(i + 1));
        for (int i = 0; i < num_outputs; ++i) validate(outputs[i], "output " + std::to_string(i + 1));
        if (impl_->forward_arity >= 0 && num_inputs != impl_->forward_arity)
            throw Error(NNC_ERR_NARGS, "the model's forward takes " + std::to_string(impl_->forward_arity) +
                                           " input(s), got " + std::to_string(num_inputs));
    }
    Recorder *rec = impl_->recorder.get();
    if (rec) rec->flush();  // the previous call's record, with its host arrays
    const bool recorded = rec && rec->sample();
    c10::InferenceMode inference;
    std::vector<c10::IValue> args;
    std::vector<NpyArray> recorded_inputs;
    args.reserve(static_cast<size_t>(num_inputs));
    for (int i = 0; i < num_inputs; ++i) {
        torch::Tensor t = input_tensor(inputs[i]);
        if (recorded) recorded_inputs.push_back(record_of(io_name(c, false, i), t));
        args.emplace_back(impl_->device.is_cpu() ? t : t.to(impl_->device));
    }
    std::vector<torch::Tensor> results;
    try {
        results = as_tensors(impl_->module.forward(std::move(args)));
    } catch (const Error &) {
        throw;
    } catch (const std::exception &e) {
        throw Error(NNC_ERR_RUNTIME, "the model raised an error: " + torch_message(e));
    }
    if (static_cast<int>(results.size()) != num_outputs)
        throw Error(NNC_ERR_NARGS, "the model returned " + std::to_string(results.size()) + " output(s), but " +
                                       std::to_string(num_outputs) + " output array(s) were given");
    for (int i = 0; i < num_outputs; ++i) {  // check all before writing any
        const nnc_array &o = outputs[i];
        const torch::Tensor &r = results[static_cast<size_t>(i)];
        if (r.scalar_type() != scalar_type(o.dtype))
            throw Error(NNC_ERR_DTYPE, out_label(c, i) + ": the model returned " + scalar_name(r.scalar_type()) +
                                           ", the output array is " + dtype_name(o.dtype));
        std::vector<int64_t> want = torch_sizes(o);
        if (r.sizes().vec() != want)
            throw Error(NNC_ERR_SHAPE, out_label(c, i) + ": the model returned shape " +
                                           format_dims(r.sizes().vec(), o.order) + ", the output array has shape " +
                                           caller_shape(o));
    }
    for (int i = 0; i < num_outputs; ++i) write_output(outputs[i], results[static_cast<size_t>(i)]);
    const int64_t call = ++impl_->calls;
    if (recorded) {
        std::vector<NpyArray> out;
        for (int i = 0; i < num_outputs; ++i)
            out.push_back(record_of(io_name(c, true, i), results[static_cast<size_t>(i)]));
        rec->open(call, get_num_threads(), std::move(recorded_inputs), std::move(out));
    }
}

void Model::record_start(const std::string &dir, int every, int64_t max_bytes) {
    if (impl_->recorder)
        throw Error(NNC_ERR_RECORD, "the model is already recording into '" + impl_->recorder->dir() +
                                        "'; stop that recording first");
    RecordSetup s;
    s.dir = dir;
    s.every = every;
    s.max_bytes = max_bytes;
    s.model_path = impl_->path;
    s.device = impl_->device.str();
    s.libtorch = TORCH_VERSION;
    s.bridge = NNC_VERSION_STRING;
    impl_->recorder = std::make_unique<Recorder>(s);
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

void set_num_threads(int n) {
    if (n < 1) throw Error(NNC_ERR_ARGUMENT, "thread count must be >= 1, got " + std::to_string(n));
    at::set_num_threads(n);
}

int get_num_threads() { return at::get_num_threads(); }

}  // namespace nnc
