// engine_aoti.cpp: the AOTInductor engine (.pt2 packages from torch.export and
// aoti_compile_and_package). A package is native code and checks none of its
// inputs, so this engine refuses a package without a pyclosure contract (the
// model checks every call against it), one built for another CPU or device,
// and hands the package only dense C-order tensors. It reads the package's
// metadata and refuses it before writing anything; then it unpacks the package
// into a private directory it removes on free and on a failed load.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <caffe2/serialize/inline_container.h>

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine.hpp"
#include "errors.hpp"
#include "json.hpp"

namespace nnc {

namespace {

namespace fs = std::filesystem;

#if defined(__x86_64__)
const char *const kMachine = "x86_64";
#elif defined(__aarch64__)
const char *const kMachine = "aarch64";
#else
const char *const kMachine = "unknown";
#endif

/// Whether this CPU has a feature named as in the contract's engine.cpu_features.
bool cpu_has(const std::string &f, bool &known) {
    known = true;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (f == "sse4_2") return __builtin_cpu_supports("sse4.2");
    if (f == "avx") return __builtin_cpu_supports("avx");
    if (f == "avx2") return __builtin_cpu_supports("avx2");
    if (f == "fma") return __builtin_cpu_supports("fma");
    if (f == "f16c") return __builtin_cpu_supports("f16c");
    if (f == "bmi") return __builtin_cpu_supports("bmi");
    if (f == "bmi2") return __builtin_cpu_supports("bmi2");
    if (f == "avx512f") return __builtin_cpu_supports("avx512f");
    if (f == "avx512bw") return __builtin_cpu_supports("avx512bw");
    if (f == "avx512dq") return __builtin_cpu_supports("avx512dq");
    if (f == "avx512vl") return __builtin_cpu_supports("avx512vl");
    if (f == "avx512_fp16") return __builtin_cpu_supports("avx512fp16");
    if (f == "amx_tile") return __builtin_cpu_supports("amx-tile");
#endif
    known = false;
    return false;
}

/// A directory only this process uses, removed with everything in it.
class ScratchDir {
public:
    ScratchDir() {
        const char *tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/pyclosure-pt2-XXXXXX";
        if (!::mkdtemp(pattern.data()))
            throw Error(NNC_ERR_IO, "cannot create a directory to unpack the package in (" + pattern + ")");
        path_ = pattern;
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir &) = delete;
    ScratchDir &operator=(const ScratchDir &) = delete;
    const std::string &path() const { return path_; }

private:
    std::string path_;
};

struct Package {
    std::map<std::string, std::string> metadata;  // AOTI_* keys and pyclosure_contract
};

/// Whether a record name stays inside the folder it is unpacked into: relative, no "..".
bool stays_inside(const std::string &name) {
    const fs::path p(name);
    if (name.empty() || p.is_absolute()) return false;
    for (const fs::path &part : p)
        if (part == "..") return false;
    return true;
}

/// The package's records, their names checked: one that would land outside
/// the folder it is unpacked into refuses the package.
std::vector<std::string> record_names(const std::string &path, caffe2::serialize::PyTorchStreamReader &reader) {
    std::vector<std::string> names = reader.getAllRecords();
    for (const std::string &name : names)
        if (!stays_inside(name))
            throw Error(NNC_ERR_FORMAT, "'" + path + "' is not a valid AOTInductor package: its record '" + name +
                                            "' points outside the package (an absolute path or '..')");
    return names;
}

bool is_metadata(const std::string &name) {
    return name.rfind("data/aotinductor/", 0) == 0 && name.size() > 14 &&
           name.compare(name.size() - 14, 14, "_metadata.json") == 0;
}

/// Read the package's metadata (AOTI_* keys and pyclosure_contract) without writing anything.
Package read_metadata(const std::string &path, caffe2::serialize::PyTorchStreamReader &reader) {
    Package p;
    for (const std::string &name : record_names(path, reader)) {
        if (!is_metadata(name)) continue;
        auto [data, size] = reader.getRecord(name);
        const json::Value doc = json::parse(std::string(static_cast<const char *>(data.get()), size));
        if (!doc.is(json::Value::Kind::Object))
            throw Error(NNC_ERR_FORMAT, "'" + path + "': package metadata " + name + " is not a JSON object");
        for (const auto &[key, value] : doc.object)
            if (value.is(json::Value::Kind::String)) p.metadata[key] = value.string;
    }
    return p;
}

/// Unpack every record under `dir`/model.
void unpack(const std::string &path, caffe2::serialize::PyTorchStreamReader &reader, const std::string &dir) {
    for (const std::string &name : record_names(path, reader)) {
        auto [data, size] = reader.getRecord(name);
        const fs::path target = fs::path(dir) / "model" / name;
        fs::create_directories(target.parent_path());
        std::ofstream out(target, std::ios::binary);
        out.write(static_cast<const char *>(data.get()), static_cast<std::streamsize>(size));
        if (!out) throw Error(NNC_ERR_IO, "cannot unpack '" + path + "' into " + dir + " (disk full?)");
    }
}

/// Refuse a package this host cannot run, before its library is loaded.
void check_runnable(const std::string &path, const Package &p, const c10::Device &device) {
    auto get = [&](const std::string &k) {
        auto it = p.metadata.find(k);
        return it == p.metadata.end() ? "" : it->second;
    };
    const std::string start = "'" + path + "' ";
    if (get("pyclosure_contract").empty())
        throw Error(NNC_ERR_FORMAT, start + "is an AOTInductor package without a pyclosure contract. A package checks "
                                            "none of its inputs, so the bridge runs only packages it can check every "
                                            "call against: export it with pyclosure.export(..., format='pt2')");
    const std::string built_for = get("AOTI_DEVICE_KEY");
    const std::string wanted = device.is_cuda() ? "cuda" : "cpu";
    if (!built_for.empty() && built_for != wanted)
        throw Error(NNC_ERR_FORMAT, start + "was compiled for device '" + built_for + "' and cannot run on '" +
                                        device.str() + "': export it again for that device");
    const json::Value contract = json::parse(get("pyclosure_contract"));
    const json::Value *engine = contract.find("engine");
    const json::Value *machine = engine ? engine->find("machine") : nullptr;
    std::string arch = machine && machine->is(json::Value::Kind::String) ? machine->string : get("AOTI_MACHINE");
    if (!arch.empty() && arch != kMachine)
        throw Error(NNC_ERR_FORMAT, start + "was compiled for " + arch + " CPUs; this is " + kMachine);
    const json::Value *features = engine ? engine->find("cpu_features") : nullptr;
    if (!features || !features->is(json::Value::Kind::Array)) return;
    std::string missing;
    for (const json::Value &f : features->array) {
        bool known = false;
        if (!f.is(json::Value::Kind::String) || cpu_has(f.string, known)) continue;
        missing += (missing.empty() ? "" : ", ") + f.string + (known ? "" : " (unknown to this bridge)");
    }
    if (!missing.empty()) {
        const json::Value *isa = engine->find("cpu_isa");
        throw Error(NNC_ERR_FORMAT, start + "was compiled for " +
                                        (isa && isa->is(json::Value::Kind::String) ? isa->string : "another CPU") +
                                        " and needs CPU features this CPU lacks: " + missing +
                                        "; export it again with a lower cpu_isa (e.g. x86-64-v2)");
    }
}

size_t default_runners() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : std::min<size_t>(n, 16);
}

class AotiEngine final : public Engine {
public:
    AotiEngine(const std::string &path, const std::string &bytes, const c10::Device &device) {
        // Check everything the metadata can tell before writing a byte to disk.
        auto corrupt = [&](const std::exception &e) {
            return Error(NNC_ERR_FORMAT, "'" + path +
                                             "' is not a readable AOTInductor package (truncated or "
                                             "corrupt): " +
                                             torch_message(e));
        };
        std::istringstream in(bytes);
        std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
        Package p;
        try {
            reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&in);
            p = read_metadata(path, *reader);
        } catch (const Error &) {
            throw;
        } catch (const std::exception &e) {
            throw corrupt(e);
        }
        check_runnable(path, p, device);
        contract_ = p.metadata["pyclosure_contract"];
        dir_ = std::make_unique<ScratchDir>();
        try {
            unpack(path, *reader, dir_->path());
        } catch (const Error &) {
            throw;
        } catch (const std::exception &e) {
            throw corrupt(e);
        }
        try {
            // Several runners so that concurrent callers (OpenMP threads) run
            // in parallel instead of waiting for one another.
            loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
                dir_->path(), "model", false, default_runners(), device.is_cuda() ? device.index() : -1);
        } catch (const std::exception &e) {
            throw Error(NNC_ERR_FORMAT,
                        "'" + path + "': the AOTInductor package could not be loaded: " + torch_message(e));
        }
    }
    ~AotiEngine() override { loader_.reset(); }  // before dir_ is removed

    const char *name() const override { return "aotinductor"; }
    const std::string &contract_json() const override { return contract_; }
    bool needs_contiguous() const override { return true; }   // the package reads raw buffers
    bool runs_empty_batch() const override { return false; }  // compiled for batch >= 1

    /// Update the package's constant buffer by the constants' original names
    /// (AOTInductor's load_constants): a copy of the weights, no recompilation.
    void update_weights(const std::map<std::string, at::Tensor> &weights, const std::string &) override {
        auto *runner = loader_->get_runner();
        const auto fqns = runner->getConstantNamesToOriginalFQNs();
        const auto held = runner->extract_constants_map(false);
        std::map<std::string, at::Tensor> current;
        for (const auto &[internal, fqn] : fqns) {
            auto it = held.find(fqn);
            if (it == held.end()) it = held.find(internal);
            if (it != held.end()) current[fqn] = it->second;
        }
        for (const auto &[name, t] : weights)
            if (current.count(name) == 0)
                throw Error(NNC_ERR_SHAPE,
                            "the package holds no constant '" + name +
                                "': either the trainer's module "
                                "is another architecture, or inductor compiled that weight into the "
                                "package's code (a package exported before pyclosure kept every weight a "
                                "constant): export the package again; nothing was changed");
        match_weights(current, weights, "AOTInductor");
        std::unordered_map<std::string, at::Tensor> update;
        for (const auto &[fqn, t] : current) update[fqn] = weights.at(fqn).to(t.device()).clone();
        loader_->load_constants(update, false, true);
    }

    std::vector<at::Tensor> run(std::vector<at::Tensor> inputs) override {
        return loader_->boxed_run(std::move(inputs));
    }

private:
    std::unique_ptr<ScratchDir> dir_;  // declared first: removed last
    std::string contract_;
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

}  // namespace

std::unique_ptr<Engine> open_aoti(const std::string &path, const std::string &bytes, const c10::Device &device) {
    return std::make_unique<AotiEngine>(path, bytes, device);
}

}  // namespace nnc
