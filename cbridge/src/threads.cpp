// threads.cpp: the intra-op thread count every call runs with.
//
// Closure calls are small (a few columns): libtorch's default, one thread per physical
// core, makes each call wait on a team that a busy machine does not schedule in time.
// The bridge therefore runs calls with its own count: nnc_set_num_threads(n) if the host
// set one, else NN_CLOSURE_NUM_THREADS, else 1. libtorch's count is the calling thread's
// OpenMP thread count (the same variable that sizes the host's parallel regions), so each
// call sets it for its duration and gives the host's value back afterwards.
#include <ATen/Parallel.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "errors.hpp"
#include "model.hpp"

namespace nnc {
namespace {

std::atomic<int> g_threads{0};  // 0: not chosen yet

int from_environment() {
    const char *text = std::getenv("NN_CLOSURE_NUM_THREADS");
    if (!text || !*text) return 1;
    char *end = nullptr;
    const long n = std::strtol(text, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
        throw Error(NNC_ERR_ARGUMENT, std::string("NN_CLOSURE_NUM_THREADS='") + text +
                                          "' is not a thread count (an integer from 1 to 4096)");
    return static_cast<int>(n);
}

}  // namespace

int get_num_threads() {
    int n = g_threads.load();
    if (n == 0) {
        int unset = 0;
        g_threads.compare_exchange_strong(unset, from_environment());
        n = g_threads.load();
    }
    return n;
}

void set_num_threads(int n) {
    if (n < 1) throw Error(NNC_ERR_ARGUMENT, "thread count must be >= 1, got " + std::to_string(n));
    g_threads.store(n);
    at::set_num_threads(n);
}

CallThreads::CallThreads() : host_(omp_get_max_threads()) {
    at::internal::lazy_init_num_threads();  // libtorch's first-use default, overridden next
    const int n = get_num_threads();
    if (omp_get_max_threads() != n) omp_set_num_threads(n);
}

CallThreads::~CallThreads() {
    if (omp_get_max_threads() != host_) omp_set_num_threads(host_);
}

}  // namespace nnc
