// api.cpp: the extern "C" entry points of nn_closure.h. Each one runs inside
// nnc::guarded, so no exception crosses the boundary, and checks its handle
// against the registry of live models, so a freed or foreign handle is an
// error status, never a crash.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "errors.hpp"
#include "layout.hpp"
#include "model.hpp"
#include "nn_closure.h"

#ifndef NNC_VERSION_STRING
#define NNC_VERSION_STRING "0.0.0"
#endif

// A handle is a small shell around the model. Freeing deletes the model but
// keeps the shell, marked dead, for the life of the process (a few bytes per
// load): its address is never handed out again, so a stale copy of a freed
// handle stays an error instead of silently reaching a newer model.
struct nnc_model_s {
    std::unique_ptr<nnc::Model> model;
};

namespace nnc {

std::string &last_error() {
    thread_local std::string message;
    return message;
}

namespace {

std::mutex registry_mutex;
std::unordered_set<const nnc_model_s *> &registry() {  // live handles
    static std::unordered_set<const nnc_model_s *> live;
    return live;
}

std::vector<const nnc_model_s *> &retired() {                  // dead shells, kept (see nnc_model_s)
    static auto *dead = new std::vector<const nnc_model_s *>;  // never destroyed: stays reachable at exit
    return *dead;
}

Model &live(nnc_model m) {
    if (m == nullptr) throw Error(NNC_ERR_HANDLE, "model handle is NULL: not loaded, or already freed");
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry().count(m) == 0)
        throw Error(NNC_ERR_HANDLE, "model handle is not a live model (freed, or never loaded)");
    return *m->model;
}

void copy_string(const std::string &s, char *buf, size_t buflen) {
    require_nonnull(buf, "buf");
    if (buflen == 0) throw Error(NNC_ERR_ARGUMENT, "buflen is 0");
    size_t n = s.size() < buflen - 1 ? s.size() : buflen - 1;
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
}

// copy_string for answers that are useless cut short: "" and NNC_ERR_ARGUMENT when s does not fit.
void copy_whole(const std::string &s, char *buf, size_t buflen, const char *what) {
    copy_string("", buf, buflen);
    if (s.size() >= buflen)
        throw Error(NNC_ERR_ARGUMENT, std::string("buf of ") + std::to_string(buflen) + " bytes cannot hold the " +
                                          what + " '" + s + "': it needs " + std::to_string(s.size() + 1));
    copy_string(s, buf, buflen);
}

}  // namespace

Model &live_model(nnc_model m) { return live(m); }

}  // namespace nnc

using nnc::Error;
using nnc::guarded;
using nnc::require_nonnull;

extern "C" {

int nnc_version(const char **version, const char **libtorch_version) {
    return guarded([&] {
        require_nonnull(version, "version");
        require_nonnull(libtorch_version, "libtorch_version");
        *version = NNC_VERSION_STRING;
        *libtorch_version = nnc::libtorch_version();
    });
}

const char *nnc_last_error(void) {
    try {
        return nnc::last_error().c_str();
    } catch (...) {
        return "";
    }
}

int nnc_last_error_copy(char *buf, size_t buflen) {
    std::string copy;
    try {
        copy = nnc::last_error();
    } catch (...) {
    }
    return guarded([&] { nnc::copy_string(copy, buf, buflen); });
}

int nnc_set_num_threads(int n) {
    return guarded([&] { nnc::set_num_threads(n); });
}

int nnc_get_num_threads(int *n) {
    return guarded([&] {
        require_nonnull(n, "n");
        *n = nnc::get_num_threads();
    });
}

int nnc_model_load_with(nnc_model *model, const char *path, const char *device, const char *options) {
    return guarded([&] {
        require_nonnull(model, "model");
        *model = nullptr;
        require_nonnull(path, "path");
        const nnc::Policy policy = nnc::parse_policy(options ? options : "");
        auto loaded = std::make_unique<nnc::Model>(path, device ? device : "cpu", policy);
        auto *m = new nnc_model_s{std::move(loaded)};
        try {
            std::lock_guard<std::mutex> lock(nnc::registry_mutex);
            nnc::registry().insert(m);
        } catch (...) {
            delete m;
            throw;
        }
        *model = m;
    });
}

int nnc_model_load(nnc_model *model, const char *path, const char *device) {
    return nnc_model_load_with(model, path, device, nullptr);
}

int nnc_model_policy(nnc_model model, char *buf, size_t buflen) {
    return guarded([&] { nnc::copy_whole(nnc::live(model).policy().describe(), buf, buflen, "policy"); });
}

int nnc_model_free(nnc_model *model) {
    return guarded([&] {
        require_nonnull(model, "model");
        nnc_model m = *model;
        if (m == nullptr) return;
        {
            std::lock_guard<std::mutex> lock(nnc::registry_mutex);
            if (nnc::registry().erase(m) == 0)
                throw Error(NNC_ERR_HANDLE, "model handle is not a live model (freed through a copy, or never loaded)");
            nnc::retired().push_back(m);
        }
        *model = nullptr;
        std::unique_ptr<nnc::Model> owned = std::move(m->model);  // the shell stays, dead (see nnc_model_s)
        const char *show = std::getenv("NN_CLOSURE_STATS");
        if (show && *show && std::string(show) != "0")
            std::fprintf(stderr, "nn_closure: %s\n", owned->stats_summary().c_str());
        owned->record_stop();  // may throw NNC_ERR_RECORD; the model is freed either way
    });
}

int nnc_model_has_contract(nnc_model model, int *has_contract) {
    return guarded([&] {
        require_nonnull(has_contract, "has_contract");
        *has_contract = nnc::live(model).contract() != nullptr;
    });
}

int nnc_model_contract(nnc_model model, char *buf, size_t buflen, size_t *needed) {
    return guarded([&] {
        const nnc::Contract *c = nnc::live(model).contract();
        const std::string json = c ? c->json : std::string();
        if (needed) *needed = json.size() + 1;
        if (buf != nullptr && buflen > json.size()) nnc::copy_string(json, buf, buflen);
        else if (buf != nullptr && buflen > 0) buf[0] = '\0';
    });
}

int nnc_model_device(nnc_model model, char *buf, size_t buflen) {
    return guarded([&] { nnc::copy_whole(nnc::live(model).device(), buf, buflen, "device name"); });
}

int nnc_model_engine(nnc_model model, char *buf, size_t buflen) {
    return guarded([&] { nnc::copy_whole(nnc::live(model).engine(), buf, buflen, "engine name"); });
}

int nnc_model_num_io(nnc_model model, int *num_inputs, int *num_outputs) {
    return guarded([&] {
        const nnc::Contract *c = nnc::live(model).contract();
        if (num_inputs) *num_inputs = c ? static_cast<int>(c->inputs.size()) : 0;
        if (num_outputs) *num_outputs = c ? static_cast<int>(c->outputs.size()) : 0;
    });
}

int nnc_model_io(nnc_model model, int is_output, int index, nnc_io_info *info) {
    return guarded([&] {
        require_nonnull(info, "info");
        const nnc::Contract *c = nnc::live(model).contract();
        if (!c) throw Error(NNC_ERR_ARGUMENT, "the model has no contract (a plain TorchScript file)");
        const auto &list = is_output ? c->outputs : c->inputs;
        if (index < 0 || index >= static_cast<int>(list.size()))
            throw Error(NNC_ERR_ARGUMENT, std::string(is_output ? "output" : "input") + " index " +
                                              std::to_string(index) + " is out of range 0.." +
                                              std::to_string(static_cast<int>(list.size()) - 1));
        nnc::describe(list[static_cast<size_t>(index)], info);
    });
}

int nnc_model_forward(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                      const nnc_array *outputs) {
    return guarded([&] { nnc::live(model).forward(num_inputs, inputs, num_outputs, outputs); });
}

int nnc_model_forward_fallback(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                               const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                               const nnc_array *flags) {
    return guarded(
        [&] { nnc::live(model).forward(num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags); });
}

int nnc_model_forward_on_device(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                                const nnc_array *outputs) {
    return guarded(
        [&] { nnc::live(model).forward(num_inputs, inputs, num_outputs, outputs, 0, nullptr, nullptr, true); });
}

int nnc_model_forward_on_device_fallback(nnc_model model, int num_inputs, const nnc_array *inputs, int num_outputs,
                                         const nnc_array *outputs, int num_fallback, const nnc_array *fallback,
                                         const nnc_array *flags) {
    return guarded([&] {
        nnc::live(model).forward(num_inputs, inputs, num_outputs, outputs, num_fallback, fallback, flags, true);
    });
}

int nnc_model_stats(nnc_model model, nnc_stats *stats) {
    return guarded([&] {
        require_nonnull(stats, "stats");
        *stats = nnc::live(model).stats();
    });
}

int nnc_model_stats_summary(nnc_model model, char *buf, size_t buflen) {
    return guarded([&] { nnc::copy_string(nnc::live(model).stats_summary(), buf, buflen); });
}

int nnc_record_start(nnc_model model, const char *dir, int every, int64_t max_bytes) {
    return guarded([&] {
        require_nonnull(dir, "dir");
        nnc::live(model).record_start(dir, every, max_bytes);
    });
}

int nnc_record_array(nnc_model model, const char *name, const nnc_array *array) {
    return guarded([&] {
        require_nonnull(name, "name");
        require_nonnull(array, "array");
        nnc::live(model).record_array(name, *array);
    });
}

int nnc_record_stop(nnc_model model) {
    return guarded([&] { nnc::live(model).record_stop(); });
}

int nnc_record_dir(nnc_model model, char *buf, size_t buflen) {
    return guarded([&] { nnc::copy_whole(nnc::live(model).record_dir(), buf, buflen, "record directory"); });
}

}  // extern "C"
