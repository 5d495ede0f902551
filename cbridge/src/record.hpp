// record.hpp: recording forward calls for replay. A Recorder belongs to one
// model; every n-th forward call becomes one record file holding the call's
// inputs and outputs, plus the host arrays added with nnc_record_array until
// the next forward call. Torch-free: the model hands it plain byte arrays.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "npz.hpp"

namespace nnc {

/// What a recording needs to know about its model and run.
struct RecordSetup {
    std::string dir;
    int every = 1;          ///< record call 1, 1+every, 1+2*every, ... after start
    int64_t max_bytes = 0;  ///< size cap of all records together
    std::string model_path;
    std::string device;
    std::string libtorch;
    std::string engine;  ///< "torchscript" or "aotinductor"
    std::string bridge;
};

/// Records are record_<call>.npz in `dir`; recording.json summarises the run.
class Recorder {
public:
    /// Create `dir` if needed (one level), refuse one that already holds
    /// records, hash the model file. Throws NNC_ERR_RECORD / NNC_ERR_IO.
    explicit Recorder(RecordSetup setup);
    ~Recorder();  ///< finish(), errors swallowed (a destructor cannot report)
    Recorder(const Recorder &) = delete;
    Recorder &operator=(const Recorder &) = delete;

    /// Write the record left open by the previous call. Throws NNC_ERR_RECORD
    /// (and stops recording) when it cannot be written.
    void flush();
    /// Count one forward call; true when it is to be recorded.
    bool sample();
    /// Open the record of forward call `call` (written at the next flush).
    void open(int64_t call, int threads, std::vector<NpyArray> inputs, std::vector<NpyArray> outputs);
    /// Add a host array to the open record; false when no record is open
    /// (recording stopped, or this call not sampled).
    bool add(NpyArray host);
    /// Write the open record and the final summary; recording ends.
    void finish();
    /// The weight version (nnc_train_sync) and its SHA-256 that later calls run with.
    void set_weights(int64_t version, const std::string &sha256);

    bool active() const;
    const std::string &dir() const { return setup_.dir; }

private:
    void write_open();                                       // needs mutex_ held
    std::string meta_json(const std::string &arrays) const;  ///< the open record's meta.json
    void clear_open();                                       ///< drop the open record's arrays
    void write_summary(const std::string &state, const std::string &message);

    RecordSetup setup_;
    std::string model_sha256_;
    mutable std::mutex mutex_;
    bool active_ = true;
    int64_t calls_seen_ = 0;
    int64_t records_ = 0;
    int64_t bytes_ = 0;
    int64_t skipped_at_cap_ = 0;
    std::string state_ = "recording";
    std::string message_;
    bool finished_ = false;
    // the open record
    bool open_ = false;
    int64_t call_ = 0;
    int threads_ = 0;
    int64_t weights_version_ = 0, open_version_ = 0;  // 0: the model file's own weights
    std::string weights_sha256_, open_sha256_;
    std::string time_;
    std::vector<NpyArray> inputs_, outputs_, host_;
};

/// Settings of recording started by the environment (NN_CLOSURE_RECORD=dir,
/// NN_CLOSURE_RECORD_EVERY=n, NN_CLOSURE_RECORD_MAX_MB=m); empty dir: none.
RecordSetup setup_from_environment(const std::string &model_path);

/// The default size cap when none is given: 1 GiB.
constexpr int64_t kDefaultRecordCap = int64_t(1) << 30;

}  // namespace nnc
