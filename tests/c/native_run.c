/* native_run.c: run a native program on a raw input file and write the raw output, with the
 * kernels of a chosen instruction set; for comparing builds (optimisation levels, SSE2-only
 * scalar code with libm's fma) bit for bit.
 * Usage: native_run PROGRAM.nnp ISA NCELLS BATCH X.bin Y.bin [S.bin]  (ISA: 0 auto, 1 scalar,
 * 2 avx2; S.bin: input 1, a column frame's surface value, one a column) */
#include <stdio.h>
#include <stdlib.h>

#include "nn_native.h"

static void *slurp(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    rewind(f);
    void *data = malloc((size_t)*size + 1);
    if (data && fread(data, 1, (size_t)*size, f) != (size_t)*size) data = NULL;
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: native_run PROGRAM ISA NCELLS BATCH X.bin Y.bin [S.bin]\n");
        return 2;
    }
    long size, xsize, ssize = 0;
    void *data = slurp(argv[1], &size), *x = slurp(argv[5], &xsize);
    void *surface = argc == 8 ? slurp(argv[7], &ssize) : NULL;
    nnn_program *p;
    char msg[256];
    if (!data || !x || nnn_load(data, (size_t)size, &p, msg, sizeof msg) != NNN_OK ||
        nnn_set_isa(p, atoi(argv[2]), msg, sizeof msg) != NNN_OK) {
        fprintf(stderr, "native_run: %s\n", data && x ? msg : "cannot read the inputs");
        return 1;
    }
    int64_t ncells = atoll(argv[3]), batch = atoll(argv[4]), n_in, n_out;
    size_t elem = nnn_dtype(p) == NNN_F32 ? 4 : 8;
    if (nnn_sizes(p, ncells, &n_in, &n_out) != NNN_OK || (size_t)xsize != (size_t)(batch * n_in) * elem) {
        fprintf(stderr, "native_run: X.bin does not hold BATCH columns of the program's input\n");
        return 1;
    }
    void *y = malloc((size_t)(batch * n_out) * elem), *work = malloc(nnn_workspace_size(p));
    const void *inputs[2] = {x, surface};
    if ((surface && (size_t)ssize != (size_t)batch * elem) ||
        nnn_run_inputs(p, work, ncells, surface ? 2 : 1, inputs, y, 0, batch, msg, sizeof msg) != NNN_OK) {
        fprintf(stderr, "native_run: %s\n", msg);
        return 1;
    }
    FILE *f = fopen(argv[6], "wb");
    if (!f || fwrite(y, elem, (size_t)(batch * n_out), f) != (size_t)(batch * n_out)) return 1;
    fclose(f);
    printf("native_run: isa %d, %lld columns\n", nnn_isa(p), (long long)batch);
    nnn_free(p);
    free(y);
    free(work);
    free(data);
    free(x);
    free(surface);
    return 0;
}
