/* run.c: the entry points that run a loaded program, and the choice of kernels. */
#include <stdlib.h>
#include <string.h>

#include "native_internal.h"

#define T float
#define SFX f32
#include "run_impl.h"
#undef T
#undef SFX
#define T double
#define SFX f64
#include "run_impl.h"
#undef T
#undef SFX

#define MAX_CELLS ((int64_t)1 << 40)

static int cpu_has_avx2(void) {
#if defined(NNN_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* __builtin_cpu_supports("avx512f") is set only when the OS saves the zmm state (XCR0). */
static int cpu_has_avx512(void) {
#if defined(NNN_HAVE_AVX512) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

const nnn_kernels *nnn_kernels_for(int isa) {
#ifdef NNN_HAVE_AVX512
    if ((isa == NNN_ISA_AUTO || isa == NNN_ISA_AVX512) && cpu_has_avx512()) return &nnn_kernels_avx512;
#endif
#ifdef NNN_HAVE_AVX2
    if ((isa == NNN_ISA_AUTO || isa == NNN_ISA_AVX2) && cpu_has_avx2()) return &nnn_kernels_avx2;
#endif
    if (isa == NNN_ISA_AUTO || isa == NNN_ISA_SCALAR) return &nnn_kernels_scalar;
    return NULL;
}

int nnn_set_isa(nnn_program *program, int isa, char *msg, size_t msg_size) {
    const nnn_kernels *k = program ? nnn_kernels_for(isa) : NULL;
    if (!k) {
        nnn_message(msg, msg_size, "instruction set %d is not built into this library or not on this CPU", isa);
        return NNN_ERR_ISA;
    }
    program->kernels = k;
    return NNN_OK;
}

const char *nnn_arith(void) { return NNN_ARITH; }
int nnn_isa(const nnn_program *program) { return program->kernels->isa; }
int nnn_dtype(const nnn_program *program) { return program->dtype; }
int nnn_is_window(const nnn_program *program) { return program->window; }

const char *nnn_contract(const nnn_program *program, size_t *size) {
    if (size) *size = program->contract_size;
    return program->contract;
}

size_t nnn_workspace_size(const nnn_program *program) {
    return 2 * NNN_ROWS * (size_t)program->stride * program->elem + 64;
}

int nnn_sizes(const nnn_program *program, int64_t ncells, int64_t *n_in, int64_t *n_out) {
    const int64_t frame = program->frame ? 2 : 0;
    if (!program->window) {
        *n_in = program->n_in;
        *n_out = program->n_out + frame;
        return NNN_OK;
    }
    const int periodic = program->boundary == NNN_BOUNDARY_PERIODIC;
    if (ncells < (periodic ? 1 : 2) || ncells > MAX_CELLS) return NNN_ERR_ARGUMENT;
    *n_in = program->channels * ncells;
    *n_out = program->n_out * (periodic ? ncells : ncells - 1) + frame;
    return NNN_OK;
}

int nnn_num_inputs(const nnn_program *program) { return program->ninputs; }

int nnn_run_inputs(const nnn_program *program, void *work, int64_t ncells, int ninputs, const void *const *x, void *y,
                   int64_t begin, int64_t end, char *msg, size_t msg_size) {
    int64_t n_in, n_out;
    if (!program || (begin < end && (!work || !x || !y)) || begin < 0 || end < begin) {
        nnn_message(msg, msg_size, "nnn_run: a NULL argument or a bad column range [%lld, %lld)", (long long)begin,
                    (long long)end);
        return NNN_ERR_ARGUMENT;
    }
    if (ninputs != program->ninputs) {
        nnn_message(msg, msg_size, "nnn_run: %d inputs given; the program takes %d", ninputs, program->ninputs);
        return NNN_ERR_ARGUMENT;
    }
    if (nnn_sizes(program, ncells, &n_in, &n_out) != NNN_OK || (program->window && end > INT64_MAX / ncells)) {
        nnn_message(msg, msg_size, "nnn_run: %lld cells; a window program needs %d to 2^40", (long long)ncells,
                    program->boundary == NNN_BOUNDARY_PERIODIC ? 1 : 2);
        return NNN_ERR_ARGUMENT;
    }
    if (begin == end) return NNN_OK;
    for (int i = 0; i < ninputs; ++i)
        if (!x[i]) {
            nnn_message(msg, msg_size, "nnn_run: input %d is NULL", i);
            return NNN_ERR_ARGUMENT;
        }
    unsigned char *base = (unsigned char *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
    const size_t half = NNN_ROWS * (size_t)program->stride * program->elem;
    if (program->dtype == NNN_F32)
        run_f32(program, (float *)base, (float *)(base + half), ncells, (const float *const *)x, y, begin, end);
    else run_f64(program, (double *)base, (double *)(base + half), ncells, (const double *const *)x, y, begin, end);
    return NNN_OK;
}

int nnn_run(const nnn_program *program, void *work, int64_t ncells, const void *x, void *y, int64_t begin, int64_t end,
            char *msg, size_t msg_size) {
    const void *inputs[1] = {x};
    return nnn_run_inputs(program, work, ncells, 1, inputs, y, begin, end, msg, msg_size);
}

int nnn_activation(int isa, int dtype, int act, void *values, int64_t n) {
    const nnn_kernels *k = nnn_kernels_for(isa);
    if (!k || (dtype != NNN_F32 && dtype != NNN_F64) || act < 0 || act > NNN_ACT_LAST || n < 0 || (n && !values))
        return NNN_ERR_ARGUMENT;
    if (dtype == NNN_F32) k->act_f32(act, values, n);
    else k->act_f64(act, values, n);
    return NNN_OK;
}
