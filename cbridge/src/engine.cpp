// engine.cpp: read a model file once, check it against the trusted digests,
// and pick the engine its content calls for (see engine.hpp).
#include "engine.hpp"

#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "checksum.hpp"
#include "errors.hpp"
#include "policy.hpp"

namespace nnc {

namespace {

const char *const kTrustedEnv = "PYCLOSURE_TRUSTED_SHA256";

std::string read_file(const std::string &path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0)
        throw Error(NNC_ERR_IO, "cannot open model file '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw Error(NNC_ERR_IO, "cannot open model file '" + path +
                                    "': " + (S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file"));
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(NNC_ERR_IO, "cannot open model file '" + path + "': " + std::strerror(errno));
    std::ostringstream bytes;
    bytes << f.rdbuf();
    if (f.bad()) throw Error(NNC_ERR_IO, "cannot read model file '" + path + "'");
    return bytes.str();
}

void check_trusted(const std::string &path, const std::string &bytes, const LoadOptions &options) {
    std::vector<std::string> trusted = options.trusted_sha256;
    if (const char *env = std::getenv(kTrustedEnv); env && *env)
        for (const std::string &d : parse_digests(env, kTrustedEnv)) trusted.push_back(d);
    if (trusted.empty()) return;
    Sha256 h;
    h.update(bytes.data(), bytes.size());
    const std::string digest = h.hex();
    if (std::find(trusted.begin(), trusted.end(), digest) == trusted.end())
        throw Error(NNC_ERR_UNTRUSTED, "'" + path + "' (SHA-256 " + digest + ") is not on the trusted list (" +
                                           std::to_string(trusted.size()) + " digest(s) from " + kTrustedEnv +
                                           " and the trusted_sha256 option); nothing of it was loaded");
}

bool ends_with(const std::string &s, const std::string &tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

/// The archive's record names; empty when the bytes are not a readable torch zip.
std::vector<std::string> records_of(const std::string &bytes, std::string &why) {
    if (bytes.size() < 4 || bytes.compare(0, 4, "PK\x03\x04") != 0) {
        why = "not a zip archive";
        return {};
    }
    try {
        std::istringstream in(bytes);
        caffe2::serialize::PyTorchStreamReader reader(&in);
        return reader.getAllRecords();
    } catch (const std::exception &e) {
        why = torch_message(e);
        return {};
    }
}

bool has_prefix(const std::vector<std::string> &records, const std::string &prefix) {
    return std::any_of(records.begin(), records.end(), [&](const std::string &r) { return r.rfind(prefix, 0) == 0; });
}

/// Refuse, before loading anything, a file whose engine is not the one the host requires.
void require_engine(const std::string &path, const LoadOptions &options, const std::string &engine, const char *what) {
    if (options.engine.empty() || options.engine == engine) return;
    throw Error(NNC_ERR_FORMAT, "'" + path + "' is " + what + " (engine " + engine +
                                    "), but the load option engine=" + options.engine + " requires a file for the " +
                                    options.engine + " engine; nothing of it was loaded");
}

}  // namespace

void Engine::run_raw(int64_t, int, const Dims *, const void *const *, int, const Dims *, void *const *, int) {
    throw Error(NNC_ERR_RUNTIME, std::string("the ") + name() + " engine runs tensors, not raw buffers");
}

bool is_native_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    char head[sizeof kNativeMagic - 1] = {};
    return f.read(head, sizeof head) && std::memcmp(head, kNativeMagic, sizeof head) == 0;
}

std::string torch_message(const std::exception &e) {
    const auto *ce = dynamic_cast<const c10::Error *>(&e);
    std::string m = ce ? ce->what_without_backtrace() : e.what();
    if (const size_t bt = m.find("\nException raised from"); bt != std::string::npos) m.resize(bt);
    if (m.size() > 4000) m = m.substr(0, 4000) + " [...]";
    return m;
}

std::unique_ptr<Engine> open_engine(const std::string &path, const c10::Device &device, const LoadOptions &options) {
    const std::string bytes = read_file(path);
    check_trusted(path, bytes, options);
    const size_t magic = sizeof kNativeMagic - 1;
    if (bytes.size() >= magic && bytes.compare(0, magic, kNativeMagic) == 0) {
        require_engine(path, options, "native", "a native program");
        return open_native(path, bytes, device);
    }
    if (ends_with(path, ".nnp"))
        throw Error(NNC_ERR_FORMAT,
                    "'" + path +
                        "' is not a native program: it does not start with the native "
                        "magic " +
                        kNativeMagic + " (" +
                        (bytes.compare(0, 4, "PK\x03\x04") == 0 ? "it is a zip archive, a TorchScript "
                                                                  "file or an AOTInductor package; name it "
                                                                  ".pt or .pt2"
                                                                : "unknown content") +
                        "); export one with pyclosure.export(module, 'closure.nnp', example)");
    std::string why;
    const std::vector<std::string> records = records_of(bytes, why);
    if (has_prefix(records, "data/aotinductor/")) {
        require_engine(path, options, "aoti", "an AOTInductor package");
        return open_aoti(path, bytes, device);
    }
    if (!ends_with(path, ".pt2")) {
        require_engine(path, options, "torchscript", "a TorchScript file");
        return open_torchscript(path, bytes, device);
    }
    const std::string start = "'" + path + "' is not an AOTInductor package: ";
    if (records.empty()) throw Error(NNC_ERR_FORMAT, start + "it is truncated or corrupt (" + why + ")");
    if (has_prefix(records, "models/"))
        throw Error(NNC_ERR_FORMAT, start + "it is a torch.export archive (torch.export.save), which holds no compiled "
                                            "code; compile it with pyclosure.export(..., format='pt2')");
    if (has_prefix(records, "code/") || has_prefix(records, "constants.pkl"))
        throw Error(NNC_ERR_FORMAT, start + "it is a TorchScript file with a .pt2 name; name it .pt to run it "
                                            "with the TorchScript engine, or export it again with format='pt2'");
    throw Error(NNC_ERR_FORMAT, start + "it is a zip archive with no data/aotinductor/ records");
}

}  // namespace nnc
