/* The training step's compiled kernels: Adagrad with momentum, as the row-sparse update
 * of an item table in one pass over the used rows (adagrad_rows) and the update of all
 * the dense tensors at once (adagrad_dense); the item rows the step reads (gather_rows);
 * the GRU layer's gates forward and backward (gru_gates_forward, gru_gates_backward); the
 * output bias of the sampled columns with the logQ shift (gather_bias); the cross-entropy
 * and BPR-max losses with their gradients (ce_grad, bpr_max_grad); the output layer's
 * large matrix products split between threads (gemm_split). Each replaces a run of small
 * PyTorch operators whose per-operator cost, not their arithmetic, dominated the step at
 * small batches.
 *
 * The PyTorch form of the same update (optim.py, IndexedAdagradM._rows_step) needs a
 * sort for the deduplication, a zero-filled buffer, a scatter-add, gathers and scatters
 * of the accumulator and momentum rows and a dozen element-wise kernels: at batch 32 it
 * was the largest phase of the training step. Here a slot map (one int per table row,
 * -1 = unused; left all -1 on return) sums repeated rows in index order, as
 * index_add_ does, and each used row is then updated in place. The arithmetic is the
 * same operation by operation, in portable C (no FMA contraction, correctly rounded
 * sqrtf); torch's vectorised kernels may round twice differently (here its addcmul
 * fuses the multiply-add and its sqrt is within 1 ulp of the correctly rounded one), so
 * the two agree to float rounding, which tests/test_native.py holds them to.
 *
 * The dense form replaces six foreach kernels per step, each of which loops over the
 * GRU's tensors on the CPU, with one pass over all of them.
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Parallel loops: built with -fopenmp only where the OpenMP runtime torch loaded is the one
 * this compiler links (native.py), so they share torch's thread pool and its thread count
 * (torch.set_num_threads); otherwise the pragmas are ignored and every loop runs serially.
 * Work is split by rows (or blocks of elements) that one thread owns alone, and every sum
 * runs in a fixed order, so results do not depend on the number of threads. Loops below
 * PAR_MIN elements (a bias table's rows, test-sized inputs) stay serial; the threshold
 * is a round figure, not a measured optimum. */
#define PAR_MIN 16384

/* Rows of an item table are read in the order of the step's sampled items: scattered
 * over tens of megabytes, so each row costs a trip to memory that the hardware prefetcher
 * cannot foresee. Asking for the row a few ahead while updating (or copying) this one
 * overlaps those trips: the training step at 0.94-0.95x of its time at 32-64 x 100
 * (interleaved A/B); 3, 6 and 12 rows ahead measured the same. */
#define PREFETCH_AHEAD 6

static inline void prefetch_row(const float *row, int64_t d, int for_write)
{
    const char *a = (const char *)row;
    for (int64_t b = 0; b < d * (int64_t)sizeof(float); b += 64) {
        if (for_write)
            __builtin_prefetch(a + b, 1, 3);
        else
            __builtin_prefetch(a + b, 0, 3);
    }
}

/* acc += g^2; step = (g / sqrt(acc + eps)) * -lr; with momentum mom = mom * mu + step,
 * and the parameter moves by mom (else by step). The order of torch's ops in optim.py. */
static inline void update(float *p, float *a, float *m, const float *g, int64_t d,
                          float neg_lr, float eps, float momentum)
{
    if (m != NULL) {
        for (int64_t j = 0; j < d; ++j) {
            const float aj = a[j] + g[j] * g[j];
            a[j] = aj;
            const float mj = m[j] * momentum + (g[j] / sqrtf(aj + eps)) * neg_lr;
            m[j] = mj;
            p[j] += mj;
        }
    } else {
        for (int64_t j = 0; j < d; ++j) {
            const float aj = a[j] + g[j] * g[j];
            a[j] = aj;
            p[j] += (g[j] / sqrtf(aj + eps)) * neg_lr;
        }
    }
}

/* All the dense tensors of the step (the GRU's weights and biases) in one parallel pass:
 * k tensors of n[t] elements, split into blocks of 4096 that one thread each updates
 * (mom: NULL without momentum). One call instead of one per tensor: each call and each
 * parallel region costs microseconds, the whole update of a 100-unit layer not many more. */
void adagrad_dense(int64_t k, float *const *param, float *const *acc, float *const *mom,
                   const float *const *grad, const int64_t *n, float lr, float eps,
                   float momentum)
{
    const int64_t block = 4096;
    int64_t total = 0, n_blocks = 0;
    for (int64_t t = 0; t < k; ++t) {
        total += n[t];
        n_blocks += (n[t] + block - 1) / block;
    }
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
    for (int64_t b = 0; b < n_blocks; ++b) {
        int64_t t = 0, first = b; /* block b is block `first` of tensor t */
        while (first >= (n[t] + block - 1) / block) {
            first -= (n[t] + block - 1) / block;
            ++t;
        }
        const int64_t a = first * block, len = n[t] - a < block ? n[t] - a : block;
        update(param[t] + a, acc[t] + a, mom != NULL ? mom[t] + a : NULL, grad[t] + a, len,
               -lr, eps, momentum);
    }
}

/* Returns the number of distinct rows, or -1 (nothing changed) when an index is out of
 * [0, n_rows). A row used once is read from its gradient row where it lies (src[u] = k);
 * only a repeated row is summed into work (src[u] = -1), starting from 0.0f + g, as
 * index_add_ onto zeros does. */
int64_t adagrad_rows(float *param, float *acc, float *mom, int32_t *slot, int64_t n_rows,
                     const int64_t *idx, const float *grad, int64_t n, int64_t d,
                     float *work, int64_t *rows, int64_t *src, float lr, float eps,
                     float momentum)
{
    int64_t u = 0;
    for (int64_t k = 0; k < n; ++k) {
        int64_t r = idx[k];
        if (r < 0 || r >= n_rows) {
            for (int64_t i = 0; i < u; ++i) slot[rows[i]] = -1;
            return -1;
        }
        if (slot[r] < 0) {
            slot[r] = (int32_t)u;
            rows[u] = r;
            src[u] = k;
            ++u;
            continue;
        }
        const int64_t i = slot[r];
        float *w = work + i * d;
        const float *g = grad + k * d;
        if (src[i] >= 0) { /* second use of the row: start its sum */
            const float *g0 = grad + src[i] * d;
            for (int64_t j = 0; j < d; ++j) w[j] = (0.0f + g0[j]) + g[j];
            src[i] = -1;
        } else {
            for (int64_t j = 0; j < d; ++j) w[j] += g[j];
        }
    }
#pragma omp parallel for schedule(static) if (u * d >= PAR_MIN)
    for (int64_t i = 0; i < u; ++i) { /* distinct rows: each written by one thread */
        if (i + PREFETCH_AHEAD < u) {
            prefetch_row(param + rows[i + PREFETCH_AHEAD] * d, d, 1);
            prefetch_row(acc + rows[i + PREFETCH_AHEAD] * d, d, 1);
        }
        const int64_t r = rows[i];
        slot[r] = -1;
        const float *g = src[i] >= 0 ? grad + src[i] * d : work + i * d;
        update(param + r * d, acc + r * d, mom != NULL ? mom + r * d : NULL, g, d, -lr, eps,
               momentum);
    }
    return u;
}

/* The step's three large matrix products (output scores, the gradient through them to
 * the hidden state, the gradient of the item rows) by a single-threaded BLAS sgemm (the
 * OpenBLAS that numpy ships, found by native.py), split into one slice of rows or columns
 * per thread of torch's OpenMP pool. torch's own two-thread product at these shapes (tens
 * of rows against thousands of sampled items) ran 1.2-1.5x slower than two independent
 * halves. The BLAS picks its kernels by the slice's size, so the last bits of a result
 * may change with the thread count (as with torch's own product); the kernels above stay
 * independent of it. Row-major; ta/tb: 'N' or 'T' as in cblas. */
typedef void (*sgemm_fn)(int order, int ta, int tb, int64_t M, int64_t N, int64_t K,
                         float alpha, const float *A, int64_t lda, const float *B,
                         int64_t ldb, float beta, float *C, int64_t ldc);
typedef int (*threads_fn)(int);
static sgemm_fn blas_sgemm;
static threads_fn blas_threads_local;

void set_blas(void *sgemm, void *threads_local)
{
    blas_sgemm = (sgemm_fn)sgemm;
    blas_threads_local = (threads_fn)threads_local;
}

#ifdef _OPENMP
#define THREAD_ID omp_get_thread_num()
#define N_THREADS omp_get_num_threads()
#define MAX_THREADS omp_get_max_threads()
#else
#define THREAD_ID 0
#define N_THREADS 1
#define MAX_THREADS 1
#endif
/* The narrowest slice worth a thread of its own (on many cores, fewer slices). */
#define MIN_SLICE 32

/* One product C (M x N) = op(A) op(B) (+ row_bias on every row where given), row-major. */
typedef struct {
    char ta, tb;
    int64_t M, N, K;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    const float *row_bias;
    float *C;
    int64_t ldc;
} gemm_spec;

/* How many slices of `side` for `threads` threads: one per thread, each at least
 * MIN_SLICE wide. */
static int64_t n_slices(int64_t side, int64_t threads)
{
    const int64_t most = side / MIN_SLICE > 1 ? side / MIN_SLICE : 1;
    return threads < most ? threads : most;
}

/* Slice t of nt of product g, split along M (split_n = 0) or N (split_n = 1), by the
 * single-threaded BLAS. */
static void gemm_slice(const gemm_spec *g, int split_n, int64_t t, int64_t nt)
{
    const int cta = g->ta == 'T' ? 112 : 111, ctb = g->tb == 'T' ? 112 : 111;
    const int64_t side = split_n ? g->N : g->M;
    const int64_t a = side * t / nt, b = side * (t + 1) / nt;
    const float *As = g->A, *Bs = g->B;
    float *Cs = g->C;
    int64_t Ms = g->M, Ns = g->N;
    if (split_n) {
        Bs = g->tb == 'T' ? g->B + a * g->ldb : g->B + a;
        Cs = g->C + a;
        Ns = b - a;
    } else {
        As = g->ta == 'T' ? g->A + a : g->A + a * g->lda;
        Cs = g->C + a * g->ldc;
        Ms = b - a;
    }
    if (g->row_bias != NULL) { /* C starts as the bias, and the product is added to it */
        const float *bias = split_n ? g->row_bias + a : g->row_bias;
        for (int64_t i = 0; i < Ms; ++i)
            memcpy(Cs + i * g->ldc, bias, (size_t)Ns * sizeof(float));
    }
    const float beta = g->row_bias != NULL ? 1.0f : 0.0f;
    if (Ms > 0 && Ns > 0)
        blas_sgemm(101, cta, ctb, Ms, Ns, g->K, 1.0f, As, g->lda, Bs, g->ldb, beta, Cs, g->ldc);
}

/* C (M x N) = op(A) op(B) (+ row_bias on every row where given), split along M
 * (split_n = 0) or N (split_n = 1), a slice per thread and at least MIN_SLICE wide.
 * Returns -1 without a BLAS. */
int64_t gemm_split(int split_n, char ta, char tb, int64_t M, int64_t N, int64_t K,
                   const float *A, int64_t lda, const float *B, int64_t ldb,
                   const float *row_bias, float *C, int64_t ldc)
{
    if (blas_sgemm == NULL) return -1;
    const gemm_spec g = {ta, tb, M, N, K, A, lda, B, ldb, row_bias, C, ldc};
    const int slices = (int)n_slices(split_n ? N : M, MAX_THREADS);
#pragma omp parallel num_threads(slices) if (slices > 1)
    {
        const int previous = blas_threads_local(1);
        gemm_slice(&g, split_n, THREAD_ID, N_THREADS);
        blas_threads_local(previous);
    }
    return 0;
}

/* Two independent products at once, as the GRU layer has them (its input- and
 * hidden-side products forward, its two weight gradients backward): half of the threads
 * on each, each product split along the longer side of its result among its half. At
 * 480 units a product of tens of rows split in two ran slower than two whole products
 * side by side: the training step 1.02-1.07x faster (interleaved A/B, 100 and 480 units).
 * With one thread, one after the other. Returns -1 without a BLAS. */
int64_t gemm_pair(const gemm_spec *g1, const gemm_spec *g2)
{
    if (blas_sgemm == NULL) return -1;
    const int threads = MAX_THREADS;
    if (threads < 2) {
        const int previous = blas_threads_local(1);
        gemm_slice(g1, g1->N > g1->M, 0, 1);
        gemm_slice(g2, g2->N > g2->M, 0, 1);
        blas_threads_local(previous);
        return 0;
    }
#pragma omp parallel num_threads(threads)
    {
        const int64_t t = THREAD_ID, nt = N_THREADS, half = nt / 2;
        const int second = t >= half;
        const gemm_spec *g = second ? g2 : g1;
        const int64_t group = second ? nt - half : half, rank = second ? t - half : t;
        const int split_n = g->N > g->M;
        const int64_t slices = n_slices(split_n ? g->N : g->M, group);
        if (rank < slices) {
            const int previous = blas_threads_local(1);
            gemm_slice(g, split_n, rank, slices);
            blas_threads_local(previous);
        }
    }
    return 0;
}

/* out = table[idx] (n rows of d), as index_select, in parallel and prefetching ahead.
 * Returns n, or -1 (nothing written) when an index is out of [0, n_rows). */
int64_t gather_rows(const float *table, int64_t n_rows, int64_t d, const int64_t *idx,
                    int64_t n, float *out)
{
    for (int64_t k = 0; k < n; ++k)
        if (idx[k] < 0 || idx[k] >= n_rows) return -1;
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN)
    for (int64_t k = 0; k < n; ++k) {
        if (k + PREFETCH_AHEAD < n) prefetch_row(table + idx[k + PREFETCH_AHEAD] * d, d, 0);
        memcpy(out + k * d, table + idx[k] * d, (size_t)d * sizeof(float));
    }
    return n;
}

/* out[j] = sum over the m rows of a[i][j], row by row: each thread owns a block of
 * columns and sums it, a chunk at a time, in a buffer of its own (no cache line of `out`
 * written by two threads), so every sum runs in the same order whatever the number of
 * threads. */
#define SUM_CHUNK 256
static void column_sums(const float *restrict a, int64_t m, int64_t c, float *restrict out,
                        int par)
{
#pragma omp parallel if (par)
    {
        const int64_t t = THREAD_ID, nt = N_THREADS;
        const int64_t j1 = c * (t + 1) / nt;
        for (int64_t c0 = c * t / nt; c0 < j1; c0 += SUM_CHUNK) {
            const int64_t w = j1 - c0 < SUM_CHUNK ? j1 - c0 : SUM_CHUNK;
            float acc[SUM_CHUNK] = {0.0f};
            for (int64_t i = 0; i < m; ++i)
                for (int64_t j = 0; j < w; ++j)
                    acc[j] += a[i * c + c0 + j];
            memcpy(out + c0, acc, (size_t)w * sizeof(float));
        }
    }
}

/* One row of the gates' backward (below); every array its own restrict pointer, which
 * the vectoriser needs to see that the six stores do not overlap the loads. */
static inline void gates_backward_row(const float *restrict dh, const float *restrict h,
                                      const float *restrict r_, const float *restrict z_,
                                      const float *restrict n_, const float *restrict ghn,
                                      float *restrict d_r, float *restrict d_z,
                                      float *restrict d_n, float *restrict dh_r,
                                      float *restrict dh_z, float *restrict dh_n, int64_t hs)
{
    for (int64_t j = 0; j < hs; ++j) {
        const float r = r_[j], z = z_[j], nj = n_[j];
        const float dnp = (dh[j] * (1.0f - z)) * (1.0f - nj * nj);
        const float dr = (dnp * ghn[j]) * (r * (1.0f - r));
        const float dz = (dh[j] * (h[j] - nj)) * (z * (1.0f - z));
        d_r[j] = dr;
        d_z[j] = dz;
        d_n[j] = dnp;
        dh_r[j] = dr;
        dh_z[j] = dz;
        dh_n[j] = dnp * r;
    }
}

/* Below this many gate elements the backward's two parallel passes cost more than they
 * save (two threads against one, vectorised: serial faster at 128 x 100 and 64 x 480,
 * parallel at 512 x 100 and 128 x 480, i.e. from 153,600 elements but not at 92,160). */
#define GATES_BACKWARD_PAR_MIN 131072

/* The GRU layer's backward through its gates (hand_derived.py), element-wise, for one
 * layer of m rows and hs units. gi holds [r | z | n] (the activated input-side gates),
 * gh the hidden-side pre-activations, of which the n part (ghn) is used; from dh
 * (already through the dropout mask) and the saved h it writes dgi = [dr | dz | dn']
 * and dgh = [dr | dz | dn' * r]. The operations and their order are those of the
 * PyTorch form there (seventeen kernels), so the two agree bit for bit. Where dbi and
 * dbh are given, also the bias gradients: the column sums of dgi and dgh, row by row. */
void gru_gates_backward(const float *restrict dh, const float *restrict h,
                        const float *restrict gi, const float *restrict gh,
                        float *restrict dgi, float *restrict dgh, float *restrict dbi,
                        float *restrict dbh, int64_t m, int64_t hs)
{
    const int par = m * hs * 3 >= GATES_BACKWARD_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < m; ++i) {
        const float *g = gi + i * 3 * hs;
        float *di = dgi + i * 3 * hs, *dg = dgh + i * 3 * hs;
        gates_backward_row(dh + i * hs, h + i * hs, g, g + hs, g + 2 * hs,
                           gh + i * 3 * hs + 2 * hs, di, di + hs, di + 2 * hs, dg, dg + hs,
                           dg + 2 * hs, hs);
    }
    if (dbi != NULL) {
        column_sums(dgi, m, 3 * hs, dbi, par);
        column_sums(dgh, m, 3 * hs, dbh, par);
    }
}

/* 2^k for an integral k in [-127, 127], built in the exponent bits (0 for k = -127);
 * memcpy is a bit cast the vectoriser accepts, unlike a union. */
static inline float pow2i(float k)
{
    const int32_t bits = ((int32_t)k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* exp(x) for the loss and gate kernels, in a form the compiler vectorises (no branches, no
 * libm call): x = k ln2 + r with |r| <= ln2/2, exp(r) by its Taylor polynomial to degree 6
 * (relative error below 2e-7, about one ulp), 2^k put into the exponent bits. The argument
 * is clamped to [-88, 88]: above, float exp would overflow; below about -87.7 (where float
 * exp goes subnormal) k = -127 puts all-zero exponent bits, so the result is 0, and a
 * softmax column far below the row's maximum gets exactly nothing, as when torch's exp
 * underflows. */
static inline float exp_poly(float x)
{
    x = x < -88.0f ? -88.0f : (x > 88.0f ? 88.0f : x); /* not fminf: it would not vectorise */
    const float kf = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest */
    const float r = (x - kf * 0.693145752f) - kf * 1.42860677e-6f;  /* ln2 in two parts */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * pow2i(kf);
}

/* expm1(x), with exp_poly's reduction: for |x| <= ln2/2 (k = 0) the polynomial without
 * its constant term, so small arguments keep their relative precision (tanh below). */
static inline float expm1_poly(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float kf = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
    const float r = (x - kf * 0.693145752f) - kf * 1.42860677e-6f;
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r; /* exp(r) - 1 */
    const float scale = pow2i(kf);
    return scale * q + (scale - 1.0f);
}

static inline float sigmoid_poly(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

static inline float tanh_poly(float x)
{
    const float e = expm1_poly(2.0f * x);
    return e / (e + 2.0f);
}

/* The GRU layer's forward through its gates for m rows and hs units: gi and gh hold the
 * input- and hidden-side pre-activations [r | z | n] (biases added); r = sigmoid(gi_r +
 * gh_r), z likewise, n = tanh(gi_n + r gh_n), out = n + z (h - n). gi is overwritten with
 * the activated [r | z | n], which the backward reads. sigmoid and tanh come from the exp
 * polynomial above (a few ulp from torch's), in two vectorised passes per row instead of
 * eight operators. */
void gru_gates_forward(float *restrict gi, const float *restrict gh, const float *restrict h,
                       float *restrict out, int64_t m, int64_t hs)
{
#pragma omp parallel for schedule(static) if (m * hs * 3 >= PAR_MIN)
    for (int64_t i = 0; i < m; ++i) {
        float *rz = gi + i * 3 * hs, *n = rz + 2 * hs, *o = out + i * hs;
        const float *gh_i = gh + i * 3 * hs, *h_i = h + i * hs;
        for (int64_t j = 0; j < 2 * hs; ++j)
            rz[j] = sigmoid_poly(rz[j] + gh_i[j]);
        for (int64_t j = 0; j < hs; ++j) {
            const float nj = tanh_poly(n[j] + rz[j] * gh_i[2 * hs + j]);
            n[j] = nj;
            o[j] = nj + rz[hs + j] * (h_i[j] - nj);
        }
    }
}

/* The output bias of the scored columns, shifted for logQ: out[k] = by[cols[k]] -
 * shift[cols[k]], with shift = shift_t for the first m columns (the targets) and shift_n
 * for the rest (the samples); no shift where shift_t is NULL. Returns -1 (out unset
 * beyond that point) when a column index is out of [0, n_rows), else 0. */
int64_t gather_bias(const float *by, const float *shift_t, const float *shift_n,
                    const int64_t *cols, int64_t m, int64_t c, int64_t n_rows, float *out)
{
    for (int64_t k = 0; k < c; ++k) {
        const int64_t r = cols[k];
        if (r < 0 || r >= n_rows)
            return -1;
        out[k] = shift_t == NULL ? by[r] : by[r] - (k < m ? shift_t[r] : shift_n[r]);
    }
    return 0;
}

#define LANES 16 /* independent partial sums: a reduction the compiler can vectorise */

/* The largest of a[0..c), over LANES independent maxima (so that it vectorises). */
static inline float row_max(const float *restrict a, int64_t c)
{
    const int64_t c16 = c - c % LANES;
    float mx[LANES], top = -INFINITY;
    for (int l = 0; l < LANES; ++l)
        mx[l] = -INFINITY;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l)
            mx[l] = a[k + l] > mx[l] ? a[k + l] : mx[l];
    for (int64_t k = c16; k < c; ++k)
        top = a[k] > top ? a[k] : top;
    for (int l = 0; l < LANES; ++l)
        top = mx[l] > top ? mx[l] : top;
    return top;
}

/* a[k] = exp(a[k] - top) for k in [0, c); returns their sum (over LANES partial sums, so
 * that it vectorises), the softmax's denominator. */
static inline float exp_and_sum(float *restrict a, int64_t c, float top)
{
    const int64_t c16 = c - c % LANES;
    float part[LANES] = {0}, sum_e = 0.0f;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l) {
            const float e = exp_poly(a[k + l] - top);
            a[k + l] = e;
            part[l] += e;
        }
    for (int64_t k = c16; k < c; ++k) {
        a[k] = exp_poly(a[k] - top);
        sum_e += a[k];
    }
    for (int l = 0; l < LANES; ++l)
        sum_e += part[l];
    return sum_e;
}

/* Returned by the loss kernels where a scratch buffer could not be allocated: both losses
 * are sums of non-negative terms, so no loss is negative (a NaN stays a NaN: divergence). */
#define LOSS_NO_MEMORY -1.0

/* The loss kernels' common end: the summed loss (rows in order; LOSS_NO_MEMORY where a
 * buffer could not be allocated) and, where dbias is given, the column sums of the
 * gradient O (rows in order for each column, columns split between threads). Frees
 * row_loss. */
static double finish_loss(const float *O, int64_t m, int64_t c, double *row_loss, int failed,
                          float *restrict dbias)
{
    double total = failed ? LOSS_NO_MEMORY : 0.0;
    for (int64_t i = 0; i < m && !failed; ++i)
        total += row_loss[i];
    free(row_loss);
    if (dbias != NULL)
        column_sums(O, m, c, dbias, m * c >= PAR_MIN);
    return total;
}

/* BPR-max with the ELU final activation (hand_derived.bpr_max_grad): for each of the m
 * rows of the scores O (m x c, target of row i in column i) the loss, and the gradient
 * scale * dLoss/dO. With a = elu(o), sm the softmax of a over the
 * non-target columns, s = sigmoid(a_t - a), S = sum(s sm), Q = sum(a^2 sm):
 *   loss = -log(S + 1e-24) + bpreg Q
 *   dL/da_k = sm_k ((S - s_k^2) / (S + 1e-24) + bpreg (a_k^2 + 2 a_k - Q))   (k != t)
 *   dL/da_t = (sum(s^2 sm) - S) / (S + 1e-24)
 * then times d elu/do (1 above zero, a + alpha below), written over O; where dbias is
 * given, its column sums (the output bias's gradient). Five passes over each row, which
 * stays in L1 with the row buffers e and s (c floats each, one pair per thread), instead
 * of some 24 passes over the whole matrix; rows split between threads. Returns the summed
 * loss. bpr_max_row does one row i (target in column i). */
static double bpr_max_row(float *restrict a, float *restrict e, float *restrict s, int64_t i,
                          int64_t c, float bpreg, float alpha, float scale)
{
    const int64_t c16 = c - c % LANES;
    for (int64_t k = 0; k < c; ++k)
        a[k] = (alpha > 0.0f && a[k] <= 0.0f) ? alpha * (exp_poly(a[k]) - 1.0f) : a[k];
    const float at = a[i];
    a[i] = -INFINITY;
    const float top = row_max(a, c);
    a[i] = at;
    for (int64_t k = 0; k < c; ++k)
        e[k] = exp_poly(a[k] - top);
    e[i] = 0.0f; /* the softmax is over the other columns */
    float part[LANES] = {0}, sum_e = 0.0f;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l)
            part[l] += e[k + l];
    for (int64_t k = c16; k < c; ++k)
        sum_e += e[k];
    for (int l = 0; l < LANES; ++l)
        sum_e += part[l];
    const float inv = 1.0f / sum_e;
    for (int64_t k = 0; k < c; ++k) {
        e[k] *= inv;                                /* sm */
        s[k] = 1.0f / (1.0f + exp_poly(a[k] - at)); /* sigmoid(a_t - a_k) */
    }
    float pS[LANES] = {0}, pQ[LANES] = {0}, pT[LANES] = {0}, S = 0.0f, Q = 0.0f, T = 0.0f;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l) {
            const float sm = e[k + l], sk = s[k + l], ak = a[k + l];
            pS[l] += sk * sm;
            pQ[l] += ak * ak * sm;
            pT[l] += sk * sk * sm;
        }
    for (int64_t k = c16; k < c; ++k) {
        S += s[k] * e[k];
        Q += a[k] * a[k] * e[k];
        T += s[k] * s[k] * e[k];
    }
    for (int l = 0; l < LANES; ++l) {
        S += pS[l];
        Q += pQ[l];
        T += pT[l];
    }
    const float denom = S + 1e-24f;
    const double loss = -log((double)denom) + (double)bpreg * Q;
    const float t_grad = (T - S) / denom;
    for (int64_t k = 0; k < c; ++k) {
        const float ak = a[k], sk = s[k];
        const float d = (alpha > 0.0f && ak <= 0.0f) ? ak + alpha : 1.0f;
        a[k] = e[k] * ((S - sk * sk) / denom + bpreg * (ak * ak + 2.0f * ak - Q)) * (d * scale);
    }
    const float d_t = (alpha > 0.0f && at <= 0.0f) ? at + alpha : 1.0f;
    a[i] = t_grad * (d_t * scale);
    return loss;
}

double bpr_max_grad(float *O, int64_t m, int64_t c, float bpreg, float alpha, float scale,
                    float *restrict dbias)
{
    double *row_loss = malloc((size_t)m * sizeof(double));
    if (row_loss == NULL)
        return LOSS_NO_MEMORY;
    int failed = 0;
#pragma omp parallel if (m * c >= PAR_MIN) reduction(| : failed)
    {
        float *buf = malloc(2 * (size_t)c * sizeof(float)); /* e and s of this thread */
        failed |= buf == NULL;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < m; ++i)
            if (buf != NULL)
                row_loss[i] = bpr_max_row(O + i * c, buf, buf + c, i, c, bpreg, alpha, scale);
        free(buf);
    }
    return finish_loss(O, m, c, row_loss, failed, dbias);
}

/* Cross-entropy on the diagonal in the reference's form -log(p_t + 1e-24)
 * (hand_derived.ce_grad): for each of the m rows of the scores O (m x c, target of row i
 * in column i, logQ already in the bias) the softmax P, the loss and the gradient
 * scale * w (P - onehot), w = p_t / (p_t + 1e-24) (1 unless p_t underflows), written over
 * O; where dbias is given, its column sums (the output bias's gradient). Three passes
 * over each row while it sits in L1, instead of some ten operators over the matrix;
 * rows split between threads. Returns the summed loss. ce_row does one row i. */
static double ce_row(float *restrict a, int64_t i, int64_t c, float scale)
{
    const float sum_e = exp_and_sum(a, c, row_max(a, c));
    const float inv = 1.0f / sum_e;
    const float p = a[i] * inv;
    const double loss = -log((double)(p + 1e-24f));
    const float w = p / (p + 1e-24f) * scale;
    for (int64_t k = 0; k < c; ++k)
        a[k] = (a[k] * inv) * w;
    a[i] = (p - 1.0f) * w;
    return loss;
}

double ce_grad(float *O, int64_t m, int64_t c, float scale, float *restrict dbias)
{
    double *row_loss = malloc((size_t)m * sizeof(double));
    if (row_loss == NULL)
        return LOSS_NO_MEMORY;
#pragma omp parallel for schedule(static) if (m * c >= PAR_MIN)
    for (int64_t i = 0; i < m; ++i)
        row_loss[i] = ce_row(O + i * c, i, c, scale);
    return finish_loss(O, m, c, row_loss, 0, dbias);
}

/* Returned by softmax_ce_grad where a target is outside [0, c). */
#define LOSS_BAD_TARGET -2.0

/* One row of softmax_ce_grad: the row's loss (log of the sum of exp(a - max), plus the
 * max, minus the target's score), a turned into scale * (softmax - one-hot at t). */
static double softmax_ce_row(float *restrict a, int64_t t, int64_t c, float scale)
{
    const float top = row_max(a, c), target = a[t];
    const float sum_e = exp_and_sum(a, c, top);
    const float inv = 1.0f / sum_e;
    for (int64_t k = 0; k < c; ++k)
        a[k] = (a[k] * inv) * scale;
    a[t] -= scale;
    return log((double)sum_e) + (double)top - (double)target;
}

/* Softmax cross-entropy over all c columns of the m x c scores O, row i's target column
 * targets[i] (core/full_softmax.py, the neural peers' output layer): returns the summed
 * loss and writes scale * dLoss/dO over O, in three passes over each row (max; exp and
 * sum; normalise) instead of the eight of the PyTorch form (amax, subtract, exp, sum,
 * divide, the target's gather, its one-hot subtraction, the scaling). Rows in parallel,
 * summed in order; LOSS_BAD_TARGET (O unchanged) where a target is outside [0, c). */
double softmax_ce_grad(float *O, int64_t m, int64_t c, const int64_t *targets, float scale)
{
    for (int64_t i = 0; i < m; ++i)
        if (targets[i] < 0 || targets[i] >= c)
            return LOSS_BAD_TARGET;
    double *row_loss = malloc((size_t)(m > 0 ? m : 1) * sizeof(double));
    if (row_loss == NULL)
        return LOSS_NO_MEMORY;
#pragma omp parallel for schedule(static) if (m * c >= PAR_MIN)
    for (int64_t i = 0; i < m; ++i)
        row_loss[i] = softmax_ce_row(O + i * c, targets[i], c, scale);
    return finish_loss(O, m, c, row_loss, 0, NULL);
}

/* The sum of a[0..c), over LANES independent partial sums (so that it vectorises). */
static inline float row_sum(const float *restrict a, int64_t c)
{
    const int64_t c16 = c - c % LANES;
    float acc[LANES], total = 0.0f;
    for (int l = 0; l < LANES; ++l)
        acc[l] = 0.0f;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l)
            acc[l] += a[k + l];
    for (int l = 0; l < LANES; ++l)
        total += acc[l];
    for (int64_t k = c16; k < c; ++k)
        total += a[k];
    return total;
}

/* The dot product of a[0..c) and b[0..c), summed as row_sum sums. */
static inline float row_dot(const float *restrict a, const float *restrict b, int64_t c)
{
    const int64_t c16 = c - c % LANES;
    float acc[LANES], total = 0.0f;
    for (int l = 0; l < LANES; ++l)
        acc[l] = 0.0f;
    for (int64_t k = 0; k < c16; k += LANES)
        for (int l = 0; l < LANES; ++l)
            acc[l] += a[k + l] * b[k + l];
    for (int l = 0; l < LANES; ++l)
        total += acc[l];
    for (int64_t k = c16; k < c; ++k)
        total += a[k] * b[k];
    return total;
}

/* SGNN-HN's normalisation of n rows of d (peers/sgnnhn.py, _CentredUnit): y = c / |c| for
 * c = x - mean(x), and each row's norm |c| for the backward. Over the whole item table
 * every step, where PyTorch's operators make five passes over memory; here each row is
 * read once and written once while it sits in the L1 cache (y holds c between the two
 * loops). Sums over LANES partial sums: equal to torch's forms to float rounding. */
void centred_unit_forward(const float *x, int64_t n, int64_t d, float *y, float *norm)
{
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN)
    for (int64_t i = 0; i < n; ++i) {
        const float *restrict xi = x + i * d;
        float *restrict yi = y + i * d;
        const float mean = row_sum(xi, d) / (float)d;
        for (int64_t j = 0; j < d; ++j)
            yi[j] = xi[j] - mean;
        const float nrm = sqrtf(row_dot(yi, yi, d));
        norm[i] = nrm;
        for (int64_t j = 0; j < d; ++j)
            yi[j] /= nrm;
    }
}

/* Its backward: dx = c - mean(c) for c = (dy - y (y . dy)) / norm, row by row (dx holds c
 * until its mean is taken), one read of y and dy and one write of dx per row. */
void centred_unit_backward(const float *y, const float *norm, const float *dy, int64_t n,
                           int64_t d, float *dx)
{
#pragma omp parallel for schedule(static) if (n * d >= PAR_MIN)
    for (int64_t i = 0; i < n; ++i) {
        const float *restrict yi = y + i * d, *restrict gi = dy + i * d;
        float *restrict o = dx + i * d;
        const float dot = row_dot(yi, gi, d), nrm = norm[i];
        for (int64_t j = 0; j < d; ++j)
            o[j] = (gi[j] - yi[j] * dot) / nrm;
        const float mean = row_sum(o, d) / (float)d;
        for (int64_t j = 0; j < d; ++j)
            o[j] -= mean;
    }
}
