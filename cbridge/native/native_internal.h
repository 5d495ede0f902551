/* native_internal.h: the loaded program and the kernel table shared by the native sources. */
#ifndef NN_NATIVE_INTERNAL_H
#define NN_NATIVE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn_native.h"

/* Op kinds of the file format (README.md, "Ops"). */
enum {
    NNN_OP_NORMALIZE = 1,
    NNN_OP_DENORMALIZE = 2,
    NNN_OP_DENSE = 3,
    NNN_OP_ACTIVATION = 4,
    NNN_OP_WINDOW = 5,
    NNN_OP_GRADIENT = 6,
    NNN_OP_FRAME = 7
};
enum {
    NNN_ACT_IDENTITY = 0,
    NNN_ACT_TANH = 1,
    NNN_ACT_RELU = 2,
    NNN_ACT_SOFTPLUS = 3
};
#define NNN_ACT_LAST NNN_ACT_SOFTPLUS
/* Window boundaries: periodic (N faces), or a column (faces 1 .. N-1 between its N cells)
 * whose windows extend past the ends by the edge cell (replicate) or by zeros. */
enum {
    NNN_BOUNDARY_PERIODIC = 1,
    NNN_BOUNDARY_REPLICATE = 2,
    NNN_BOUNDARY_ZEROS = 3
};
/* Where a frame's first value (the surface face) comes from. */
enum {
    NNN_SURFACE_ZERO = 0,
    NNN_SURFACE_INPUT = 1
};

#define NNN_MAX_DIM (1 << 20) /* largest size of any dimension in a file */
#define NNN_MAX_OPS 64
#define NNN_ROWS 48        /* rows (columns or faces) per chunk of a run */
#define NNN_BLOCK_BYTES 64 /* outputs are packed in blocks of 64 bytes: 16 float, 8 double */

/* One step of the row pipeline. */
typedef struct {
    int op;         /* index of its op in the file */
    int kind;       /* NNN_OP_DENSE, NNN_OP_ACTIVATION, NNN_OP_NORMALIZE, NNN_OP_DENORMALIZE */
    int act;        /* dense and activation: the activation applied to the result */
    int64_t n_in;   /* width in */
    int64_t n_out;  /* width out */
    int64_t n_pad;  /* dense: n_out rounded up to a whole block */
    int64_t nparam; /* normalisers: 1 or the width */
    void *w;        /* dense: packed weights, blocks of n_in x block; normalisers: mean */
    void *b;        /* dense: bias padded to n_pad; normalisers: std */
} nnn_step;

/* The kernels of one instruction set. Dense: y[r][o] = act(b[o] + sum_i w[o][i] x[r][i]) for
 * r < rows, o < n_pad, with w packed (see load.c) and y rows of stride ldy >= n_pad. */
typedef struct {
    int isa;
    void (*dense_f32)(const float *w, const float *b, int64_t n_in, int64_t n_pad, int act, const float *x, int64_t ldx,
                      float *y, int64_t ldy, int64_t rows);
    void (*dense_f64)(const double *w, const double *b, int64_t n_in, int64_t n_pad, int act, const double *x,
                      int64_t ldx, double *y, int64_t ldy, int64_t rows);
    void (*act_f32)(int act, float *v, int64_t n);
    void (*act_f64)(int act, double *v, int64_t n);
} nnn_kernels;

extern const nnn_kernels nnn_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define NNN_HAVE_AVX2 1
extern const nnn_kernels nnn_kernels_avx2;
#define NNN_HAVE_AVX512 1
extern const nnn_kernels nnn_kernels_avx512;
#endif

struct nnn_program {
    int dtype;
    size_t elem;    /* 4 or 8 */
    char *contract; /* the JSON, owned */
    size_t contract_size;
    /* window programs: the front gathers windows; dense programs: it copies the column */
    int window;
    int boundary; /* window programs: NNN_BOUNDARY_* */
    int64_t channels, width, left;
    int64_t front_nparam; /* normaliser before the window: 0 (none), 1 or channels */
    void *front_mean, *front_std;
    int64_t n_in;  /* dense: column input size; window: channels * width per face */
    int64_t n_out; /* outputs per row */
    int nsteps;
    nnn_step steps[NNN_MAX_OPS];
    /* the tail, per output value after the steps, in this order (README.md, "Ops") */
    void *gradient;   /* window programs: NULL, or {k_scale, dx} of the gradient product */
    int frame;        /* 0 none; 1 + NNN_SURFACE_*: surface value, the values, a zero lid */
    int tail_act;     /* activation after the gradient or frame (NNN_ACT_IDENTITY: none) */
    int ninputs;      /* 1, or 2 when the frame's surface is input 1 (one value a column) */
    int64_t rows_out; /* outputs of the steps per row, before the tail: the last width */
    int64_t stride;   /* row stride of the workspace buffers, elements */
    const nnn_kernels *kernels;
    void *arena; /* one allocation holding all packed parameters */
};

void nnn_message(char *msg, size_t size, const char *fmt, ...);
const nnn_kernels *nnn_kernels_for(int isa);
void nnn_sha256(const void *data, size_t size, unsigned char out[32]);
/* One 64-byte block into the state h (shared with the bridge's streaming hasher). */
void nnn_sha256_block(uint32_t h[8], const unsigned char *p);

#endif
