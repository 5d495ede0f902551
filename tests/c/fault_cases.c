/* The C side of the fault catalog (tests/python/test_fault_catalog.py): bad
 * input and misuse of nn_closure.h, one case each.
 *
 * Usage: fault_cases FAULT_DIR [CASE...]   (every case when none is named)
 * Prints one line per case, "case|ID|STATUS|RECOVERY|MESSAGE": the status of
 * the faulty call, its message (newlines as spaces), and "next-call-ok" when a
 * valid forward call on a good model (the one that got the fault, for faults of
 * arguments) and a fresh load right after the fault still worked, with known
 * values, and a misbehaving model gave them too when called as it allows
 * ("next-call-FAILED" otherwise). The same holds for the AOTInductor package
 * plain_affine64.pt2 (the same model): it gets the pt2_ faults of arguments, is
 * called after every case, and a pt2_ case also loads and runs a fresh copy.
 * A train_ case (online training, nnc_train_*) also needs a training step on
 * the shared trainer (train64.pt, a float64 Linear(3, 2)) to work right after
 * it, with a finite loss, and a sync of it into its own model.
 * A case that finds the bridge
 * doing something other than returning a status (a handle left set after a
 * failed load, wrong numbers) reports status -1 and says what. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_closure.h"

static char dir[1024];
static nnc_model good = NULL;  /* plain_affine64.pt: y = W x + b, known by hand */
static nnc_model good2 = NULL; /* plain_affine64.pt2: the same model, compiled by AOTInductor */
static int pt2_case;           /* the case is a pt2_ one: the next call also loads a fresh package */
static int native_case;        /* the case is a native_ one: the next call also loads a fresh program */
static int status_seen;
static int same_model_ok = 1; /* a case on a model of its own: its next valid call worked */
static char message_seen[8192];

static const char *path(const char *name) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* Remember the status and message of the faulty call (before any cleanup). */
static int note(int status) {
    status_seen = status;
    snprintf(message_seen, sizeof message_seen, "%s", nnc_last_error());
    return status;
}

static int broken(const char *what) {
    status_seen = -1;
    snprintf(message_seen, sizeof message_seen, "%s", what);
    return -1;
}

static nnc_array array(void *data, int dtype, int rank, const int64_t *shape) {
    nnc_array a;
    memset(&a, 0, sizeof a);
    a.data = data;
    a.dtype = dtype;
    a.rank = rank;
    a.order = NNC_ORDER_C;
    for (int d = 0; d < rank && d < NNC_MAX_RANK; ++d) a.shape[d] = shape[d];
    return a;
}

static double x[5][3], y[5][2];
static const int64_t xs[2] = {5, 3}, ys[2] = {5, 2};

static int right_numbers(double (*in)[3], double (*out)[2], int n) {
    for (int j = 0; j < n; ++j) { /* W = [[1,2,3],[4,5,6]]/8, b = [-0.5, -0.25] */
        double e0 = (in[j][0] + 2 * in[j][1] + 3 * in[j][2]) / 8.0 - 0.5;
        double e1 = (4 * in[j][0] + 5 * in[j][1] + 6 * in[j][2]) / 8.0 - 0.25;
        if (out[j][0] != e0 || out[j][1] != e1) return 0;
    }
    return 1;
}

static int gives_right_numbers(nnc_model m) {
    double yy[5][2];
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(yy, NNC_FLOAT64, 2, ys);
    return nnc_model_forward(m, 1, &in, 1, &out) == NNC_OK && right_numbers(x, yy, 5);
}

/* A valid forward call on the good models gives the right numbers, and a good
 * file still loads and frees (for a pt2_ case, a good package too, and runs). */
static int next_call_works(void) {
    if (!gives_right_numbers(good) || !gives_right_numbers(good2)) return 0;
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return 0;
    if (nnc_model_free(&m) != NNC_OK || m != NULL) return 0;
    if (!pt2_case && !native_case) return 1;
    if (nnc_model_load(&m, path(pt2_case ? "plain_affine64.pt2" : "plain_affine64.nnp"), "cpu") != NNC_OK) return 0;
    int ok = gives_right_numbers(m);
    return nnc_model_free(&m) == NNC_OK && m == NULL && ok;
}

static int load_fault(const char *file, const char *device) {
    nnc_model m = NULL;
    note(nnc_model_load(&m, file ? path(file) : NULL, device));
    if (m != NULL) {
        nnc_model_free(&m);
        return broken("the handle is not NULL after a failed load");
    }
    return status_seen;
}

/* Forward through a model file made to misbehave; x is (5, 3), y is (5, 2).
 * Each misbehaves on some inputs only (raises.pt on a negative entry, the others
 * when no entry is negative) and otherwise returns x[:, :2]: after the fault the
 * same model gets the other sign and must give exactly that. */
static int model_fault(const char *file, double sign) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path(file), "cpu") != NNC_OK) return broken("cannot load the misbehaving model");
    double xin[5][3], yy[5][2];
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) xin[j][i] = sign * x[j][i];
    nnc_array in = array(xin, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    note(nnc_model_forward(m, 1, &in, 1, &out));
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) xin[j][i] = -xin[j][i];
    out = array(yy, NNC_FLOAT64, 2, ys);
    same_model_ok = nnc_model_forward(m, 1, &in, 1, &out) == NNC_OK;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 2; ++i) same_model_ok &= yy[j][i] == xin[j][i];
    nnc_model_free(&m);
    return status_seen;
}

/* ---- Online training: one trainer on train64.pt for the cases of arguments. */
static nnc_model tmodel = NULL; /* train64.pt: Linear(3, 2), float64, trainable */
static nnc_trainer trainer = NULL;
static int train_case;
static double ty[5][2]; /* targets */

static int train_setup(void) {
    if (trainer != NULL) return 1;
    for (int j = 0; j < 5; ++j) ty[j][0] = 0.5 * j, ty[j][1] = -0.25 * j;
    return nnc_model_load(&tmodel, path("train64.pt"), "cpu") == NNC_OK &&
           nnc_train_create(&trainer, tmodel, "", "lr=0.01") == NNC_OK;
}

static int train_step(nnc_trainer t, void *xd, int xdtype, void *yd, int ydtype, const int64_t *yshape) {
    nnc_array in = array(xd, xdtype, 2, xs), tg = array(yd, ydtype, 2, yshape);
    double loss = -1.0;
    int status = nnc_train_step(t, 1, &in, 1, &tg, &loss);
    return status == NNC_OK && !(isfinite(loss) && loss >= 0.0) ? -1 : status;
}

/* The shared trainer steps with a finite loss and syncs into its model. */
static int training_works(void) {
    return trainer != NULL && train_step(trainer, x, NNC_FLOAT64, ty, NNC_FLOAT64, ys) == NNC_OK &&
           nnc_train_sync(trainer, tmodel) == NNC_OK;
}

static int train_create_fault(const char *spec) {
    nnc_trainer t = NULL;
    char full[2048];
    snprintf(full, sizeof full, "%s:spec", path(spec));
    note(nnc_train_create(&t, tmodel, full, ""));
    if (t != NULL) {
        nnc_train_free(&t);
        return broken("the trainer handle is not NULL after a failed create");
    }
    return status_seen;
}

static int c_train_missing_spec(void) { return train_create_fault("no_such_spec.py"); }
static int c_train_spec_raises(void) { return train_create_fault("raising_spec.py"); }

static int c_train_wrong_shape(void) {
    static double wide[5][3];
    static const int64_t ws[2] = {5, 3};
    return note(train_step(trainer, x, NNC_FLOAT64, wide, NNC_FLOAT64, ws));
}

static int c_train_wrong_dtype(void) {
    static float x32[5][3], y32[5][2];
    return note(train_step(trainer, x32, NNC_FLOAT32, y32, NNC_FLOAT32, ys));
}

static int c_train_nan_loss(void) {
    double bad[5][2];
    memcpy(bad, ty, sizeof bad);
    bad[2][1] = NAN;
    return note(train_step(trainer, x, NNC_FLOAT64, bad, NNC_FLOAT64, ys));
}

static int c_train_sync_other_architecture(void) {
    nnc_model other = NULL;
    if (nnc_model_load(&other, path("train_other.pt"), "cpu") != NNC_OK) return broken("cannot load train_other.pt");
    note(nnc_train_sync(trainer, other));
    nnc_model_free(&other);
    return status_seen;
}

static int c_train_freed_handle(void) {
    nnc_trainer t = NULL, copy;
    if (nnc_train_create(&t, tmodel, "", "") != NNC_OK) return broken("cannot create a trainer");
    copy = t;
    nnc_train_free(&t);
    if (t != NULL) return broken("nnc_train_free left the handle set");
    return note(train_step(copy, x, NNC_FLOAT64, ty, NNC_FLOAT64, ys));
}

/* A stale copy after later creates: a freed trainer's address is never handed out again. */
static int c_train_stale_handle_after_reuse(void) {
    nnc_trainer t = NULL, stale;
    if (nnc_train_create(&t, tmodel, "", "") != NNC_OK) return broken("cannot create a trainer");
    stale = t;
    nnc_train_free(&t);
    for (int k = 0; k < 50 && t != stale; ++k) {
        nnc_train_free(&t);
        if (nnc_train_create(&t, tmodel, "", "") != NNC_OK) return broken("cannot create a trainer");
    }
    int reused = t == stale;
    note(train_step(stale, x, NNC_FLOAT64, ty, NNC_FLOAT64, ys));
    nnc_train_free(&t);
    return reused ? broken("a freed trainer's address was handed out again") : status_seen;
}

static int c_train_never_created(void) {
    nnc_trainer t = NULL;
    return note(train_step(t, x, NNC_FLOAT64, ty, NNC_FLOAT64, ys));
}

static int forward_good(int nin, const nnc_array *in, int nout, const nnc_array *out) {
    return note(nnc_model_forward(good, nin, in, nout, out));
}

static int c_missing_file(void) { return load_fault("missing.pt", "cpu"); }
static int c_directory(void) { return load_fault("directory.pt", "cpu"); }
static int c_empty_file(void) { return load_fault("empty.pt", "cpu"); }
static int c_truncated(void) { return load_fault("truncated.pt", "cpu"); }
static int c_not_torchscript(void) { return load_fault("not_torchscript.pt", "cpu"); }
static int c_state_dict(void) { return load_fault("state_dict.pt", "cpu"); }
static int c_corrupt_contract_json(void) { return load_fault("corrupt_contract.pt", "cpu"); }
static int c_unknown_contract_schema(void) { return load_fault("unknown_schema.pt", "cpu"); }
static int c_malformed_device(void) { return load_fault("plain_affine64.pt", "gpu:0"); }
static int c_cuda_without_cuda(void) { return load_fault("plain_affine64.pt", "cuda:0"); }
static int load_with_fault(const char *file, const char *options) {
    nnc_model m = NULL;
    note(nnc_model_load_with(&m, path(file), "cpu", options));
    if (m != NULL) {
        nnc_model_free(&m);
        return broken("the handle is not NULL after a failed load");
    }
    return status_seen;
}
static int c_untrusted_file(void) {
    return load_with_fault("affine64.pt",
                           "trusted_sha256=0000000000000000000000000000000000000000000000000000000000000000");
}
static int c_bad_trusted_digest(void) { return load_with_fault("affine64.pt", "trusted_sha256=abc"); }
static int c_null_path(void) { return load_fault(NULL, "cpu"); }
static int c_null_handle_slot(void) { return note(nnc_model_load(NULL, path("plain_affine64.pt"), "cpu")); }

static int c_path_too_long(void) {
    static char longname[5000];
    memset(longname, 'a', sizeof longname - 1);
    return load_fault(longname, "cpu");
}

static int c_unloaded_handle(void) {
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return note(nnc_model_forward(NULL, 1, &in, 1, &out));
}

static int c_freed_handle(void) {
    nnc_model m = NULL, copy;
    if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return broken("cannot load");
    copy = m;
    nnc_model_free(&m);
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return note(nnc_model_forward(copy, 1, &in, 1, &out));
}

static int c_double_free(void) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return broken("cannot load");
    nnc_model_free(&m);
    return note(nnc_model_free(&m));
}

static int c_free_through_stale_copy(void) {
    nnc_model m = NULL, copy;
    if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return broken("cannot load");
    copy = m;
    nnc_model_free(&m);
    note(nnc_model_free(&copy));
    return copy == NULL ? broken("a stale copy was set to NULL as if freed") : status_seen;
}

/* A stale copy after many later loads: a freed handle's address is never
 * handed out again, so the copy still reaches no model. */
static int c_stale_handle_after_reuse(void) {
    nnc_model m = NULL, stale;
    if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return broken("cannot load");
    stale = m;
    nnc_model_free(&m);
    for (int k = 0; k < 300 && m != stale; ++k) {
        nnc_model_free(&m);
        if (nnc_model_load(&m, path("plain_affine64.pt"), "cpu") != NNC_OK) return broken("cannot load");
    }
    int reused = m == stale, nin = -1;
    note(nnc_model_num_io(stale, &nin, NULL));
    nnc_model_free(&m);
    if (reused) return broken("a later load got the freed handle's address");
    return status_seen;
}

static int c_foreign_handle(void) {
    static double not_a_model[64];
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return note(nnc_model_forward((nnc_model)(void *)not_a_model, 1, &in, 1, &out));
}

static int c_wrong_number_of_inputs(void) {
    nnc_array in[2] = {array(x, NNC_FLOAT64, 2, xs), array(x, NNC_FLOAT64, 2, xs)};
    nnc_array out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(2, in, 1, &out);
}

static int c_wrong_number_of_outputs(void) {
    nnc_array in = array(x, NNC_FLOAT64, 2, xs);
    nnc_array out[2] = {array(y, NNC_FLOAT64, 2, ys), array(y, NNC_FLOAT64, 2, ys)};
    return forward_good(1, &in, 2, out);
}

static int c_negative_number_of_inputs(void) {
    nnc_array out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(-1, NULL, 1, &out);
}

static int c_null_inputs_array(void) {
    nnc_array out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, NULL, 1, &out);
}

static int c_wrong_rank(void) {
    int64_t s[3] = {5, 3, 1};
    nnc_array in = array(x, NNC_FLOAT64, 3, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

static int c_rank_9_array(void) {
    int64_t s[NNC_MAX_RANK] = {5, 3, 1, 1, 1, 1, 1, 1};
    nnc_array in = array(x, NNC_FLOAT64, NNC_MAX_RANK, s), out = array(y, NNC_FLOAT64, 2, ys);
    in.rank = NNC_MAX_RANK + 1;
    return forward_good(1, &in, 1, &out);
}

static int c_negative_rank(void) {
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    in.rank = -1;
    return forward_good(1, &in, 1, &out);
}

static int c_wrong_shape(void) {
    int64_t s[2] = {3, 5};
    nnc_array in = array(x, NNC_FLOAT64, 2, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

static int c_output_batch_mismatch(void) {
    int64_t s[2] = {4, 2};
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, s);
    return forward_good(1, &in, 1, &out);
}

static int c_batch_mismatch(void) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("two_in_two_out.pt"), "cpu") != NNC_OK) return broken("cannot load");
    double u[4][3] = {{0}}, t[5][2] = {{0}}, flux[4][3], s[4][1];
    int64_t us[2] = {4, 3}, ts[2] = {5, 2}, fs[2] = {4, 3}, ss[2] = {4, 1};
    nnc_array in[2] = {array(u, NNC_FLOAT64, 2, us), array(t, NNC_FLOAT64, 2, ts)};
    nnc_array out[2] = {array(flux, NNC_FLOAT64, 2, fs), array(s, NNC_FLOAT64, 2, ss)};
    note(nnc_model_forward(m, 2, in, 2, out));
    nnc_model_free(&m);
    return status_seen;
}

static int c_negative_extent(void) {
    int64_t s[2] = {-5, 3};
    nnc_array in = array(x, NNC_FLOAT64, 2, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

static int c_wrong_dtype(void) {
    float xf[5][3] = {{0}};
    nnc_array in = array(xf, NNC_FLOAT32, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

static int c_unknown_dtype_code(void) {
    nnc_array in = array(x, 42, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

static int c_unknown_order_code(void) {
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    in.order = 7;
    return forward_good(1, &in, 1, &out);
}

static int c_null_data(void) {
    nnc_array in = array(NULL, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_good(1, &in, 1, &out);
}

/* NULL strides mean contiguous: a strided buffer described without strides is
 * read as if it were contiguous (the caller's promise; nothing can check it). */
static int c_null_strides_mean_contiguous(void) {
    double wide[5][6], packed[5][3];
    for (int k = 0; k < 30; ++k) (&wide[0][0])[k] = 0.01 * k;
    memcpy(packed, wide, sizeof packed); /* the first 15 doubles, as contiguous (5, 3) */
    nnc_array in = array(wide, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    if (forward_good(1, &in, 1, &out) != NNC_OK) return status_seen;
    return right_numbers(packed, y, 5) ? NNC_OK : broken("not read as contiguous");
}

static int c_zero_size_batch(void) {
    int64_t s0[2] = {0, 3}, o0[2] = {0, 2};
    nnc_array in = array(NULL, NNC_FLOAT64, 2, s0), out = array(NULL, NNC_FLOAT64, 2, o0);
    return forward_good(1, &in, 1, &out);
}

static int c_overlapping_output(void) {
    double row[2] = {0, 0};
    int64_t st[2] = {0, 1}; /* every sample writes the same two numbers */
    nnc_array in = array(x, NNC_FLOAT64, 2, xs), out = array(row, NNC_FLOAT64, 2, ys);
    out.strides = st;
    return forward_good(1, &in, 1, &out);
}

/* The pt2_ faults: the same checks on an AOTInductor package, which checks none
 * of its inputs itself. */
static int forward_pt2(int nin, const nnc_array *in, int nout, const nnc_array *out) {
    return note(nnc_model_forward(good2, nin, in, nout, out));
}

static int c_pt2_wrong_dtype(void) {
    float xf[5][3] = {{0}}, yf[5][2];
    nnc_array in = array(xf, NNC_FLOAT32, 2, xs), out = array(yf, NNC_FLOAT32, 2, ys);
    return forward_pt2(1, &in, 1, &out);
}

static int c_pt2_wrong_rank(void) {
    int64_t s[3] = {5, 3, 1};
    nnc_array in = array(x, NNC_FLOAT64, 3, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_pt2(1, &in, 1, &out);
}

static int c_pt2_wrong_shape(void) {
    int64_t s[2] = {3, 5};
    nnc_array in = array(x, NNC_FLOAT64, 2, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_pt2(1, &in, 1, &out);
}

/* cells64.pt2: q (ncell >= 2) -> faces (ncell + 1): 0, the means of neighbours, 0. */
static int faces_right(const double *q, const double *faces, int ncol, int ncell) {
    for (int j = 0; j < ncol; ++j)
        for (int f = 0; f <= ncell; ++f) {
            double e = f == 0 || f == ncell ? 0.0 : 0.5 * (q[j * ncell + f] + q[j * ncell + f - 1]);
            if (faces[j * (ncell + 1) + f] != e) return 0;
        }
    return 1;
}

static int c_pt2_grid_outside_range(void) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("cells64.pt2"), "cpu") != NNC_OK) return broken("cannot load cells64.pt2");
    double q[5][4], faces[5][5];
    for (int k = 0; k < 20; ++k) (&q[0][0])[k] = 0.25 * k;
    int64_t q1[2] = {5, 1}, f1[2] = {5, 2}, q4[2] = {5, 4}, f4[2] = {5, 5};
    nnc_array in = array(q, NNC_FLOAT64, 2, q1), out = array(faces, NNC_FLOAT64, 2, f1);
    note(nnc_model_forward(m, 1, &in, 1, &out));
    in = array(q, NNC_FLOAT64, 2, q4);
    out = array(faces, NNC_FLOAT64, 2, f4);
    same_model_ok = nnc_model_forward(m, 1, &in, 1, &out) == NNC_OK && faces_right(&q[0][0], &faces[0][0], 5, 4);
    nnc_model_free(&m);
    return status_seen;
}

static int c_pt2_fortran_order(void) {
    double xf[15], yf[10], back[5][3], yc[5][2];
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) back[j][i] = xf[i + 3 * j] = 0.25 * (2 * i + 7 * j) - 1.0;
    int64_t s[2] = {3, 5}, o[2] = {2, 5};
    nnc_array in = array(xf, NNC_FLOAT64, 2, s), out = array(yf, NNC_FLOAT64, 2, o);
    in.order = out.order = NNC_ORDER_F;
    if (forward_pt2(1, &in, 1, &out) != NNC_OK) return status_seen;
    for (int j = 0; j < 5; ++j)
        for (int k = 0; k < 2; ++k) yc[j][k] = yf[k + 2 * j];
    return right_numbers(back, yc, 5) ? NNC_OK : broken("wrong numbers from a Fortran-ordered call");
}

/* Every other column of a (10, 3) buffer, and every other entry of a row of 6:
 * strides {6, 2} in elements. */
static int c_pt2_strided_input(void) {
    double wide[10][6], picked[5][3];
    for (int k = 0; k < 60; ++k) (&wide[0][0])[k] = 0.25 * k - 3.0;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) picked[j][i] = wide[2 * j][2 * i];
    int64_t st[2] = {12, 2};
    nnc_array in = array(wide, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    in.strides = st;
    if (forward_pt2(1, &in, 1, &out) != NNC_OK) return status_seen;
    return right_numbers(picked, y, 5) ? NNC_OK : broken("wrong numbers from a strided input");
}

static int c_pt2_zero_size_batch(void) {
    double sentinel[2] = {99.0, 99.0};
    int64_t s0[2] = {0, 3}, o0[2] = {0, 2};
    nnc_array in = array(x, NNC_FLOAT64, 2, s0), out = array(sentinel, NNC_FLOAT64, 2, o0);
    if (forward_pt2(1, &in, 1, &out) != NNC_OK) return status_seen;
    return sentinel[0] == 99.0 && sentinel[1] == 99.0 ? NNC_OK : broken("wrote into a zero-column output");
}

/* The native_ faults: plain_affine64.nnp, the same model as a native program. */
static int forward_native(const nnc_array *in, const nnc_array *out) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("plain_affine64.nnp"), "cpu") != NNC_OK)
        return broken("cannot load plain_affine64.nnp");
    note(nnc_model_forward(m, 1, in, 1, out));
    nnc_model_free(&m);
    return status_seen;
}

static int c_native_truncated(void) { return load_fault("truncated.nnp", "cpu"); }
static int c_native_bad_sizes(void) { return load_fault("bad_sizes.nnp", "cpu"); }
static int c_native_absurd_dims(void) { return load_fault("absurd_dims.nnp", "cpu"); }
static int c_native_wrong_arith(void) { return load_fault("wrong_arith.nnp", "cpu"); }
static int c_native_not_native(void) { return load_fault("torchscript_named.nnp", "cpu"); }
static int c_native_cuda(void) { return load_fault("plain_affine64.nnp", "cuda"); }
static int c_native_engine_required(void) { return load_with_fault("plain_affine64.nnp", "engine=torchscript"); }

static int c_native_wrong_dtype(void) {
    float xf[5][3] = {{0}}, yf[5][2];
    nnc_array in = array(xf, NNC_FLOAT32, 2, xs), out = array(yf, NNC_FLOAT32, 2, ys);
    return forward_native(&in, &out);
}

static int c_native_wrong_shape(void) {
    double xw[5][5] = {{0}};
    int64_t s[2] = {5, 5};
    nnc_array in = array(xw, NNC_FLOAT64, 2, s), out = array(y, NNC_FLOAT64, 2, ys);
    return forward_native(&in, &out);
}

/* As c_pt2_strided_input: strides {12, 2} in elements, copied by the bridge. */
static int c_native_strided_input(void) {
    double wide[10][6], picked[5][3];
    for (int k = 0; k < 60; ++k) (&wide[0][0])[k] = 0.25 * k - 3.0;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) picked[j][i] = wide[2 * j][2 * i];
    int64_t st[2] = {12, 2};
    nnc_array in = array(wide, NNC_FLOAT64, 2, xs), out = array(y, NNC_FLOAT64, 2, ys);
    in.strides = st;
    if (forward_native(&in, &out) != NNC_OK) return status_seen;
    return right_numbers(picked, y, 5) ? NNC_OK : broken("wrong numbers from a strided input");
}

static int c_pt2_untrusted(void) {
    return load_with_fault("plain_affine64.pt2",
                           "trusted_sha256=0000000000000000000000000000000000000000000000000000000000000000");
}
static int c_pt2_export_archive(void) { return load_fault("export_archive.pt2", "cpu"); }
static int c_pt2_torchscript_named(void) { return load_fault("torchscript_named.pt2", "cpu"); }
static int c_pt2_truncated(void) { return load_fault("truncated.pt2", "cpu"); }
static int c_pt2_without_contract(void) { return load_fault("no_contract.pt2", "cpu"); }
static int c_pt2_missing_cpu_feature(void) { return load_fault("needs_missing_feature.pt2", "cpu"); }
static int c_pt2_unknown_cpu_feature(void) { return load_fault("needs_made_up_feature.pt2", "cpu"); }
static int c_pt2_built_for_cuda(void) { return load_fault("built_for_cuda.pt2", "cpu"); }

static int c_model_raises(void) { return model_fault("raises.pt", -1.0); }
static int c_model_returns_wrong_shape(void) { return model_fault("returns_wide.pt", 1.0); }
static int c_model_returns_wrong_dtype(void) { return model_fault("returns_float32.pt", 1.0); }
static int c_model_returns_wrong_count(void) { return model_fault("returns_two.pt", 1.0); }
static int c_model_returns_non_tensor(void) { return model_fault("returns_int.pt", 1.0); }

static int c_plain_model_torch_shape_error(void) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("no_contract.pt"), "cpu") != NNC_OK) return broken("cannot load");
    int64_t s[2] = {3, 5};
    nnc_array in = array(x, NNC_FLOAT64, 2, s), out = array(y, NNC_FLOAT64, 2, ys);
    note(nnc_model_forward(m, 1, &in, 1, &out));
    nnc_model_free(&m);
    return status_seen;
}

static int c_plain_model_wrong_nargs(void) {
    nnc_model m = NULL;
    if (nnc_model_load(&m, path("no_contract.pt"), "cpu") != NNC_OK) return broken("cannot load");
    nnc_array in[2] = {array(x, NNC_FLOAT64, 2, xs), array(x, NNC_FLOAT64, 2, xs)};
    nnc_array out = array(y, NNC_FLOAT64, 2, ys);
    note(nnc_model_forward(m, 2, in, 1, &out));
    nnc_model_free(&m);
    return status_seen;
}

static int c_zero_threads(void) { return note(nnc_set_num_threads(0)); }
static int c_null_thread_count(void) { return note(nnc_get_num_threads(NULL)); }
static int c_null_version(void) { return note(nnc_version(NULL, NULL)); }

static int c_last_error_copy_buflen_0(void) {
    char buf[4] = "xyz";
    note(nnc_last_error_copy(buf, 0));
    return strcmp(buf, "xyz") == 0 ? status_seen : broken("wrote into a buffer of length 0");
}

static int c_last_error_copy_null_buf(void) { return note(nnc_last_error_copy(NULL, 16)); }

static int c_io_index_out_of_range(void) {
    nnc_io_info info;
    return note(nnc_model_io(good, 1, 5, &info));
}

static int c_io_without_contract(void) {
    nnc_model m = NULL;
    nnc_io_info info;
    if (nnc_model_load(&m, path("no_contract.pt"), "cpu") != NNC_OK) return broken("cannot load");
    note(nnc_model_io(m, 0, 0, &info));
    nnc_model_free(&m);
    return status_seen;
}

static int c_device_buflen_0(void) {
    char buf[8];
    return note(nnc_model_device(good, buf, 0));
}

/* A name that does not fit is an error: an empty string, never a name cut short. */
static int c_engine_buffer_too_small(void) {
    char buf[8] = "xxxxxxx";
    note(nnc_model_engine(good, buf, sizeof buf));
    if (buf[0] != '\0') return broken("a partial copy");
    return status_seen;
}

/* Too small a buffer for the contract is not an error: an empty string and the size. */
static int c_contract_buffer_too_small(void) {
    char buf[8] = "xxxxxxx";
    size_t needed = 0;
    note(nnc_model_contract(good, buf, sizeof buf, &needed));
    if (status_seen == NNC_OK && (buf[0] != '\0' || needed <= sizeof buf)) return broken("no size, or a partial copy");
    return status_seen;
}

static const struct {
    const char *id;
    int (*run)(void);
} cases[] = {
#define CASE(name) {#name, c_##name}
    CASE(missing_file),
    CASE(directory),
    CASE(empty_file),
    CASE(truncated),
    CASE(not_torchscript),
    CASE(state_dict),
    CASE(corrupt_contract_json),
    CASE(unknown_contract_schema),
    CASE(malformed_device),
    CASE(cuda_without_cuda),
    CASE(untrusted_file),
    CASE(bad_trusted_digest),
    CASE(null_path),
    CASE(null_handle_slot),
    CASE(path_too_long),
    CASE(unloaded_handle),
    CASE(freed_handle),
    CASE(double_free),
    CASE(free_through_stale_copy),
    CASE(stale_handle_after_reuse),
    CASE(foreign_handle),
    CASE(wrong_number_of_inputs),
    CASE(wrong_number_of_outputs),
    CASE(negative_number_of_inputs),
    CASE(null_inputs_array),
    CASE(wrong_rank),
    CASE(rank_9_array),
    CASE(negative_rank),
    CASE(wrong_shape),
    CASE(output_batch_mismatch),
    CASE(batch_mismatch),
    CASE(negative_extent),
    CASE(wrong_dtype),
    CASE(unknown_dtype_code),
    CASE(unknown_order_code),
    CASE(null_data),
    CASE(null_strides_mean_contiguous),
    CASE(zero_size_batch),
    CASE(overlapping_output),
    CASE(model_raises),
    CASE(model_returns_wrong_shape),
    CASE(model_returns_wrong_dtype),
    CASE(model_returns_wrong_count),
    CASE(model_returns_non_tensor),
    CASE(plain_model_torch_shape_error),
    CASE(plain_model_wrong_nargs),
    CASE(zero_threads),
    CASE(null_thread_count),
    CASE(null_version),
    CASE(last_error_copy_buflen_0),
    CASE(last_error_copy_null_buf),
    CASE(io_index_out_of_range),
    CASE(io_without_contract),
    CASE(device_buflen_0),
    CASE(contract_buffer_too_small),
    CASE(engine_buffer_too_small),
    CASE(pt2_wrong_dtype),
    CASE(pt2_wrong_rank),
    CASE(pt2_wrong_shape),
    CASE(pt2_grid_outside_range),
    CASE(pt2_fortran_order),
    CASE(pt2_strided_input),
    CASE(pt2_zero_size_batch),
    CASE(pt2_untrusted),
    CASE(pt2_export_archive),
    CASE(pt2_torchscript_named),
    CASE(pt2_truncated),
    CASE(pt2_without_contract),
    CASE(pt2_missing_cpu_feature),
    CASE(pt2_unknown_cpu_feature),
    CASE(pt2_built_for_cuda),
    CASE(native_truncated),
    CASE(native_bad_sizes),
    CASE(native_absurd_dims),
    CASE(native_wrong_arith),
    CASE(native_not_native),
    CASE(native_wrong_dtype),
    CASE(native_wrong_shape),
    CASE(native_strided_input),
    CASE(native_cuda),
    CASE(native_engine_required),
    CASE(train_missing_spec),
    CASE(train_spec_raises),
    CASE(train_wrong_shape),
    CASE(train_wrong_dtype),
    CASE(train_nan_loss),
    CASE(train_sync_other_architecture),
    CASE(train_freed_handle),
    CASE(train_never_created),
    CASE(train_stale_handle_after_reuse),
#undef CASE
};

static void run_case(int k) {
    status_seen = -1;
    message_seen[0] = '\0';
    same_model_ok = 1;
    pt2_case = strncmp(cases[k].id, "pt2_", 4) == 0;
    native_case = strncmp(cases[k].id, "native_", 7) == 0;
    train_case = strncmp(cases[k].id, "train_", 6) == 0;
    if (train_case && !train_setup()) {
        fprintf(stderr, "cannot set up the shared trainer: %s\n", nnc_last_error());
        exit(2);
    }
    cases[k].run();
    int ok = same_model_ok && next_call_works() && (!train_case || training_works());
    for (char *c = message_seen; *c; ++c)
        if (*c == '\n' || *c == '\r') *c = ' ';
    printf("case|%s|%d|%s|%s\n", cases[k].id, status_seen, ok ? "next-call-ok" : "next-call-FAILED", message_seen);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fault_cases FAULT_DIR [CASE...]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 3; ++i) x[j][i] = 0.25 * (i + 3 * j); /* dyadic: W x + b exact in any order */
    if (nnc_model_load(&good, path("plain_affine64.pt"), "cpu") != NNC_OK) {
        fprintf(stderr, "cannot load the good model: %s\n", nnc_last_error());
        return 2;
    }
    if (nnc_model_load(&good2, path("plain_affine64.pt2"), "cpu") != NNC_OK) {
        fprintf(stderr, "cannot load the good package: %s\n", nnc_last_error());
        return 2;
    }
    const int n = (int)(sizeof cases / sizeof cases[0]);
    for (int k = 0; k < n; ++k) {
        int wanted = argc == 2;
        for (int a = 2; a < argc; ++a) wanted |= strcmp(argv[a], cases[k].id) == 0;
        if (wanted) run_case(k);
    }
    nnc_train_free(&trainer);
    nnc_model_free(&tmodel);
    nnc_model_free(&good2);
    nnc_model_free(&good);
    return 0;
}
