// model_raw.cpp: the call path of raw engines (Engine::raw, the native engine),
// with no torch tensor on it. The checks before it (contract, guard arrays) are
// model.cpp's; the guardrails, statistics and recording after it behave as on
// the tensor path. Inputs dense in C (torch) order are read in place and dense
// outputs written in place; anything else goes through per-thread scratch that
// only grows, so a steady run of calls allocates nothing.
#include <cmath>
#include <cstring>
#include <vector>

#include "errors.hpp"
#include "layout.hpp"
#include "model_impl.hpp"

namespace nnc {

namespace {

/// Per-thread buffers, grown on demand and kept for the next call.
struct Scratch {
    std::vector<std::vector<unsigned char>> in, out;
    std::vector<const void *> in_ptr;
    std::vector<void *> out_ptr;
    std::vector<Dims> in_sizes, out_sizes;
    std::vector<uint8_t> col;       // per-column nnc_flag bits
    std::vector<int32_t> flags;     // the same as the caller's int32 flags
    std::vector<unsigned char> row; // one fallback column
};

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

}  // namespace

void Model::run_raw(int num_inputs, const nnc_array *inputs, int num_outputs, const nnc_array *outputs,
                    int num_fallback, const nnc_array *fallback, const nnc_array *flags, int64_t batch,
                    std::chrono::steady_clock::time_point t0) {
    const Contract *c = impl_->contract.get();
    const Policy &pol = impl_->policy;
    thread_local Scratch s;
    const size_t ni = static_cast<size_t>(num_inputs), no = static_cast<size_t>(num_outputs);
    if (s.in.size() < ni) s.in.resize(ni);
    if (s.out.size() < no) s.out.resize(no);
    s.in_ptr.resize(ni);
    s.out_ptr.resize(no);
    s.in_sizes.resize(ni);
    s.out_sizes.resize(no);
    s.col.assign(static_cast<size_t>(batch), 0);
    Recorder *rec = impl_->recorder.get();
    if (rec) rec->flush();  // the previous call's record, with its host arrays
    const bool recorded = rec && rec->sample();

    auto nonfinite = [&](const void *data, const nnc_array &a, bool output, int i) {
        if (batch == 0 || numel(a) == 0) return;
        const int64_t per = numel(a) / batch;
        const int64_t first = scan_nonfinite(data, a.dtype, batch, per, output ? kNonFiniteOutput : kNonFiniteInput,
                                             s.col);
        if (first < 0 || pol.nonfinite != Policy::NonFinite::Error) return;
        const int64_t b = first / per;
        const double v = value_at(data, a.dtype, first);
        const std::string value = std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
        const std::string where = a.order == NNC_ORDER_F ? "column " + std::to_string(b + 1) + " of " +
                                                               std::to_string(batch) + " (the last Fortran index)"
                                                         : "batch row " + std::to_string(b) + " of " +
                                                               std::to_string(batch) + " (0-based)";
        const std::string what = output ? out_label(c, i) + " of the model"
                                        : "input " + (c ? "'" + c->inputs[static_cast<size_t>(i)].name + "' " : "") +
                                              "(argument " + std::to_string(i + 1) + ")";
        throw Error(NNC_ERR_NONFINITE, what + " has " + value + " in " + where +
                                           "; load with nonfinite=fallback to give such columns the host's result");
    };

    std::vector<NpyArray> recorded_inputs;
    for (size_t i = 0; i < ni; ++i) {
        const nnc_array &a = inputs[i];
        s.in_sizes[i] = torch_sizes(a);
        if (dense_c(a)) {
            s.in_ptr[i] = a.data;
        } else {  // a strided view: one copy
            void *p = grow(s.in[i], bytes_of(a));
            gather_rows(a, 0, batch, p);
            s.in_ptr[i] = p;
        }
        if (pol.nonfinite != Policy::NonFinite::Off) nonfinite(s.in_ptr[i], a, false, static_cast<int>(i));
        if (recorded) recorded_inputs.push_back(record_raw(io_name(c, false, static_cast<int>(i)), a.dtype,
                                                           s.in_sizes[i], s.in_ptr[i]));
    }
    for (size_t i = 0; i < no; ++i) {
        const nnc_array &o = outputs[i];
        s.out_sizes[i] = torch_sizes(o);
        const Dims strides = o.strides ? torch_strides(o) : Dims();  // no strides given: dense, nothing overlaps
        for (size_t d = 0; d < strides.size(); ++d)
            if (strides[d] == 0 && s.out_sizes[i][d] > 1)
                throw Error(NNC_ERR_ARGUMENT, out_label(c, static_cast<int>(i)) +
                                                  ": its strides make elements overlap (stride 0 along a dimension "
                                                  "of extent " + std::to_string(s.out_sizes[i][d]) + ")");
        s.out_ptr[i] = dense_c(o) ? o.data : grow(s.out[i], bytes_of(o));
    }
    if (batch > 0) impl_->engine->run_raw(batch, num_inputs, s.in_sizes.data(), s.in_ptr.data(), num_outputs,
                                          s.out_sizes.data(), s.out_ptr.data(), get_num_threads());
    if (pol.nonfinite != Policy::NonFinite::Off)
        for (size_t i = 0; i < no; ++i) nonfinite(s.out_ptr[i], outputs[i], true, static_cast<int>(i));
    std::vector<NpyArray> recorded_outputs;  // the network's outputs, as replay recomputes them
    if (recorded)
        for (size_t i = 0; i < no; ++i)
            recorded_outputs.push_back(record_raw(io_name(c, true, static_cast<int>(i)), outputs[i].dtype,
                                                  s.out_sizes[i], s.out_ptr[i]));

    const uint8_t replace = pol.nonfinite == Policy::NonFinite::Fallback ? kNonFiniteInput | kNonFiniteOutput : 0;
    int64_t counts[4] = {0, 0, 0, 0};  // non-finite input, non-finite output, ood, replaced
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t f = s.col[static_cast<size_t>(b)];
        if (!f) continue;
        counts[0] += (f & kNonFiniteInput) != 0;
        counts[1] += (f & kNonFiniteOutput) != 0;
        counts[2] += (f & kOod) != 0;
        if (!(f & replace)) continue;
        ++counts[3];
        for (int i = 0; i < num_fallback; ++i) {  // the host's values in this column
            const nnc_array &fb = fallback[i];
            const size_t per = batch ? bytes_of(fb) / static_cast<size_t>(batch) : 0;
            gather_rows(fb, b, b + 1, grow(s.row, per));
            std::memcpy(static_cast<char *>(s.out_ptr[static_cast<size_t>(i)]) + b * per, s.row.data(), per);
        }
    }
    for (size_t i = 0; i < no; ++i)
        if (s.out_ptr[i] != outputs[i].data) scatter_rows(s.out_ptr[i], outputs[i], 0, batch);
    if (flags && batch > 0) {
        s.flags.resize(static_cast<size_t>(batch));
        for (int64_t b = 0; b < batch; ++b) s.flags[static_cast<size_t>(b)] = s.col[static_cast<size_t>(b)];
        nnc_array whole = *flags;  // one row of `batch` entries, in the caller's element order
        scatter_rows(s.flags.data(), whole, 0, torch_sizes(whole).size() ? torch_sizes(whole)[0] : 1);
    }
    const int64_t call = ++impl_->calls;
    if (recorded) rec->open(call, get_num_threads(), std::move(recorded_inputs), std::move(recorded_outputs));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    impl_->stats.add_call(seconds, batch, counts[0], counts[1], counts[2], counts[3]);
}

}  // namespace nnc
