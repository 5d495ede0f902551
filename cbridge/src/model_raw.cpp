// model_raw.cpp: the call path of raw engines (Engine::raw, the native engine),
// with no torch tensor on it. The checks before it (contract, guard arrays) are
// model.cpp's; the guardrails, statistics and recording after it behave as on
// the tensor path. Inputs dense in C (torch) order are read in place and dense
// outputs written in place; anything else goes through per-thread scratch that
// only grows, so a steady run of calls allocates nothing.
#include <cstring>
#include <vector>

#include "errors.hpp"
#include "layout.hpp"
#include "model_impl.hpp"

namespace nnc {

namespace {

void *grow(std::vector<unsigned char> &v, size_t bytes) {
    if (v.size() < bytes) v.resize(bytes);
    return v.data();
}

size_t bytes_of(const nnc_array &a) { return static_cast<size_t>(numel(a)) * dtype_size(a.dtype); }

NpyArray record_raw(const std::string &name, int dtype, const Dims &sizes, const void *data) {
    NpyArray a;
    a.name = name;
    a.dtype = dtype;
    a.shape = sizes.vec();
    int64_t n = 1;
    for (int64_t s : sizes) n *= s;
    a.bytes.assign(static_cast<const char *>(data), static_cast<size_t>(n) * dtype_size(dtype));
    return a;
}

double value_at(const void *data, int dtype, int64_t k) {
    return dtype == NNC_FLOAT32 ? static_cast<const float *>(data)[k] : static_cast<const double *>(data)[k];
}

/// Per-thread buffers, grown on demand and kept for the next call, and the
/// steps of a call that use them.
struct Scratch {
    std::vector<std::vector<unsigned char>> in, out;
    std::vector<const void *> in_ptr;
    std::vector<void *> out_ptr;
    std::vector<Dims> in_sizes, out_sizes;
    std::vector<uint8_t> col;        // per-column nnc_flag bits
    std::vector<int64_t> rows;       // the columns given the host's values
    std::vector<int32_t> flags;      // the same as the caller's int32 flags
    std::vector<unsigned char> row;  // one fallback column

    /// Room for a call of `ni` inputs, `no` outputs and `batch` columns, no column flagged.
    void reset(size_t ni, size_t no, int64_t batch) {
        if (in.size() < ni) in.resize(ni);
        if (out.size() < no) out.resize(no);
        in_ptr.resize(ni);
        out_ptr.resize(no);
        in_sizes.resize(ni);
        out_sizes.resize(no);
        col.assign(static_cast<size_t>(batch), 0);
        rows.clear();
    }

    /// Input `i` dense in C order: in place, or a strided view gathered (one copy).
    void read_input(size_t i, const nnc_array &a, int64_t batch) {
        in_sizes[i] = torch_sizes(a);
        if (dense_c(a)) {
            in_ptr[i] = a.data;
            return;
        }
        void *p = grow(in[i], bytes_of(a));
        gather_rows(a, 0, batch, p);
        in_ptr[i] = p;
    }

    /// Where the engine writes output `i`: the caller's array when dense in C order, else scratch.
    void place_output(size_t i, const nnc_array &o) {
        out_sizes[i] = torch_sizes(o);
        out_ptr[i] = dense_c(o) ? o.data : grow(out[i], bytes_of(o));
    }

    /// Column `b` of the first `num_fallback` outputs from the host's fallback arrays.
    void fallback_column(int64_t b, int num_fallback, const nnc_array *fallback, int64_t batch) {
        for (int i = 0; i < num_fallback; ++i) {
            const nnc_array &fb = fallback[i];
            const size_t per = batch ? bytes_of(fb) / static_cast<size_t>(batch) : 0;
            gather_rows(fb, b, b + 1, grow(row, per));
            std::memcpy(static_cast<char *>(out_ptr[static_cast<size_t>(i)]) + b * per, row.data(), per);
        }
    }

    /// The outputs the engine wrote to scratch into the caller's arrays, and the column flags if asked for.
    void write(size_t no, const nnc_array *outputs, const nnc_array *flags_out, int64_t batch) {
        for (size_t i = 0; i < no; ++i)
            if (out_ptr[i] != outputs[i].data) scatter_rows(out_ptr[i], outputs[i], 0, batch);
        if (!flags_out || batch == 0) return;
        flags.resize(static_cast<size_t>(batch));
        for (int64_t b = 0; b < batch; ++b) flags[static_cast<size_t>(b)] = col[static_cast<size_t>(b)];
        nnc_array whole = *flags_out;  // one row of `batch` entries, in the caller's element order
        scatter_rows(flags.data(), whole, 0, torch_sizes(whole).size() ? torch_sizes(whole)[0] : 1);
    }
};

}  // namespace

void Model::run_raw(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs,
                    int num_fallback, const nnc_array *fallback, const nnc_array *flags, int64_t batch,
                    std::chrono::steady_clock::time_point t0) {
    const Contract *c = impl_->contract.get();
    const Policy &pol = impl_->policy;
    const bool scan = pol.nonfinite != Policy::NonFinite::Off;
    thread_local Scratch s;
    const size_t ni = static_cast<size_t>(num_inputs), no = static_cast<size_t>(num_outputs);
    s.reset(ni, no, batch);
    Recorder *rec = impl_->recorder.get();
    if (rec) rec->flush();  // the previous call's record, with its host arrays
    const bool recorded = rec && rec->sample();
    auto nonfinite = [&](const void *data, const nnc_array &a, bool output, size_t i) {
        if (batch == 0 || numel(a) == 0) return;
        const int64_t first =
            scan_nonfinite(data, a.dtype, batch, numel(a) / batch, output ? kNonFiniteOutput : kNonFiniteInput, s.col);
        if (first >= 0 && pol.nonfinite == Policy::NonFinite::Error)
            throw_nonfinite(c, output, static_cast<int>(i), a, first, batch, value_at(data, a.dtype, first));
    };

    std::vector<NpyArray> recorded_inputs;
    for (size_t i = 0; i < ni; ++i) {
        s.read_input(i, inputs[i], batch);
        if (scan) nonfinite(s.in_ptr[i], inputs[i], false, i);
        if (recorded)
            recorded_inputs.push_back(
                record_raw(io_name(c, false, static_cast<int>(i)), inputs[i].dtype, s.in_sizes[i], s.in_ptr[i]));
    }
    for (size_t i = 0; i < no; ++i) {
        if (outputs[i].strides) check_no_overlap(c, static_cast<int>(i), outputs[i]);  // none given: dense
        s.place_output(i, outputs[i]);
    }
    if (batch > 0)
        impl_->engine->run_raw(batch, num_inputs, s.in_sizes.data(), s.in_ptr.data(), num_outputs, s.out_sizes.data(),
                               s.out_ptr.data(), get_num_threads());
    if (scan)
        for (size_t i = 0; i < no; ++i) nonfinite(s.out_ptr[i], outputs[i], true, i);
    std::vector<NpyArray> recorded_outputs;  // the network's outputs, as replay recomputes them
    if (recorded)
        for (size_t i = 0; i < no; ++i)
            recorded_outputs.push_back(
                record_raw(io_name(c, true, static_cast<int>(i)), outputs[i].dtype, s.out_sizes[i], s.out_ptr[i]));
    const uint8_t replace = pol.nonfinite == Policy::NonFinite::Fallback ? kNonFiniteInput | kNonFiniteOutput : 0;
    const FlagCounts counts = count_flags(s.col, batch, replace, s.rows);
    for (int64_t b : s.rows) s.fallback_column(b, num_fallback, fallback, batch);
    s.write(no, outputs, flags, batch);
    const int64_t call = ++impl_->calls;
    if (recorded) rec->open(call, get_num_threads(), std::move(recorded_inputs), std::move(recorded_outputs));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    impl_->stats.add_call(seconds, batch, counts.nonfinite_in, counts.nonfinite_out, counts.ood, counts.replaced);
}

}  // namespace nnc
