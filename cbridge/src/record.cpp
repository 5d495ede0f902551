// record.cpp: the Recorder (see record.hpp): record files, the size cap,
// the run summary recording.json, and recording set up from the environment.
#include "record.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "checksum.hpp"
#include "errors.hpp"
#include "json.hpp"
#include "layout.hpp"

namespace nnc {
namespace {

void make_dirs(const std::string &dir) {
    for (size_t pos = 1; pos != std::string::npos;) {
        pos = dir.find('/', pos);
        std::string part = dir.substr(0, pos);
        if (pos != std::string::npos) ++pos;
        if (part.empty() || ::mkdir(part.c_str(), 0777) == 0 || errno == EEXIST) continue;
        throw Error(NNC_ERR_RECORD, "cannot create record directory '" + part + "': " + std::strerror(errno));
    }
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        throw Error(NNC_ERR_RECORD, "record directory '" + dir + "' is not a directory");
}

bool holds_recording(const std::string &dir) {
    DIR *d = ::opendir(dir.c_str());
    if (!d) throw Error(NNC_ERR_RECORD, "cannot read record directory '" + dir + "': " + std::strerror(errno));
    bool found = false;
    while (const dirent *e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "recording.json" || name.rfind("record_", 0) == 0) found = true;
    }
    ::closedir(d);
    return found;
}

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string shape_json(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

int64_t env_int(const char *var, int64_t fallback) {
    const char *v = std::getenv(var);
    if (!v || !*v) return fallback;
    char *end = nullptr;
    errno = 0;
    long long n = std::strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 1)
        throw Error(NNC_ERR_RECORD, std::string(var) + "='" + v + "' is not a positive integer");
    return n;
}

void write_text_atomically(const std::string &path, const std::string &text) {
    const std::string tmp = path + ".partial";
    std::FILE *f = std::fopen(tmp.c_str(), "wb");
    bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (f) ok = (std::fflush(f) == 0) && (::fsync(::fileno(f)) == 0) && ok;
    if (f && std::fclose(f) != 0) ok = false;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error(NNC_ERR_RECORD, "cannot write '" + path + "': " + std::strerror(errno));
    }
}

}  // namespace

Recorder::Recorder(RecordSetup setup) : setup_(std::move(setup)) {
    if (setup_.dir.empty()) throw Error(NNC_ERR_ARGUMENT, "record directory is empty");
    if (setup_.every < 1)
        throw Error(NNC_ERR_ARGUMENT, "record every must be >= 1, got " + std::to_string(setup_.every));
    if (setup_.max_bytes <= 0) setup_.max_bytes = kDefaultRecordCap;
    make_dirs(setup_.dir);
    if (holds_recording(setup_.dir))
        throw Error(NNC_ERR_RECORD, "record directory '" + setup_.dir +
                                        "' already holds a recording; give each run an empty or new directory");
    model_sha256_ = sha256_file(setup_.model_path);
    write_summary("recording", "");
}

Recorder::~Recorder() {
    try {
        finish();
    } catch (...) {
    }
}

bool Recorder::active() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return active_;
}

bool Recorder::sample() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++calls_seen_;
    return active_ && (calls_seen_ - 1) % setup_.every == 0;
}

void Recorder::open(int64_t call, int threads, std::vector<NpyArray> inputs, std::vector<NpyArray> outputs) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!active_) return;
    open_ = true;
    call_ = call;
    threads_ = threads;
    time_ = utc_now();
    open_version_ = weights_version_;
    open_sha256_ = weights_sha256_;
    inputs_ = std::move(inputs);
    outputs_ = std::move(outputs);
    host_.clear();
}

void Recorder::set_weights(int64_t version, const std::string &sha256) {
    std::lock_guard<std::mutex> lock(mutex_);
    weights_version_ = version;
    weights_sha256_ = sha256;
}

bool Recorder::add(NpyArray host) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!open_) return false;
    for (const auto &h : host_)
        if (h.name == host.name)
            throw Error(NNC_ERR_ARGUMENT,
                        "host array '" + host.name + "' was already recorded for call " + std::to_string(call_));
    host_.push_back(std::move(host));
    return true;
}

void Recorder::flush() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) write_open();
}

void Recorder::finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) write_open();
    if (finished_) return;
    finished_ = true;
    active_ = false;
    if (state_ == "recording") {
        state_ = "stopped";
        message_ = "recording stopped by the host (nnc_record_stop or the model freed)";
    }
    write_summary(state_, message_);  // the final counts
}

namespace {

/// One array of a record: its zip member, .npy header and SHA-256 (of header and data).
struct RecordMember {
    std::string role, file, header;
    const NpyArray *array;
    std::string sha;
};

/// The record's members in order (inputs, outputs, host arrays), each hashed.
std::vector<RecordMember> record_members(const std::vector<NpyArray> &inputs, const std::vector<NpyArray> &outputs,
                                         const std::vector<NpyArray> &host) {
    std::vector<RecordMember> members;
    auto gather = [&](const std::vector<NpyArray> &list, const std::string &role, const std::string &prefix) {
        for (const auto &a : list) members.push_back({role, prefix + a.name + ".npy", npy_header(a), &a, ""});
    };
    gather(inputs, "input", "in.");
    gather(outputs, "output", "out.");
    gather(host, "host", "host.");
    for (auto &m : members) {
        Sha256 sha;
        sha.update(m.header.data(), m.header.size());
        sha.update(m.array->bytes.data(), m.array->bytes.size());
        m.sha = sha.hex();
    }
    return members;
}

/// The "arrays" entries of meta.json, one per member.
std::string arrays_json(const std::vector<RecordMember> &members) {
    std::string arrays;
    for (const auto &m : members)
        arrays += std::string(arrays.empty() ? "" : ",\n    ") + json::quote(m.file) + ": {\"role\": \"" + m.role +
                  "\", \"name\": " + json::quote(m.array->name) + ", \"dtype\": \"" + dtype_name(m.array->dtype) +
                  "\", \"shape\": " + shape_json(m.array->shape) + ", \"order\": \"" +
                  (m.array->fortran_order ? "F" : "C") + "\", \"sha256\": \"" + m.sha + "\"}";
    return arrays;
}

}  // namespace

std::string Recorder::meta_json(const std::string &arrays) const {
    return "{\n  \"schema\": \"pyclosure.record/1\",\n  \"call\": " + std::to_string(call_) + ",\n  \"time\": \"" +
           time_ + "\",\n  \"model_path\": " + json::quote(setup_.model_path) + ",\n  \"model_sha256\": \"" +
           model_sha256_ + "\",\n  \"device\": " + json::quote(setup_.device) +
           ",\n  \"threads\": " + std::to_string(threads_) + ",\n  \"libtorch\": " + json::quote(setup_.libtorch) +
           ",\n  \"engine\": " + json::quote(setup_.engine) +
           (open_version_ > 0 ? ",\n  \"weights_version\": " + std::to_string(open_version_) +
                                    ",\n  \"weights_sha256\": \"" + open_sha256_ + "\""
                              : std::string()) +
           ",\n  \"bridge\": " + json::quote(setup_.bridge) + ",\n  \"arrays\": {\n    " + arrays + "\n  }\n}\n";
}

void Recorder::clear_open() {
    inputs_.clear();
    outputs_.clear();
    host_.clear();
}

void Recorder::write_open() {
    open_ = false;
    const std::vector<RecordMember> members = record_members(inputs_, outputs_, host_);
    const std::string meta = meta_json(arrays_json(members));
    int64_t size = static_cast<int64_t>(meta.size());
    for (const auto &m : members) size += static_cast<int64_t>(m.header.size() + m.array->bytes.size());
    if (bytes_ + size > setup_.max_bytes) {
        active_ = false;
        state_ = "capped";
        const std::string message = "size cap of " + std::to_string(setup_.max_bytes) + " bytes reached at call " +
                                    std::to_string(call_) + " (this record: " + std::to_string(size) +
                                    " bytes); no later call is recorded";
        std::fprintf(stderr, "nn_closure: recording in '%s' stopped: %s\n", setup_.dir.c_str(), message.c_str());
        clear_open();
        message_ = message;
        write_summary(state_, message);
        return;
    }
    char file[40];
    std::snprintf(file, sizeof file, "record_%09lld.npz", static_cast<long long>(call_));
    std::vector<ZipMember> zip{{"meta.json", &meta, nullptr}};
    for (const auto &m : members) zip.push_back({m.file, &m.header, &m.array->bytes});
    try {
        write_zip(setup_.dir + "/" + file, zip);
    } catch (const Error &e) {
        active_ = false;
        state_ = "failed";
        message_ = e.what();
        clear_open();
        try {
            write_summary(state_, e.what());
        } catch (...) {
        }
        throw Error(NNC_ERR_RECORD, std::string(e.what()) + "; recording stopped");
    }
    ++records_;
    bytes_ += size;
    clear_open();
}

void Recorder::write_summary(const std::string &state, const std::string &message) {
    const std::string text =
        "{\n  \"schema\": \"pyclosure.recording/1\",\n  \"state\": \"" + state +
        "\",\n  \"message\": " + json::quote(message) + ",\n  \"model_path\": " + json::quote(setup_.model_path) +
        ",\n  \"model_sha256\": \"" + model_sha256_ + "\",\n  \"every\": " + std::to_string(setup_.every) +
        ",\n  \"max_bytes\": " + std::to_string(setup_.max_bytes) +
        ",\n  \"calls_seen\": " + std::to_string(calls_seen_) + ",\n  \"records\": " + std::to_string(records_) +
        ",\n  \"bytes\": " + std::to_string(bytes_) + "\n}\n";
    write_text_atomically(setup_.dir + "/recording.json", text);
}

RecordSetup setup_from_environment(const std::string &model_path) {
    RecordSetup s;
    const char *dir = std::getenv("NN_CLOSURE_RECORD");
    if (!dir || !*dir) return s;
    s.every = static_cast<int>(env_int("NN_CLOSURE_RECORD_EVERY", 1));
    s.max_bytes = env_int("NN_CLOSURE_RECORD_MAX_MB", kDefaultRecordCap >> 20) << 20;
    std::string stem = model_path.substr(model_path.find_last_of('/') + 1);
    if (stem.size() > 3 && stem.substr(stem.size() - 3) == ".pt") stem.resize(stem.size() - 3);
    std::string who;
    for (const char *var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID", "PMIX_RANK"}) {
        if (const char *v = std::getenv(var)) {
            who = std::string("rank") + v;
            break;
        }
    }
    if (who.empty()) who = "pid" + std::to_string(::getpid());
    static std::atomic<int> count{0};
    const int k = ++count;
    s.dir = std::string(dir) + "/" + stem + "-" + who + (k > 1 ? "-" + std::to_string(k) : "");
    return s;
}

}  // namespace nnc
