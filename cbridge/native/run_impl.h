/* run_impl.h: the row pipeline for one element type; included by run.c with T and SFX set.
 *
 * A run goes over rows (the columns of a dense program, the faces of a window program) in
 * chunks of NNN_ROWS: the front fills buffer A with one input row each, the steps move
 * between A and B, the back writes the outputs. A row's values never depend on which
 * chunk or where in it the row is. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* Rows per column of a window program: its faces (N periodic, N - 1 inside a column). */
static int64_t FN(faces)(const nnn_program *p, int64_t ncells) {
    return p->boundary == NNN_BOUNDARY_PERIODIC ? ncells : ncells - 1;
}

/* Rows g0 .. g0 + nr - 1 of a window program: row g is face f of column g / R (R faces a
 * column; f = g % R periodic, g % R + 1 in a column); its input is the C x K window of
 * (normalised) cells f - left .. f - left + K - 1: mod N (periodic), else past the ends the
 * edge cell (replicate) or 0 (zeros, not normalised). */
static void FN(gather)(const nnn_program *p, const T *x, int64_t ncells, int64_t g0, int64_t nr, T *a) {
    const int64_t C = p->channels, K = p->width, N = ncells, R = FN(faces)(p, ncells);
    const int periodic = p->boundary == NNN_BOUNDARY_PERIODIC, zeros = p->boundary == NNN_BOUNDARY_ZEROS;
    const T *mean = p->front_mean, *std = p->front_std;
    for (int64_t r = 0; r < nr; ++r) {
        const int64_t col = (g0 + r) / R, face = (g0 + r) % R + !periodic;
        const T *xc = x + col * C * N;
        T *row = a + r * p->stride;
        int64_t start = face - p->left;
        if (periodic) {
            start %= N;
            if (start < 0) start += N;
        }
        for (int64_t c = 0; c < C; ++c) {
            int64_t cell = start;
            for (int64_t k = 0; k < K; ++k, ++cell) {
                if (periodic && cell == N) cell = 0;
                int64_t at = cell;
                if (!periodic && (cell < 0 || cell >= N)) {
                    if (zeros) {
                        row[c * K + k] = 0;
                        continue;
                    }
                    at = cell < 0 ? 0 : N - 1;
                }
                T v = xc[c * N + at];
                if (p->front_nparam) {
                    const int64_t j = p->front_nparam == 1 ? 0 : c;
                    v = (v - mean[j]) / std[j];
                }
                row[c * K + k] = v;
            }
        }
    }
}

/* The tail on one output value of face `face` of column x (README.md, "Ops"): the gradient
 * product (-(k v)) ((u[f] - u[f-1]) / dx) with u the column's raw channel 0, then the tail
 * activation (the scalar reference: the kernels give its bits). */
static T FN(tail)(const nnn_program *p, T v, const T *xc, int64_t ncells, int64_t face) {
    if (p->gradient) {
        const T *g = p->gradient;
        const T du = xc[face] - xc[face == 0 ? ncells - 1 : face - 1];
        v = (-(g[0] * v)) * (du / g[1]);
    }
    if (p->tail_act != NNN_ACT_IDENTITY) nnn_kernels_scalar.CAT(act, SFX)(p->tail_act, &v, 1);
    return v;
}

static void FN(scatter)(const nnn_program *p, const T *b, const T *x, int64_t ncells, int64_t g0, int64_t nr, T *y) {
    const int64_t R = FN(faces)(p, ncells), O = p->n_out, width = O * R + (p->frame ? 2 : 0);
    const int front = p->frame != 0, periodic = p->boundary == NNN_BOUNDARY_PERIODIC;
    for (int64_t r = 0; r < nr; ++r) {
        const int64_t col = (g0 + r) / R, j = (g0 + r) % R;
        const T *xc = x + col * p->channels * ncells;
        for (int64_t o = 0; o < O; ++o)
            y[col * width + front + o * R + j] = FN(tail)(p, b[r * p->stride + o], xc, ncells, j + !periodic);
    }
}

/* The frame of columns begin..end-1: the surface value (input 1, NULL when the surface is
 * zero) first, a zero lid last. */
static void FN(frame)(const nnn_program *p, const T *surface, int64_t width, T *y, int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
        T first = p->frame == 1 + NNN_SURFACE_INPUT ? surface[c] : 0, last = 0;
        if (p->tail_act != NNN_ACT_IDENTITY) {
            nnn_kernels_scalar.CAT(act, SFX)(p->tail_act, &first, 1);
            nnn_kernels_scalar.CAT(act, SFX)(p->tail_act, &last, 1);
        }
        y[c * width] = first;
        y[c * width + width - 1] = last;
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

/* The steps over nr rows: the first reads rows of stride ld at `in`, which is a itself or,
 * when that step is a dense layer, the caller's input (read in place, never written); the
 * others work in a and b. Returns the buffer holding the result. */
static T *FN(steps)(const nnn_program *p, const T *in, int64_t ld, T *a, T *b, int64_t nr) {
    for (int k = 0; k < p->nsteps; ++k) {
        const nnn_step *s = &p->steps[k];
        if (s->kind == NNN_OP_DENSE) {
            p->kernels->CAT(dense, SFX)(s->w, s->b, s->n_in, s->n_pad, s->act, k ? a : in, k ? p->stride : ld, b,
                                        p->stride, nr);
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

static void FN(run)(const nnn_program *p, T *a, T *b, int64_t ncells, const T *const *x, T *y, int64_t begin,
                    int64_t end) {
    if (p->window) {
        const int64_t R = FN(faces)(p, ncells);
        for (int64_t g = begin * R; g < end * R; g += NNN_ROWS) {
            const int64_t nr = end * R - g < NNN_ROWS ? end * R - g : NNN_ROWS;
            FN(gather)(p, x[0], ncells, g, nr, a);
            FN(scatter)(p, FN(steps)(p, a, p->stride, a, b, nr), x[0], ncells, g, nr, y);
        }
        if (p->frame) FN(frame)(p, p->ninputs > 1 ? x[1] : NULL, p->n_out * R + 2, y, begin, end);
        return;
    }
    const int front = p->frame != 0, in_place = p->steps[0].kind == NNN_OP_DENSE;
    const int64_t width = p->n_out + 2 * front;
    for (int64_t c = begin; c < end; c += NNN_ROWS) {
        const int64_t nr = end - c < NNN_ROWS ? end - c : NNN_ROWS;
        const T *xc = x[0] + c * p->n_in;
        if (!in_place) /* a normaliser first: it works in place, so on a copy */
            for (int64_t r = 0; r < nr; ++r) memcpy(a + r * p->stride, xc + r * p->n_in, (size_t)p->n_in * sizeof(T));
        const T *res = in_place ? FN(steps)(p, xc, p->n_in, a, b, nr) : FN(steps)(p, a, p->stride, a, b, nr);
        for (int64_t r = 0; r < nr; ++r) {
            T *yc = y + (c + r) * width + front;
            memcpy(yc, res + r * p->stride, (size_t)p->n_out * sizeof(T));
            if (p->tail_act != NNN_ACT_IDENTITY) nnn_kernels_scalar.CAT(act, SFX)(p->tail_act, yc, p->n_out);
        }
    }
    if (p->frame) FN(frame)(p, p->ninputs > 1 ? x[1] : NULL, width, y, begin, end);
}

#undef FN
#undef CAT
#undef CAT_
