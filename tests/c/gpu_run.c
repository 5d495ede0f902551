/* gpu_run.c: a C host that loads a float32 model on the device given (e.g.
 * "cuda:0") and runs it once on host arrays, as a Fortran or C model would.
 *   gpu_run MODEL DEVICE X.bin Y.bin BATCH NIN NOUT
 * reads x (BATCH, NIN) float32 from X.bin, writes y (BATCH, NOUT) to Y.bin and
 * prints "device <name>"; exits 1 with the bridge's message on an error. */
#include <stdio.h>
#include <stdlib.h>

#include "nn_closure.h"

static int fail(const char *what) {
    fprintf(stderr, "gpu_run: %s: %s\n", what, nnc_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: gpu_run MODEL DEVICE X.bin Y.bin BATCH NIN NOUT\n");
        return 2;
    }
    const int64_t batch = atoll(argv[5]), nin = atoll(argv[6]), nout = atoll(argv[7]);
    float *x = malloc(sizeof(float) * (size_t)(batch * nin)), *y = malloc(sizeof(float) * (size_t)(batch * nout));
    FILE *f = fopen(argv[3], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), (size_t)(batch * nin), f) != (size_t)(batch * nin)) {
        fprintf(stderr, "gpu_run: cannot read %s\n", argv[3]);
        return 1;
    }
    fclose(f);
    nnc_model m = NULL;
    if (nnc_model_load(&m, argv[1], argv[2]) != NNC_OK) return fail("load");
    char dev[32];
    if (nnc_model_device(m, dev, sizeof dev) != NNC_OK) return fail("device");
    printf("device %s\n", dev);
    nnc_array in = {x, NNC_FLOAT32, 2, NNC_ORDER_C, {batch, nin}, NULL};
    nnc_array out = {y, NNC_FLOAT32, 2, NNC_ORDER_C, {batch, nout}, NULL};
    if (nnc_model_forward(m, 1, &in, 1, &out) != NNC_OK) return fail("forward");
    char summary[1024];
    if (nnc_model_stats_summary(m, summary, sizeof summary) == NNC_OK) printf("%s\n", summary);
    nnc_model_free(&m);
    f = fopen(argv[4], "wb");
    if (!f || fwrite(y, sizeof(float), (size_t)(batch * nout), f) != (size_t)(batch * nout)) return 1;
    fclose(f);
    free(x);
    free(y);
    return 0;
}
