/* The training step's compiled kernels: Adagrad with momentum, as the row-sparse update
 * of an item table in one pass over the used rows (adagrad_rows) and the dense update of
 * one tensor (adagrad_dense), and the GRU gates' backward (gru_gates_backward, below).
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
 * GRU's tensors on the CPU, with one pass per tensor.
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

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

void adagrad_dense(float *param, float *acc, float *mom, const float *grad, int64_t n,
                   float lr, float eps, float momentum)
{
    update(param, acc, mom, grad, n, -lr, eps, momentum);
}

/* Returns the number of distinct rows, or -1 (nothing changed) when an index is out of
 * [0, n_rows). */
int64_t adagrad_rows(float *param, float *acc, float *mom, int32_t *slot, int64_t n_rows,
                     const int64_t *idx, const float *grad, int64_t n, int64_t d,
                     float *work, int64_t *rows, float lr, float eps, float momentum)
{
    int64_t u = 0;
    for (int64_t k = 0; k < n; ++k) {
        int64_t r = idx[k];
        if (r < 0 || r >= n_rows) {
            for (int64_t i = 0; i < u; ++i) slot[rows[i]] = -1;
            return -1;
        }
        const float *g = grad + k * d;
        float *w;
        if (slot[r] < 0) {
            slot[r] = (int32_t)u;
            rows[u] = r;
            w = work + u * d;
            for (int64_t j = 0; j < d; ++j) w[j] = 0.0f + g[j];
            ++u;
        } else {
            w = work + (int64_t)slot[r] * d;
            for (int64_t j = 0; j < d; ++j) w[j] += g[j];
        }
    }
    for (int64_t i = 0; i < u; ++i) {
        const int64_t r = rows[i];
        slot[r] = -1;
        update(param + r * d, acc + r * d, mom != NULL ? mom + r * d : NULL, work + i * d, d,
               -lr, eps, momentum);
    }
    return u;
}

/* The GRU layer's backward through its gates (hand_derived.py), element-wise, for one
 * layer of m rows and hs units. gi holds [r | z | n] (the activated input-side gates),
 * gh the hidden-side pre-activations, of which the n part (ghn) is used; from dh
 * (already through the dropout mask) and the saved h it writes dgi = [dr | dz | dn']
 * and dgh = [dr | dz | dn' * r]. The operations and their order are those of the
 * PyTorch form there (seventeen kernels), so the two agree bit for bit. */
void gru_gates_backward(const float *dh, const float *h, const float *gi, const float *gh,
                        float *dgi, float *dgh, int64_t m, int64_t hs)
{
    for (int64_t i = 0; i < m; ++i) {
        const float *dh_i = dh + i * hs, *h_i = h + i * hs;
        const float *r_i = gi + i * 3 * hs, *z_i = r_i + hs, *n_i = r_i + 2 * hs;
        const float *ghn_i = gh + i * 3 * hs + 2 * hs;
        float *di = dgi + i * 3 * hs, *dg = dgh + i * 3 * hs;
        for (int64_t j = 0; j < hs; ++j) {
            const float r = r_i[j], z = z_i[j], nj = n_i[j];
            const float dnp = (dh_i[j] * (1.0f - z)) * (1.0f - nj * nj);
            const float dr = (dnp * ghn_i[j]) * (r * (1.0f - r));
            const float dz = (dh_i[j] * (h_i[j] - nj)) * (z * (1.0f - z));
            di[j] = dr;
            di[hs + j] = dz;
            di[2 * hs + j] = dnp;
            dg[j] = dr;
            dg[hs + j] = dz;
            dg[2 * hs + j] = dnp * r;
        }
    }
}
