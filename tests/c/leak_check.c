/* Resident memory across many bridge calls: a leak of even a few bytes per
 * call shows as growth over 100,000 calls.
 *
 * Usage: leak_check MODE MODEL_DIR N [LEAK_BYTES]
 *   forward  N forward calls on one loaded model (64 columns each)
 *   load     N loads and frees of a model file
 *   errors   N rounds of failing calls (missing file, not TorchScript, wrong
 *            shape, freed handle), each followed by a good call
 * Warms up first (a tenth of N, at least 20 rounds), then measures VmRSS
 * from /proc/self/status before and after the N rounds and prints
 * "rss_before_kb=", "rss_after_kb=", "rss_growth_kb=", "seconds=". Exits
 * non-zero if any call gave an unexpected status. LEAK_BYTES > 0 leaks that
 * many bytes per round on purpose, to show that the measurement sees it. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn_closure.h"

enum {
    NCOL = 64,
    NFEAT = 3,
    NOUT = 2
};

static char dir[1024];
static double x[NCOL][NFEAT], y[NCOL][NOUT];
static int bad_status = 0;
static long leak_bytes = 0;

static const char *path(const char *name) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void expect(int got, int want, const char *what) {
    if (got == want) return;
    if (bad_status++ < 5) fprintf(stderr, "%s: status %d, want %d: %s\n", what, got, want, nnc_last_error());
}

static void forward(nnc_model m, int64_t ncol_in, int want) {
    nnc_array in, out;
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    in.data = x;
    out.data = y;
    in.dtype = out.dtype = NNC_FLOAT64;
    in.rank = out.rank = 2;
    in.order = out.order = NNC_ORDER_C;
    in.shape[0] = ncol_in;
    in.shape[1] = NFEAT;
    out.shape[0] = NCOL;
    out.shape[1] = NOUT;
    expect(nnc_model_forward(m, 1, &in, 1, &out), want, "forward");
}

static void round_of(const char *mode, nnc_model m) {
    if (leak_bytes > 0) {
        volatile char *lost = malloc((size_t)leak_bytes);
        if (lost) lost[0] = 1; /* touched, never freed */
    }
    if (strcmp(mode, "forward") == 0) {
        forward(m, NCOL, NNC_OK);
    } else if (strcmp(mode, "load") == 0) {
        nnc_model k = NULL;
        expect(nnc_model_load(&k, path("affine64.pt"), "cpu"), NNC_OK, "load");
        expect(nnc_model_free(&k), NNC_OK, "free");
    } else {
        nnc_model k = NULL, stale = NULL;
        expect(nnc_model_load(&k, path("missing.pt"), "cpu"), NNC_ERR_IO, "missing file");
        expect(nnc_model_load(&k, path("not_torchscript.pt"), "cpu"), NNC_ERR_FORMAT, "not TorchScript");
        forward(m, NCOL - 1, NNC_ERR_SHAPE);
        forward(stale, NCOL, NNC_ERR_HANDLE);
        forward(m, NCOL, NNC_OK);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: leak_check forward|load|errors MODEL_DIR N\n");
        return 2;
    }
    const char *mode = argv[1];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    long n = strtol(argv[3], NULL, 10), warm = n / 10 > 20 ? n / 10 : 20;
    if (argc > 4) leak_bytes = strtol(argv[4], NULL, 10);
    for (int j = 0; j < NCOL; ++j)
        for (int i = 0; i < NFEAT; ++i) x[j][i] = 0.01 * (i + NFEAT * j);

    nnc_model m = NULL;
    expect(nnc_model_load(&m, path("affine64.pt"), "cpu"), NNC_OK, "load");
    for (long k = 0; k < warm; ++k) round_of(mode, m);
    long before = rss_kb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; ++k) round_of(mode, m);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long after = rss_kb();
    expect(nnc_model_free(&m), NNC_OK, "free");
    printf("mode=%s\nrounds=%ld\nrss_before_kb=%ld\nrss_after_kb=%ld\nrss_growth_kb=%ld\nseconds=%.2f\n", mode, n,
           before, after, after - before, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    printf("unexpected_statuses=%d\n", bad_status);
    return bad_status ? 1 : 0;
}
