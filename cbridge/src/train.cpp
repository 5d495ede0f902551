// train.cpp: the nnc_train_* entry points (online training). The training
// itself runs in Python: libpyclosure_train_embed (a cffi embedding, built from
// cbridge/tools/train_embed_source.py and installed beside this library) is
// loaded with dlopen on the first nnc_train_create, so a host that never
// trains never loads libpython. Its pyc_train_* functions return a status and
// a message, which become this thread's status and last error. Torch-free.
#include <dlfcn.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "errors.hpp"
#include "model.hpp"
#include "nn_closure.h"

// As for models (api.cpp): freeing a trainer frees its Python side but keeps
// this shell, marked dead, for the life of the process, so its address is
// never handed out again and a stale copy of a freed handle stays an error
// (NNC_ERR_HANDLE) instead of reaching a newer trainer.
struct nnc_trainer_s {
    void *py = nullptr;   // the Python trainer's id in the embedded library
    int64_t version = 0;  // weight versions synced so far
};

namespace nnc {

namespace {

using PutFn = void (*)(void *, const char *, const nnc_array *);
using PutProgramFn = void (*)(void *, const void *, size_t);

/// The embedded library's functions (see train_embed_source.py).
struct Embed {
    int (*create)(void **, const char *, const char *, const char *, const char *, const char *, char *, size_t);
    int (*step)(void *, int, const nnc_array *, int, const nnc_array *, double *, char *, size_t);
    int (*weights)(void *, int, void *, PutFn, PutProgramFn, char *, size_t);
    int (*commit)(void *, int64_t *, char *, char *, size_t);
    int (*save)(void *, const char *, char *, size_t);
    int (*free)(void *, char *, size_t);
};

const char *const kEmbedLibrary = "libpyclosure_train_embed.so";

/// The folder this library was loaded from ("" when it cannot tell).
std::string own_folder() {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void *>(&own_folder), &info) || !info.dli_fname) return "";
    std::string path = info.dli_fname;
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

template <class F> void bind(void *lib, const char *name, F &fn, const std::string &where) {
    fn = reinterpret_cast<F>(dlsym(lib, name));
    if (!fn) throw Error(NNC_ERR_TRAIN, where + " lacks " + name + ": rebuild pyclosure");
}

/// Load the embedded library once (thread safe); throws NNC_ERR_TRAIN when it cannot.
const Embed &embed() {
    static std::mutex mutex;
    static std::unique_ptr<Embed> loaded;
    std::lock_guard<std::mutex> lock(mutex);
    if (loaded) return *loaded;
    const std::string path = own_folder() + kEmbedLibrary;
    // RTLD_GLOBAL: Python's extension modules (numpy, torch) find libpython's symbols there.
    void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib)
        throw Error(NNC_ERR_TRAIN, std::string("online training needs the embedded-Python library ") + path +
                                       ", which could not be loaded (the build found no libpython to embed, or "
                                       "it moved): " +
                                       dlerror());
    auto e = std::make_unique<Embed>();
    bind(lib, "pyc_train_create", e->create, path);
    bind(lib, "pyc_train_step", e->step, path);
    bind(lib, "pyc_train_weights", e->weights, path);
    bind(lib, "pyc_train_commit", e->commit, path);
    bind(lib, "pyc_train_save", e->save, path);
    bind(lib, "pyc_train_free", e->free, path);
    void (*prepare)(void) = nullptr;
    bind(lib, "pyc_train_prepare", prepare, path);
    prepare();  // inside a running Python: see train_embed_source.py
    loaded = std::move(e);
    return *loaded;
}

/// Turn a pyc_train_* status and message into an nnc::Error.
void check(int status, const char *msg) {
    if (status != NNC_OK) throw Error(status, msg[0] ? msg : "the training code failed without a message");
}

std::mutex registry_mutex;
std::unordered_set<const nnc_trainer_s *> &registry() {  // live handles
    static std::unordered_set<const nnc_trainer_s *> live;
    return live;
}

std::vector<const nnc_trainer_s *> &retired() {                  // dead shells, kept (see nnc_trainer_s)
    static auto *dead = new std::vector<const nnc_trainer_s *>;  // never destroyed: stays reachable at exit
    return *dead;
}

nnc_trainer_s &live(nnc_trainer t) {
    if (t == nullptr) throw Error(NNC_ERR_HANDLE, "trainer handle is NULL: not created, or already freed");
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (registry().count(t) == 0)
        throw Error(NNC_ERR_HANDLE, "trainer handle is not a live trainer (freed, or never created)");
    return *t;
}

/// What the embedded trainer hands over in a sync.
struct Collected {
    std::vector<std::unique_ptr<std::string>> names;
    std::vector<NamedArray> weights;
    std::string program;
};

void put(void *ctx, const char *name, const nnc_array *a) noexcept {
    try {
        static_cast<Collected *>(ctx)->weights.push_back({name, *a});
    } catch (...) {  // out of memory: the sync then finds a weight missing and reports it
    }
}

void put_program(void *ctx, const void *data, size_t size) noexcept {
    try {
        static_cast<Collected *>(ctx)->program.assign(static_cast<const char *>(data), size);
    } catch (...) {
    }
}

constexpr size_t kMessage = 4096;

}  // namespace
}  // namespace nnc

using nnc::Error;
using nnc::guarded;
using nnc::require_nonnull;

extern "C" {

int nnc_train_create(nnc_trainer *trainer, nnc_model model, const char *spec, const char *options) {
    return guarded([&] {
        require_nonnull(trainer, "trainer");
        *trainer = nullptr;
        nnc::Model &m = nnc::live_model(model);
        const nnc::Embed &py = nnc::embed();
        char msg[nnc::kMessage] = {};
        void *handle = nullptr;
        nnc::check(py.create(&handle, m.path().c_str(), m.engine().c_str(), m.contract_json().c_str(), spec ? spec : "",
                             options ? options : "", msg, sizeof msg),
                   msg);
        auto t = std::make_unique<nnc_trainer_s>();
        t->py = handle;
        std::lock_guard<std::mutex> lock(nnc::registry_mutex);
        nnc::registry().insert(t.get());
        *trainer = t.release();
    });
}

int nnc_train_step(nnc_trainer trainer, int num_inputs, const nnc_array *inputs, int num_targets,
                   const nnc_array *targets, double *loss) {
    return guarded([&] {
        nnc_trainer_s &t = nnc::live(trainer);
        if (num_inputs < 1 || num_targets < 1)
            throw Error(NNC_ERR_NARGS, "a training step needs at least one input and one target");
        require_nonnull(inputs, "inputs");
        require_nonnull(targets, "targets");
        char msg[nnc::kMessage] = {};
        nnc::check(nnc::embed().step(t.py, num_inputs, inputs, num_targets, targets, loss, msg, sizeof msg), msg);
    });
}

int nnc_train_sync(nnc_trainer trainer, nnc_model model) {
    return guarded([&] {
        nnc_trainer_s &t = nnc::live(trainer);
        nnc::Model &m = nnc::live_model(model);
        const nnc::Embed &py = nnc::embed();
        char msg[nnc::kMessage] = {};
        nnc::Collected got;
        // The Python trainer keeps the arrays alive until its next call: update before that.
        nnc::check(py.weights(t.py, m.takes_program() ? 1 : 0, &got, nnc::put, nnc::put_program, msg, sizeof msg), msg);
        m.update_weights(got.weights, got.program);
        char sha[80] = {};
        int64_t version = 0;
        nnc::check(py.commit(t.py, &version, sha, msg, sizeof msg), msg);
        t.version = version;
        m.set_weights_version(version, sha);
    });
}

int nnc_train_version(nnc_trainer trainer, int64_t *version) {
    return guarded([&] {
        require_nonnull(version, "version");
        *version = nnc::live(trainer).version;
    });
}

int nnc_train_save(nnc_trainer trainer, const char *path) {
    return guarded([&] {
        nnc_trainer_s &t = nnc::live(trainer);
        require_nonnull(path, "path");
        char msg[nnc::kMessage] = {};
        nnc::check(nnc::embed().save(t.py, path, msg, sizeof msg), msg);
    });
}

int nnc_train_free(nnc_trainer *trainer) {
    return guarded([&] {
        require_nonnull(trainer, "trainer");
        nnc_trainer t = *trainer;
        if (t == nullptr) return;
        void *py = nullptr;
        {
            std::lock_guard<std::mutex> lock(nnc::registry_mutex);
            if (nnc::registry().erase(t) == 0)
                throw Error(NNC_ERR_HANDLE,
                            "trainer handle is not a live trainer (freed through a copy, or never created)");
            nnc::retired().push_back(t);
            py = t->py;
            t->py = nullptr;  // the shell stays, dead (see nnc_trainer_s)
        }
        *trainer = nullptr;
        char msg[nnc::kMessage] = {};
        nnc::check(nnc::embed().free(py, msg, sizeof msg), msg);
    });
}

}  // extern "C"
