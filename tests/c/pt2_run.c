/* A C host that runs any AOTInductor package (.pt2) with a contract through
 * nn_closure.h, sizing its arrays from nnc_model_io alone.
 *
 * Usage: pt2_run PACKAGE OUT_PREFIX BATCH...
 * For each batch size, fills the inputs with deterministic values, runs the
 * package once (one load, many calls) and writes the inputs then the outputs,
 * raw and in C order, to OUT_PREFIX_BATCH.bin. Prints "engine NAME" first and
 * "pt2_run: done" at the end; exits non-zero with a message on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_closure.h"

static int fail(const char *what) {
    fprintf(stderr, "pt2_run: %s: %s\n", what, nnc_last_error());
    return 1;
}

/* One input or output of `batch` samples, C order, its size from the contract. */
static int describe(nnc_model m, int is_output, int k, int64_t batch, nnc_array *a, size_t *bytes) {
    nnc_io_info info;
    if (nnc_model_io(m, is_output, k, &info) != NNC_OK) return 0;
    if (info.dtype != NNC_FLOAT32 && info.dtype != NNC_FLOAT64) return 0;
    memset(a, 0, sizeof *a);
    a->dtype = info.dtype;
    a->rank = info.rank + 1;
    a->order = NNC_ORDER_C;
    a->shape[0] = batch;
    size_t n = (size_t)batch;
    for (int d = 0; d < info.rank; ++d) {
        if (info.shape[d] < 0) return 0; /* a variable dim: not for this host */
        a->shape[d + 1] = info.shape[d];
        n *= (size_t)info.shape[d];
    }
    *bytes = n * (info.dtype == NNC_FLOAT32 ? sizeof(float) : sizeof(double));
    a->data = malloc(*bytes ? *bytes : 1);
    return a->data != NULL;
}

static void fill(nnc_array *a, size_t bytes, int seed) {
    size_t n = bytes / (a->dtype == NNC_FLOAT32 ? sizeof(float) : sizeof(double));
    for (size_t k = 0; k < n; ++k) {
        double v = sin(0.37 * (double)k + seed) + 0.25 * cos(0.0013 * (double)k * seed);
        if (a->dtype == NNC_FLOAT32) ((float *)a->data)[k] = (float)v;
        else ((double *)a->data)[k] = v;
    }
}

static int run_batch(nnc_model m, int nin, int nout, int64_t batch, const char *prefix) {
    nnc_array in[NNC_MAX_RANK], out[NNC_MAX_RANK];
    size_t in_bytes[NNC_MAX_RANK], out_bytes[NNC_MAX_RANK];
    for (int k = 0; k < nin; ++k) {
        if (!describe(m, 0, k, batch, &in[k], &in_bytes[k])) return fail("an input this host cannot make");
        fill(&in[k], in_bytes[k], k + 1);
    }
    for (int k = 0; k < nout; ++k) {
        if (!describe(m, 1, k, batch, &out[k], &out_bytes[k])) return fail("an output this host cannot make");
        memset(out[k].data, 0xff, out_bytes[k]); /* NaN: an output left unwritten shows */
    }
    if (nnc_model_forward(m, nin, in, nout, out) != NNC_OK) return fail("forward");
    char name[2048];
    snprintf(name, sizeof name, "%s_%lld.bin", prefix, (long long)batch);
    FILE *f = fopen(name, "wb");
    if (!f) return fail("cannot write the output file");
    for (int k = 0; k < nin; ++k) fwrite(in[k].data, 1, in_bytes[k], f);
    for (int k = 0; k < nout; ++k) fwrite(out[k].data, 1, out_bytes[k], f);
    fclose(f);
    for (int k = 0; k < nin; ++k) free(in[k].data);
    for (int k = 0; k < nout; ++k) free(out[k].data);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: pt2_run PACKAGE OUT_PREFIX BATCH...\n");
        return 2;
    }
    nnc_model m = NULL;
    if (nnc_model_load(&m, argv[1], "cpu") != NNC_OK) return fail("load");
    char engine[32];
    int nin = 0, nout = 0;
    if (nnc_model_engine(m, engine, sizeof engine) != NNC_OK) return fail("engine");
    printf("engine %s\n", engine);
    if (nnc_model_num_io(m, &nin, &nout) != NNC_OK || nin > NNC_MAX_RANK || nout > NNC_MAX_RANK) return fail("num_io");
    for (int a = 3; a < argc; ++a)
        if (run_batch(m, nin, nout, atoll(argv[a]), argv[2]) != 0) return 1;
    nnc_model_free(&m);
    printf("pt2_run: done\n");
    return 0;
}
