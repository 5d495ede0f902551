// floor.cpp: the C++ driver of the coupling benchmark (pyclosure bench).
//
// Route "floor" calls libtorch directly on preallocated buffers: per call it
// makes a tensor over the input (from_blob), runs forward under
// InferenceMode and copies the result into the preallocated output. That is
// the least work any bridge over libtorch must do, so it is the floor the
// other routes are measured against. Route "c" calls the C bridge
// (nnc_model_forward) with its descriptors filled once per batch size; routes
// "c_pt2" and "c_native" do the same on the model's AOTInductor package (.pt2)
// and on its native program (.nnp).
//
// Usage: bench_floor ROUTE MODEL DTYPE NIN NOUT THREADS DEVICE DUMPDIR
// then one command per line on stdin, each answered by one JSON line:
//   time BATCH WARMUP CALLS    per-call times in ns; on a GPU the floor also
//                              gives its host-device copy times ("copy")
//   dump BATCH 0 0             write the output for the fixed input to
//                              DUMPDIR/ROUTE-BATCH.bin
//   alloc BATCH WARMUP CALLS   heap allocations over CALLS calls (with
//                              alloc_counter preloaded) and heap growth
//   quit
// The fixed input is x[k] = ((37 k) mod 101 - 50) / 64 over the flat index k
// of the (batch, nin) array, exact in float32 and float64 (as in the Fortran
// and Python drivers).
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn_closure.h"

extern "C" {
int64_t bench_now_ns(void);
int bench_alloc_counts(int64_t *calls, int64_t *bytes);
int64_t bench_heap_in_use(void);
}

namespace {

struct Settings {
    std::string route, model, dtype, device, dumpdir;
    int64_t nin = 0, nout = 0;
    int threads = 1;
    bool f64() const { return dtype == "float64"; }
};

/// The input and output of one batch size, the input holding the fixed pattern.
struct Buffers {
    int64_t batch = -1;
    std::vector<double> x, y;  // doubles: storage aligned for either dtype

    void resize(int64_t b, const Settings &s) {
        if (b == batch) return;
        batch = b;
        const size_t item = s.f64() ? 8 : 4, nx = static_cast<size_t>(b * s.nin), ny = static_cast<size_t>(b * s.nout);
        x.assign((nx * item + 7) / 8, 0.0);
        y.assign((ny * item + 7) / 8, 0.0);
        for (size_t k = 0; k < nx; ++k) {
            const double v = static_cast<double>(static_cast<int64_t>((37 * k) % 101) - 50) / 64.0;
            if (s.f64()) x[k] = v;
            else reinterpret_cast<float *>(x.data())[k] = static_cast<float>(v);
        }
    }
};

class Driver {
public:
    explicit Driver(const Settings &s) : s_(s) {}
    virtual ~Driver() = default;
    virtual void prepare(int64_t batch) { buf_.resize(batch, s_); }
    virtual void call() = 0;  ///< one forward over the current buffers
    int64_t copy_ns = -1;     ///< host-device copy time of the last call, -1 if not measured
    const Buffers &buffers() const { return buf_; }

protected:
    Settings s_;
    Buffers buf_;
};

/// libtorch directly: the floor.
class Floor : public Driver {
public:
    explicit Floor(const Settings &s) : Driver(s), device_(s.device) {
        at::set_num_threads(s.threads);
        module_ = torch::jit::load(s.model, device_);
        module_.eval();
        opts_ = torch::TensorOptions().dtype(s.f64() ? torch::kFloat64 : torch::kFloat32);
    }

    void call() override {
        c10::InferenceMode guard;
        torch::Tensor x = torch::from_blob(buf_.x.data(), {buf_.batch, s_.nin}, opts_);
        torch::Tensor y = torch::from_blob(buf_.y.data(), {buf_.batch, s_.nout}, opts_);
        if (device_.is_cpu()) {
            std::vector<c10::IValue> args;
            args.emplace_back(std::move(x));
            y.copy_(module_.forward(std::move(args)).toTensor());
            return;
        }
        const int64_t t0 = bench_now_ns();
        std::vector<c10::IValue> args;
        args.emplace_back(x.to(device_));
        torch::cuda::synchronize();
        const int64_t t1 = bench_now_ns();
        torch::Tensor r = module_.forward(std::move(args)).toTensor();
        torch::cuda::synchronize();
        const int64_t t2 = bench_now_ns();
        y.copy_(r);
        copy_ns = (t1 - t0) + (bench_now_ns() - t2);
    }

private:
    torch::Device device_;
    torch::jit::Module module_;
    torch::TensorOptions opts_;
};

/// The C bridge, descriptors filled once per batch size.
class Bridge : public Driver {
public:
    explicit Bridge(const Settings &s) : Driver(s) {
        check(nnc_set_num_threads(s.threads));
        check(nnc_model_load(&model_, s.model.c_str(), s.device.c_str()));
    }
    ~Bridge() override { nnc_model_free(&model_); }

    void prepare(int64_t batch) override {
        Driver::prepare(batch);
        in_ = describe(buf_.x.data(), batch, s_.nin);
        out_ = describe(buf_.y.data(), batch, s_.nout);
    }

    void call() override { check(nnc_model_forward(model_, 1, &in_, 1, &out_)); }

private:
    nnc_model model_ = nullptr;
    nnc_array in_{}, out_{};

    static void check(int status) {
        if (status != NNC_OK) throw std::runtime_error(nnc_last_error());
    }

    nnc_array describe(void *data, int64_t batch, int64_t n) const {
        nnc_array a{};
        a.data = data;
        a.dtype = s_.f64() ? NNC_FLOAT64 : NNC_FLOAT32;
        a.rank = 2;
        a.order = NNC_ORDER_C;
        a.shape[0] = batch;
        a.shape[1] = n;
        a.strides = nullptr;
        return a;
    }
};

void time_calls(Driver &d, int64_t warmup, int64_t calls) {
    for (int64_t i = 0; i < warmup; ++i) d.call();
    std::vector<int64_t> t(static_cast<size_t>(calls)), copy(static_cast<size_t>(calls));
    for (size_t i = 0; i < t.size(); ++i) {
        const int64_t t0 = bench_now_ns();
        d.call();
        t[i] = bench_now_ns() - t0;
        copy[i] = d.copy_ns;
    }
    std::string line = "{\"batch\":" + std::to_string(d.buffers().batch) + ",\"t\":[";
    for (size_t i = 0; i < t.size(); ++i) line += (i ? "," : "") + std::to_string(t[i]);
    if (d.copy_ns >= 0) {
        line += "],\"copy\":[";
        for (size_t i = 0; i < copy.size(); ++i) line += (i ? "," : "") + std::to_string(copy[i]);
    }
    std::cout << line << "]}" << std::endl;
}

void count_allocations(Driver &d, int64_t warmup, int64_t calls) {
    for (int64_t i = 0; i < warmup; ++i) d.call();
    int64_t n0, b0, n1, b1;
    const int64_t h0 = bench_heap_in_use();
    bench_alloc_counts(&n0, &b0);
    for (int64_t i = 0; i < calls; ++i) d.call();
    bench_alloc_counts(&n1, &b1);
    const int64_t h1 = bench_heap_in_use();
    const bool counted = n0 >= 0;
    std::cout << "{\"batch\":" << d.buffers().batch << ",\"calls\":" << calls
              << ",\"allocs\":" << (counted ? n1 - n0 : -1) << ",\"bytes\":" << (counted ? b1 - b0 : -1)
              << ",\"heap_growth\":" << h1 - h0 << "}" << std::endl;
}

void dump(Driver &d, const Settings &s) {
    d.call();
    const std::string path = s.dumpdir + "/" + s.route + "-" + std::to_string(d.buffers().batch) + ".bin";
    std::ofstream f(path, std::ios::binary);
    const auto bytes = static_cast<std::streamsize>(d.buffers().batch * s.nout * (s.f64() ? 8 : 4));
    f.write(reinterpret_cast<const char *>(d.buffers().y.data()), bytes);
    if (!f) throw std::runtime_error("cannot write " + path);
    std::cout << "{\"dump\":\"" << path << "\"}" << std::endl;
}

void serve(Driver &d, const Settings &s) {
    std::string op;
    int64_t batch, warmup, calls;
    while (std::cin >> op && op != "quit") {
        if (!(std::cin >> batch >> warmup >> calls) || batch < 1)
            throw std::runtime_error("bad command '" + op + "': expected OP BATCH WARMUP CALLS");
        d.prepare(batch);
        if (op == "time") time_calls(d, warmup, calls);
        else if (op == "dump") dump(d, s);
        else if (op == "alloc") count_allocations(d, warmup, calls);
        else throw std::runtime_error("unknown command '" + op + "'");
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 9) {
        std::cerr
            << "usage: bench_floor floor|c|c_pt2|c_native MODEL float32|float64 NIN NOUT THREADS DEVICE DUMPDIR\n";
        return 2;
    }
    Settings s{argv[1],           argv[2], argv[3], argv[7], argv[8], std::stoll(argv[4]), std::stoll(argv[5]),
               std::stoi(argv[6])};
    try {
        std::unique_ptr<Driver> d;
        if (s.route == "floor") d = std::make_unique<Floor>(s);
        else if (s.route == "c" || s.route == "c_pt2" || s.route == "c_native") d = std::make_unique<Bridge>(s);
        else throw std::runtime_error("unknown route '" + s.route + "' (floor, c, c_pt2 or c_native)");
        std::cout << "{\"ready\":1,\"route\":\"" << s.route << "\",\"threads\":" << at::get_num_threads() << "}"
                  << std::endl;
        serve(*d, s);
    } catch (const std::exception &e) {
        std::cerr << "bench_floor " << s.route << ": " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
