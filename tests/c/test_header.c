/* The contract test: drives nn_closure.h directly, every success and failure
 * path, and checks that the next valid call works after each failure.
 * Usage: test_header MODEL_DIR. Prints one line per check; exits non-zero if
 * any check failed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn_closure.h"

static int failures = 0, checks = 0;
static char dir[1024];

static void check(int cond, const char *what) {
    ++checks;
    if (!cond) ++failures;
    printf("%s %s%s%s\n", cond ? "ok  " : "FAIL", what, cond ? "" : ": ", cond ? "" : nnc_last_error());
}

static const char *path(const char *name) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static nnc_array array(void *data, int dtype, int rank, const int64_t *shape, int order) {
    nnc_array a;
    memset(&a, 0, sizeof a);
    a.data = data;
    a.dtype = dtype;
    a.rank = rank;
    a.order = order;
    for (int d = 0; d < rank; ++d) a.shape[d] = shape[d];
    return a;
}

/* A valid call on the good model; returns 1 if it worked and is right. */
static int good_call(nnc_model m) {
    double x[5][3], y[5][2];
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) x[j][i] = 0.1 * (i + 3 * j);
    int64_t xs[2] = {5, 3}, ys[2] = {5, 2};
    nnc_array in = array(x, NNC_FLOAT64, 2, xs, NNC_ORDER_C), out = array(y, NNC_FLOAT64, 2, ys, NNC_ORDER_C);
    if (nnc_model_forward(m, 1, &in, 1, &out) != NNC_OK) return 0;
    /* plain_affine: y = W x + b, W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25] */
    for (int j = 0; j < 5; ++j) {
        double e0 = (x[j][0] + 2 * x[j][1] + 3 * x[j][2]) / 8.0 - 0.5;
        double e1 = (4 * x[j][0] + 5 * x[j][1] + 6 * x[j][2]) / 8.0 - 0.25;
        if (fabs(y[j][0] - e0) > 1e-15 || fabs(y[j][1] - e1) > 1e-15) return 0;
    }
    return 1;
}

/* Fortran-ordered y(2, 5) = W x(3, 5) + b (with_tanh: tanh of it), element by
 * element: y(k, j) is yf[k + 2 j], x(i, j) is xf[i + 3 j]. A transposed or
 * C-ordered write fails. W x + b is exact for dyadic x; tanh is allowed 4 ulp
 * from libm's. */
static int fortran_order_right(const double *xf, const double *yf, int with_tanh) {
    static const double w[2][3] = {{1 / 8.0, 2 / 8.0, 3 / 8.0}, {4 / 8.0, 5 / 8.0, 6 / 8.0}}, b[2] = {-0.5, -0.25};
    int right = 1;
    for (int j = 0; j < 5; ++j)
        for (int k = 0; k < 2; ++k) {
            double e = w[k][0] * xf[3 * j] + w[k][1] * xf[3 * j + 1] + w[k][2] * xf[3 * j + 2] + b[k];
            double got = yf[k + 2 * j];
            int ok = with_tanh ? fabs(got - tanh(e)) <= 4 * 2.220446049250313e-16 * fabs(tanh(e)) : got == e;
            if (!ok) {
                printf("     y(%d, %d) = %.17g, want %.17g\n", k + 1, j + 1, got, with_tanh ? tanh(e) : e);
                right = 0;
            }
        }
    return right;
}

static void expect_status(int got, int want, const char *what, nnc_model good) {
    char line[512];
    snprintf(line, sizeof line, "%s -> status %d (want %d), message: %s", what, got, want, nnc_last_error());
    check(got == want && (want == NNC_OK || strlen(nnc_last_error()) > 0), line);
    check(good_call(good), "  next valid call works");
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    const char *v = NULL, *t = NULL;
    check(nnc_version(&v, &t) == NNC_OK && strlen(v) > 0 && strlen(t) > 0, "version");
    check(nnc_version(NULL, &t) == NNC_ERR_ARGUMENT, "version(NULL) is an argument error");

    nnc_model good = NULL, m = NULL;
    check(nnc_model_load(&good, path("plain_affine64.pt"), "cpu") == NNC_OK, "load plain_affine64");
    check(good_call(good), "forward by hand: layout and numbers");

    int has = -1, nin = -1, nout = -1;
    check(nnc_model_has_contract(good, &has) == NNC_OK && has == 1, "has contract");
    check(nnc_model_num_io(good, &nin, &nout) == NNC_OK && nin == 1 && nout == 1, "one input, one output");
    nnc_io_info info;
    check(nnc_model_io(good, 0, 0, &info) == NNC_OK && strcmp(info.name, "x") == 0 && info.rank == 1 &&
              info.shape[0] == 3 && info.dtype == NNC_FLOAT64,
          "input 0 is x, float64, per-sample (3)");
    expect_status(nnc_model_io(good, 1, 5, &info), NNC_ERR_ARGUMENT, "output index out of range", good);
    size_t needed = 0;
    check(nnc_model_contract(good, NULL, 0, &needed) == NNC_OK && needed > 10, "contract size query");
    char dev[32];
    check(nnc_model_device(good, dev, sizeof dev) == NNC_OK && strcmp(dev, "cpu") == 0, "device is cpu");
    char engine[32];
    check(nnc_model_engine(good, engine, sizeof engine) == NNC_OK && strcmp(engine, "torchscript") == 0,
          "engine of a .pt file is torchscript");
    expect_status(nnc_model_engine(good, engine, 0), NNC_ERR_ARGUMENT, "engine into a buffer of length 0", good);
    /* a name that does not fit is an error with the size it needs, never a silent cut */
    char small[11] = "untouched";
    check(nnc_model_engine(good, small, sizeof small) == NNC_ERR_ARGUMENT && small[0] == '\0' &&
              strstr(nnc_last_error(), "needs 12") != NULL,
          "engine 'torchscript' into 11 bytes: NNC_ERR_ARGUMENT, \"\" and the size it needs");
    check(nnc_model_device(good, small, 3) == NNC_ERR_ARGUMENT && small[0] == '\0' &&
              strstr(nnc_last_error(), "needs 4") != NULL,
          "device 'cpu' into 3 bytes: NNC_ERR_ARGUMENT, \"\" and the size it needs");
    check(nnc_model_device(good, small, 4) == NNC_OK && strcmp(small, "cpu") == 0, "device 'cpu' fits in 4 bytes");
    check(nnc_model_policy(good, small, sizeof small) == NNC_ERR_ARGUMENT && small[0] == '\0',
          "a policy longer than the buffer is NNC_ERR_ARGUMENT");
    expect_status(nnc_model_engine(NULL, engine, sizeof engine), NNC_ERR_HANDLE, "engine of an unloaded handle", good);

    /* Fortran order: x(3, 5) is torch (5, 3), y(2, 5) is torch (5, 2) */
    double xf[15], yf[10];
    for (int k = 0; k < 15; ++k) xf[k] = 0.25 * k; /* dyadic: W x + b exact in any summation order */
    int64_t xs[2] = {3, 5}, ys[2] = {2, 5};
    nnc_array in = array(xf, NNC_FLOAT64, 2, xs, NNC_ORDER_F), out = array(yf, NNC_FLOAT64, 2, ys, NNC_ORDER_F);
    for (int k = 0; k < 10; ++k) yf[k] = -99.0;
    check(nnc_model_forward(good, 1, &in, 1, &out) == NNC_OK, "Fortran order forward");
    check(fortran_order_right(xf, yf, 0), "  every element of y(2, 5) is W x(:, j) + b");
    /* the on-device route: for a CPU model the arrays are host memory, used in place alike */
    for (int k = 0; k < 10; ++k) yf[k] = -99.0;
    check(nnc_model_forward_on_device(good, 1, &in, 1, &out) == NNC_OK, "on-device route on a CPU model");
    check(fortran_order_right(xf, yf, 0), "  gives the host route's y(2, 5)");
    for (int k = 0; k < 10; ++k) yf[k] = -99.0;
    check(nnc_model_forward_on_device_fallback(good, 1, &in, 1, &out, 0, NULL, NULL) == NNC_OK &&
              fortran_order_right(xf, yf, 0),
          "on-device route, fallback form without fallback");
    expect_status(nnc_model_forward_on_device(good, 1, &in, 0, NULL), NNC_ERR_NARGS,
                  "on-device route checks the call like the host route", good);

    expect_status(nnc_model_load(&m, path("missing.pt"), "cpu"), NNC_ERR_IO, "missing file", good);
    check(m == NULL, "  handle stays NULL after a failed load");
    expect_status(nnc_model_load(&m, path("not_torchscript.pt"), "cpu"), NNC_ERR_FORMAT, "not TorchScript", good);
    expect_status(nnc_model_load(&m, path("truncated.pt"), "cpu"), NNC_ERR_FORMAT, "truncated file", good);
    expect_status(nnc_model_load(&m, path("affine64.pt"), "cuda:0"), NNC_ERR_NO_DEVICE, "cuda:0 without CUDA", good);
    expect_status(nnc_model_load(&m, path("affine64.pt"), "cuda:x"), NNC_ERR_BAD_DEVICE, "malformed device", good);
    expect_status(nnc_model_load(NULL, path("affine64.pt"), "cpu"), NNC_ERR_ARGUMENT, "NULL handle slot", good);
    expect_status(nnc_model_load(&m, NULL, "cpu"), NNC_ERR_ARGUMENT, "NULL path", good);

    int64_t bad_rank[3] = {1, 3, 5};
    nnc_array r3 = array(xf, NNC_FLOAT64, 3, bad_rank, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &r3, 1, &out), NNC_ERR_RANK, "wrong rank", good);
    int64_t bad_shape[2] = {5, 3};
    nnc_array s53 = array(xf, NNC_FLOAT64, 2, bad_shape, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &s53, 1, &out), NNC_ERR_SHAPE, "wrong per-sample shape", good);
    float xf32[15] = {0};
    nnc_array f32 = array(xf32, NNC_FLOAT32, 2, xs, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &f32, 1, &out), NNC_ERR_DTYPE, "wrong dtype", good);
    nnc_array two[2] = {in, in};
    expect_status(nnc_model_forward(good, 2, two, 1, &out), NNC_ERR_NARGS, "wrong number of inputs", good);
    expect_status(nnc_model_forward(good, 1, &in, 0, NULL), NNC_ERR_NARGS, "wrong number of outputs", good);
    int64_t bad_out[2] = {2, 4};
    nnc_array o24 = array(yf, NNC_FLOAT64, 2, bad_out, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &in, 1, &o24), NNC_ERR_SHAPE, "output batch differs", good);
    nnc_array nodata = array(NULL, NNC_FLOAT64, 2, xs, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &nodata, 1, &out), NNC_ERR_ARGUMENT, "NULL data", good);
    nnc_array baddt = array(xf, 42, 2, xs, NNC_ORDER_F);
    expect_status(nnc_model_forward(good, 1, &baddt, 1, &out), NNC_ERR_DTYPE, "unknown dtype code", good);
    expect_status(nnc_model_forward(NULL, 1, &in, 1, &out), NNC_ERR_HANDLE, "unloaded (NULL) handle", good);

    check(nnc_model_load(&m, path("affine64.pt"), NULL) == NNC_OK, "load with NULL device means cpu");
    nnc_model copy = m;
    check(nnc_model_free(&m) == NNC_OK && m == NULL, "free sets the handle to NULL");
    expect_status(nnc_model_free(&m), NNC_OK, "double free", good);
    expect_status(nnc_model_forward(copy, 1, &in, 1, &out), NNC_ERR_HANDLE, "freed handle (stale copy)", good);
    expect_status(nnc_model_free(&copy), NNC_ERR_HANDLE, "free through a stale copy", good);
    expect_status(nnc_set_num_threads(0), NNC_ERR_ARGUMENT, "zero threads", good);

    nnc_model plain = NULL;
    check(nnc_model_load(&plain, path("no_contract.pt"), "cpu") == NNC_OK, "plain TorchScript loads");
    check(nnc_model_has_contract(plain, &has) == NNC_OK && has == 0, "  and has no contract");
    for (int k = 0; k < 10; ++k) yf[k] = -99.0;
    check(nnc_model_forward(plain, 1, &in, 1, &out) == NNC_OK, "  and runs");
    check(fortran_order_right(xf, yf, 1), "  and gives tanh(W x + b) in every element");
    expect_status(nnc_model_forward(plain, 1, &s53, 1, &out), NNC_ERR_RUNTIME, "plain: torch's own shape error", good);
    expect_status(nnc_model_forward(plain, 1, &in, 1, &o24), NNC_ERR_SHAPE, "plain: output buffer shape", good);

    nnc_model_free(&plain);
    nnc_model_free(&good);
    char last[16];
    check(nnc_last_error_copy(last, sizeof last) == NNC_OK, "last_error_copy");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
