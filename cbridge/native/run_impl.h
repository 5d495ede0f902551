/* run_impl.h: the row pipeline for one element type; included by run.c with T and SFX set.
 *
 * A run goes over rows (the columns of a dense program, the faces of a window program) in
 * chunks of NNN_ROWS: the front fills buffer A with one input row each, the steps move
 * between A and B, the back writes the outputs. A row's values never depend on which
 * chunk or where in it the row is. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Rows g0 .. g0 + nr - 1 of a window program: row g is face g % N of column g / N; its
 * input is the C x K window of (normalised) cells face - left .. face - left + K - 1, mod N. */
static void FN(gather)(const nnn_program *p, const T *x, int64_t ncells, int64_t g0, int64_t nr, T *a) {
    const int64_t C = p->channels, K = p->width, N = ncells;
    const T *mean = p->front_mean, *std = p->front_std;
    for (int64_t r = 0; r < nr; ++r) {
        const int64_t col = (g0 + r) / N, face = (g0 + r) % N;
        const T *xc = x + col * C * N;
        T *row = a + r * p->stride;
        int64_t start = (face - p->left) % N;
        if (start < 0) start += N;
        for (int64_t c = 0; c < C; ++c) {
            int64_t cell = start;
            for (int64_t k = 0; k < K; ++k) {
                T v = xc[c * N + cell];
                if (p->front_nparam) {
                    const int64_t j = p->front_nparam == 1 ? 0 : c;
                    v = (v - mean[j]) / std[j];
                }
                row[c * K + k] = v;
                if (++cell == N) cell = 0;
            }
        }
    }
}

static void FN(scatter)(const nnn_program *p, const T *b, int64_t ncells, int64_t g0, int64_t nr, T *y) {
    const int64_t N = ncells, O = p->n_out;
    for (int64_t r = 0; r < nr; ++r) {
        const int64_t col = (g0 + r) / N, face = (g0 + r) % N;
        for (int64_t o = 0; o < O; ++o) y[(col * O + o) * N + face] = b[r * p->stride + o];
    }
}

static void FN(elementwise)(const nnn_step *s, T *rows, int64_t stride, int64_t nr) {
    const T *mean = s->w, *std = s->b;
    for (int64_t r = 0; r < nr; ++r) {
        T *v = rows + r * stride;
        for (int64_t i = 0; i < s->n_in; ++i) {
            const int64_t j = s->nparam == 1 ? 0 : i;
            if (s->kind == NNN_OP_NORMALIZE) v[i] = (v[i] - mean[j]) / std[j];
            else v[i] = v[i] * std[j] + mean[j];
        }
    }
}

/* The steps over nr rows in a; returns the buffer holding the result. */
static T *FN(steps)(const nnn_program *p, T *a, T *b, int64_t nr) {
    for (int k = 0; k < p->nsteps; ++k) {
        const nnn_step *s = &p->steps[k];
        if (s->kind == NNN_OP_DENSE) {
            p->kernels->CAT(dense, SFX)(s->w, s->b, s->n_in, s->n_pad, s->act, a, p->stride, b, p->stride, nr);
            T *t = a;
            a = b;
            b = t;
        } else if (s->kind == NNN_OP_ACTIVATION) {
            for (int64_t r = 0; r < nr; ++r) p->kernels->CAT(act, SFX)(s->act, a + r * p->stride, s->n_in);
        } else {
            FN(elementwise)(s, a, p->stride, nr);
        }
    }
    return a;
}

static void FN(run)(const nnn_program *p, T *a, T *b, int64_t ncells, const T *x, T *y, int64_t begin, int64_t end) {
    if (p->window) {
        for (int64_t g = begin * ncells; g < end * ncells; g += NNN_ROWS) {
            const int64_t nr = end * ncells - g < NNN_ROWS ? end * ncells - g : NNN_ROWS;
            FN(gather)(p, x, ncells, g, nr, a);
            FN(scatter)(p, FN(steps)(p, a, b, nr), ncells, g, nr, y);
        }
        return;
    }
    for (int64_t c = begin; c < end; c += NNN_ROWS) {
        const int64_t nr = end - c < NNN_ROWS ? end - c : NNN_ROWS;
        for (int64_t r = 0; r < nr; ++r) memcpy(a + r * p->stride, x + (c + r) * p->n_in, (size_t)p->n_in * sizeof(T));
        const T *res = FN(steps)(p, a, b, nr);
        for (int64_t r = 0; r < nr; ++r) memcpy(y + (c + r) * p->n_out, res + r * p->stride, (size_t)p->n_out * sizeof(T));
    }
}

#undef FN
#undef CAT
#undef CAT_
