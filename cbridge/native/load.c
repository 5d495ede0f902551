/* load.c: read and check a native program file from memory, pack its weights (README.md). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "native_internal.h"

#define HEADER_BYTES 128
#define DIGEST_BYTES 32
#define OP_BYTES 32
static const char MAGIC[8] = {'P', 'Y', 'C', 'L', 'N', 'A', 'T', 'V'};

void nnn_message(char *msg, size_t size, const char *fmt, ...) {
    if (!msg || size == 0) return;
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, size, fmt, args);
    va_end(args);
}

static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* One op record as read from the file. */
typedef struct {
    uint32_t kind, a[5];
    uint64_t offset;
} op_record;

/* What the checks found: the file's sections and the ops. */
typedef struct {
    const unsigned char *base;
    size_t elem;
    uint64_t params_off, params_len;
    uint32_t nops;
    op_record ops[NNN_MAX_OPS];
    uint32_t gradient_op; /* the gradient op's index, when the program has one */
    char *msg;
    size_t msg_size;
} file_view;

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        nnn_message(v->msg, v->msg_size, __VA_ARGS__);                                                                 \
        return NNN_ERR_FORMAT;                                                                                         \
    } while (0)

static int check_header(file_view *v, const unsigned char *p, size_t size, int *dtype, uint64_t *clen) {
    if (size < HEADER_BYTES + DIGEST_BYTES)
        FAIL("truncated: %zu bytes, a native program has at least %d", size, HEADER_BYTES + DIGEST_BYTES);
    if (memcmp(p, MAGIC, 8) != 0) FAIL("not a pyclosure native program (no PYCLNATV magic)");
    if (get32(p + 8) != NNN_FORMAT_VERSION)
        FAIL("native format version %u; this library reads version %d", get32(p + 8), NNN_FORMAT_VERSION);
    const char *arith = (const char *)p + 16;
    if (memchr(arith, 0, 48) == NULL || strcmp(arith, NNN_ARITH) != 0)
        FAIL("arithmetic contract '%.48s'; this library implements '%s': export the closure again "
             "with pyclosure (pyclosure.export or `pyclosure export`) to write it",
             memchr(arith, 0, 48) ? arith : "(unterminated)", NNN_ARITH);
    *dtype = (int)get32(p + 12);
    if (*dtype != NNN_F32 && *dtype != NNN_F64) FAIL("unknown element type %d (1 float32, 2 float64)", *dtype);
    if (get64(p + 64) != size)
        FAIL("the header says %llu bytes but the buffer holds %zu (truncated or padded?)",
             (unsigned long long)get64(p + 64), size);
    unsigned char digest[32];
    nnn_sha256(p, size - DIGEST_BYTES, digest);
    if (memcmp(digest, p + size - DIGEST_BYTES, DIGEST_BYTES) != 0)
        FAIL("SHA-256 digest does not match the contents (corrupt file)");
    /* sections: header, contract, ops (8-aligned), params (64-aligned), digest; no gaps */
    uint64_t coff = get64(p + 72), ooff = get64(p + 88), poff = get64(p + 104), plen = get64(p + 112);
    *clen = get64(p + 80);
    v->nops = get32(p + 96);
    if (coff != HEADER_BYTES || *clen > size)
        FAIL("bad contract section (offset %llu, %llu bytes)", (unsigned long long)coff, (unsigned long long)*clen);
    if (v->nops < 1 || v->nops > NNN_MAX_OPS) FAIL("%u ops; a program has 1 to %d", v->nops, NNN_MAX_OPS);
    uint64_t ops_end = align_up(coff + *clen, 8) + (uint64_t)v->nops * OP_BYTES;
    if (ooff != align_up(coff + *clen, 8) || poff != align_up(ops_end, 64) || poff > size || plen > size - poff ||
        poff + plen != size - DIGEST_BYTES)
        FAIL("section offsets do not add up to the file size (ops at %llu, params at %llu, %llu bytes)",
             (unsigned long long)ooff, (unsigned long long)poff, (unsigned long long)plen);
    if (get32(p + 100) != 0 || get64(p + 120) != 0) FAIL("reserved header fields are not zero");
    v->params_off = poff;
    v->params_len = plen;
    for (uint32_t i = 0; i < v->nops; ++i) {
        const unsigned char *q = p + ooff + (uint64_t)i * OP_BYTES;
        v->ops[i].kind = get32(q);
        for (int k = 0; k < 5; ++k) v->ops[i].a[k] = get32(q + 4 + 4 * k);
        v->ops[i].offset = get64(q + 24);
    }
    const char *json = (const char *)p + coff;
    if (memchr(json, 0, *clen) != NULL) FAIL("the contract JSON holds a NUL byte");
    uint64_t j = 0;
    while (j < *clen && (json[j] == ' ' || json[j] == '\n' || json[j] == '\t' || json[j] == '\r')) ++j;
    if (j == *clen || json[j] != '{') FAIL("the contract is not a JSON object");
    return NNN_OK;
}

/* The op's `count` parameters: in bounds, aligned, finite (and > 0 from `positive_from` on,
 * each named `positive` in the message). */
static int check_params(file_view *v, uint32_t i, uint64_t count, uint64_t positive_from, const char *positive) {
    const op_record *op = &v->ops[i];
    if (op->offset % v->elem != 0 || op->offset > v->params_len || count > (v->params_len - op->offset) / v->elem)
        FAIL("op %u: its %llu parameters at byte %llu lie outside the %llu bytes of parameters", i,
             (unsigned long long)count, (unsigned long long)op->offset, (unsigned long long)v->params_len);
    const unsigned char *q = v->base + v->params_off + op->offset;
    for (uint64_t k = 0; k < count; ++k) {
        double x;
        if (v->elem == 4) {
            float f;
            memcpy(&f, q + 4 * k, 4);
            x = f;
        } else memcpy(&x, q + 8 * k, 8);
        if (!isfinite(x)) FAIL("op %u: parameter %llu is not finite", i, (unsigned long long)k);
        if (k >= positive_from && !(x > 0))
            FAIL("op %u: %s %llu is not > 0", i, positive, (unsigned long long)(k - positive_from));
    }
    return NNN_OK;
}

static int dim_ok(uint32_t n) { return n >= 1 && n <= NNN_MAX_DIM; }

/* The tail ops after the row steps (README.md, "Ops"): a gradient product, a column frame,
 * one activation, in that order. `stage` counts what came: 0 none, 1 gradient, 2 frame, 3 act. */
static int check_tail(file_view *v, nnn_program *prog, uint32_t i, int64_t width, int *stage) {
    const op_record *op = &v->ops[i];
    const uint32_t *a = op->a;
    int rc;
    if (op->kind == NNN_OP_GRADIENT) {
        if (*stage || !prog->window || width != 1 || a[0] || a[1] || a[2] || a[3] || a[4])
            FAIL("op %u: a gradient product comes once, after the steps of a window program of one output", i);
        if ((rc = check_params(v, i, 2, 1, "gradient dx")) != NNN_OK) return rc;
        v->gradient_op = i;
        *stage = 1;
        return NNN_OK;
    }
    if (op->kind == NNN_OP_FRAME) {
        const int column = prog->boundary == NNN_BOUNDARY_REPLICATE || prog->boundary == NNN_BOUNDARY_ZEROS;
        if (*stage > 1 || a[0] > NNN_SURFACE_INPUT || a[1] || a[2] || a[3] || a[4] || op->offset)
            FAIL("op %u: bad frame (surface %u), or a frame after the tail activation", i, a[0]);
        if (prog->window && (!column || width != 1))
            FAIL("op %u: a frame needs a column window of one output (or a dense program)", i);
        prog->frame = 1 + (int)a[0];
        prog->ninputs = a[0] == NNN_SURFACE_INPUT ? 2 : 1;
        *stage = 2;
        return NNN_OK;
    }
    if (op->kind == NNN_OP_ACTIVATION && *stage && *stage < 3) {
        prog->tail_act = (int)a[0];
        *stage = 3;
        return NNN_OK;
    }
    FAIL("op %u: kind %u after the gradient, frame or tail activation", i, op->kind);
}

/* Check the ops chain; fill the program's shape (window, widths, steps without weights). */
static int check_ops(file_view *v, nnn_program *prog) {
    int64_t width = -1; /* row width so far; -1 before the first dense of a dense program */
    int after_window = 0, stage = 0;
    prog->ninputs = 1;
    for (uint32_t i = 0; i < v->nops; ++i)
        if (v->ops[i].kind == NNN_OP_WINDOW) prog->window = 1;
    for (uint32_t i = 0; i < v->nops; ++i) {
        const op_record *op = &v->ops[i];
        const uint32_t *a = op->a;
        int rc;
        nnn_step *s = &prog->steps[prog->nsteps];
        if (op->kind == NNN_OP_ACTIVATION && (a[0] > NNN_ACT_LAST || a[1] || a[2] || a[3] || a[4] || op->offset))
            FAIL("op %u: unknown activation %u", i, a[0]);
        if (stage || op->kind == NNN_OP_GRADIENT || op->kind == NNN_OP_FRAME) {
            if (width < 0) FAIL("op %u: a gradient or frame before any dense layer", i);
            if ((rc = check_tail(v, prog, i, width, &stage)) != NNN_OK) return rc;
            continue;
        }
        switch (op->kind) {
            case NNN_OP_NORMALIZE:
            case NNN_OP_DENORMALIZE:
                if (!dim_ok(a[0]) || a[1] || a[2] || a[3] || a[4]) FAIL("op %u: bad normaliser sizes", i);
                if ((rc = check_params(v, i, 2ull * a[0], a[0], "normaliser std")) != NNN_OK) return rc;
                if (prog->window && !after_window) {
                    if (op->kind != NNN_OP_NORMALIZE || prog->front_nparam || i != 0)
                        FAIL("op %u: before the window only one normaliser may come, first", i);
                    prog->front_nparam = a[0];
                    continue;
                }
                if (width < 0) { /* before the first dense layer: its width is that layer's n_in */
                    for (uint32_t k = i + 1; k < v->nops && width < 0; ++k)
                        if (v->ops[k].kind == NNN_OP_DENSE) width = v->ops[k].a[0];
                    if (width < 0) FAIL("op %u: a normaliser with no dense layer after it", i);
                    prog->n_in = width;
                }
                if (a[0] != 1 && a[0] != width)
                    FAIL("op %u: %u normaliser parameters for width %lld (1 or the width)", i, a[0], (long long)width);
                *s = (nnn_step){.op = (int)i, .kind = (int)op->kind, .n_in = width, .n_out = width, .nparam = a[0]};
                break;
            case NNN_OP_DENSE:
                if (!dim_ok(a[0]) || !dim_ok(a[1]) || a[2] || a[3] || a[4])
                    FAIL("op %u: bad dense sizes %u x %u", i, a[0], a[1]);
                if (prog->window && !after_window) FAIL("op %u: a dense layer before the window", i);
                if (width < 0) width = prog->n_in = a[0];
                if (a[0] != width) FAIL("op %u: dense layer takes %u inputs, gets %lld", i, a[0], (long long)width);
                if ((rc = check_params(v, i, (uint64_t)a[0] * a[1] + a[1], UINT64_MAX, "")) != NNN_OK) return rc;
                *s = (nnn_step){.op = (int)i,
                                .kind = NNN_OP_DENSE,
                                .n_in = a[0],
                                .n_out = a[1],
                                .n_pad = (int64_t)align_up(a[1], NNN_BLOCK_BYTES / v->elem)};
                width = a[1];
                break;
            case NNN_OP_ACTIVATION:
                if (width < 0) FAIL("op %u: an activation before any dense layer", i);
                if (prog->nsteps > 0 && s[-1].kind == NNN_OP_DENSE && s[-1].act == NNN_ACT_IDENTITY) {
                    s[-1].act = (int)a[0]; /* fused into the dense layer before it */
                    continue;
                }
                *s = (nnn_step){
                    .op = (int)i, .kind = NNN_OP_ACTIVATION, .act = (int)a[0], .n_in = width, .n_out = width};
                break;
            case NNN_OP_WINDOW:
                if (after_window || !dim_ok(a[0]) || !dim_ok(a[1]) || (uint64_t)a[0] * a[1] > NNN_MAX_DIM ||
                    a[2] > NNN_MAX_DIM || a[3] < NNN_BOUNDARY_PERIODIC || a[3] > NNN_BOUNDARY_ZEROS || a[4] ||
                    op->offset)
                    FAIL("op %u: bad window (channels %u, width %u, left %u, boundary %u)", i, a[0], a[1], a[2], a[3]);
                if (prog->front_nparam > 1 && prog->front_nparam != a[0])
                    FAIL("op %u: %lld normaliser parameters for %u channels", i, (long long)prog->front_nparam, a[0]);
                prog->channels = a[0];
                prog->width = a[1];
                prog->left = a[2];
                prog->boundary = (int)a[3];
                width = prog->n_in = (int64_t)a[0] * a[1];
                after_window = 1;
                continue;
            default: FAIL("op %u: unknown op kind %u", i, op->kind);
        }
        prog->nsteps++;
    }
    int dense = 0;
    for (int k = 0; k < prog->nsteps; ++k) dense |= prog->steps[k].kind == NNN_OP_DENSE;
    if (!dense) FAIL("the program has no dense layer");
    prog->n_out = width;
    return NNN_OK;
}
#undef FAIL

/* Copy `count` elements from the file into dst (unaligned source, any host endianness is LE). */
static void read_params(const file_view *v, uint64_t offset, uint64_t count, void *dst) {
    memcpy(dst, v->base + v->params_off + offset, count * v->elem);
}

/* Pack a dense layer: blocks of `nb` outputs, w[(blk * n_in + i) * nb + l] = W[blk * nb + l][i]. */
static void pack_dense(const file_view *v, const op_record *op, nnn_step *s) {
    const uint64_t n_in = op->a[0], n_out = op->a[1], nb = NNN_BLOCK_BYTES / v->elem;
    const unsigned char *src = v->base + v->params_off + op->offset;
    unsigned char *w = s->w;
    memset(w, 0, (size_t)(s->n_pad * n_in * v->elem));
    for (uint64_t o = 0; o < n_out; ++o)
        for (uint64_t i = 0; i < n_in; ++i)
            memcpy(w + (((o / nb) * n_in + i) * nb + o % nb) * v->elem, src + (o * n_in + i) * v->elem, v->elem);
    memset(s->b, 0, (size_t)s->n_pad * v->elem);
    read_params(v, op->offset + n_out * n_in * v->elem, n_out, s->b);
}

/* Bytes of the arena: every piece rounded to 64 bytes. */
static uint64_t arena_bytes(const nnn_program *prog, uint64_t clen) {
    uint64_t total = align_up(clen + 1, 64) + 2 * align_up((uint64_t)prog->front_nparam * prog->elem, 64) + 64;
    for (int k = 0; k < prog->nsteps; ++k) {
        const nnn_step *s = &prog->steps[k];
        if (s->kind == NNN_OP_DENSE)
            total += align_up((uint64_t)(s->n_pad * s->n_in) * prog->elem, 64) +
                     align_up((uint64_t)s->n_pad * prog->elem, 64);
        else total += 2 * align_up((uint64_t)s->nparam * prog->elem, 64);
    }
    return total;
}

static int build(file_view *v, nnn_program *prog, uint64_t clen) {
    uint64_t bytes = arena_bytes(prog, clen);
    if (bytes > SIZE_MAX / 2 || !(prog->arena = aligned_alloc(64, (size_t)bytes))) {
        nnn_message(v->msg, v->msg_size, "cannot allocate %llu bytes for the weights", (unsigned long long)bytes);
        return NNN_ERR_MEMORY;
    }
    unsigned char *at = prog->arena;
#define TAKE(n) (at += align_up((n), 64), at - align_up((n), 64))
    prog->contract = (char *)TAKE(clen + 1);
    memcpy(prog->contract, v->base + HEADER_BYTES, (size_t)clen);
    prog->contract[clen] = 0;
    prog->contract_size = (size_t)clen;
    if (prog->front_nparam) {
        prog->front_mean = TAKE(prog->front_nparam * prog->elem);
        prog->front_std = TAKE(prog->front_nparam * prog->elem);
        read_params(v, v->ops[0].offset, (uint64_t)prog->front_nparam, prog->front_mean);
        read_params(v, v->ops[0].offset + prog->front_nparam * prog->elem, (uint64_t)prog->front_nparam,
                    prog->front_std);
    }
    if (v->gradient_op) { /* never op 0: a window comes first */
        prog->gradient = TAKE(2 * prog->elem);
        read_params(v, v->ops[v->gradient_op].offset, 2, prog->gradient);
    }
    int64_t stride = prog->n_in;
    for (int k = 0; k < prog->nsteps; ++k) {
        nnn_step *s = &prog->steps[k];
        const op_record *op = &v->ops[s->op];
        if (s->kind == NNN_OP_DENSE) {
            s->w = TAKE((uint64_t)(s->n_pad * s->n_in) * prog->elem);
            s->b = TAKE((uint64_t)s->n_pad * prog->elem);
            pack_dense(v, op, s);
            stride = s->n_pad > stride ? s->n_pad : stride;
        } else if (s->kind != NNN_OP_ACTIVATION) {
            s->w = TAKE((uint64_t)s->nparam * prog->elem);
            s->b = TAKE((uint64_t)s->nparam * prog->elem);
            read_params(v, op->offset, (uint64_t)s->nparam, s->w);
            read_params(v, op->offset + s->nparam * prog->elem, (uint64_t)s->nparam, s->b);
        }
    }
#undef TAKE
    prog->stride = (int64_t)align_up((uint64_t)stride, NNN_BLOCK_BYTES / prog->elem);
    return NNN_OK;
}

int nnn_load(const void *data, size_t size, nnn_program **out, char *msg, size_t msg_size) {
    if (out) *out = NULL;
    if (!data || !out) {
        nnn_message(msg, msg_size, "nnn_load: data and out must not be NULL");
        return NNN_ERR_ARGUMENT;
    }
    file_view *v = calloc(1, sizeof *v);
    nnn_program *prog = calloc(1, sizeof *prog);
    if (!v || !prog) {
        free(v);
        free(prog);
        nnn_message(msg, msg_size, "cannot allocate a program");
        return NNN_ERR_MEMORY;
    }
    v->base = data;
    v->msg = msg;
    v->msg_size = msg_size;
    uint64_t clen = 0;
    int rc = check_header(v, data, size, &prog->dtype, &clen);
    if (rc == NNN_OK) {
        v->elem = prog->elem = prog->dtype == NNN_F32 ? 4 : 8;
        rc = check_ops(v, prog);
    }
    if (rc == NNN_OK) rc = build(v, prog, clen);
    free(v);
    if (rc != NNN_OK) {
        nnn_free(prog);
        return rc;
    }
    prog->kernels = nnn_kernels_for(NNN_ISA_AUTO);
    *out = prog;
    return NNN_OK;
}

void nnn_free(nnn_program *program) {
    if (!program) return;
    free(program->arena);
    free(program);
}
