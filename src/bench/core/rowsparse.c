/* Row-sparse Adagrad with momentum for one item table, in one pass over the used rows.
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
 * Returns the number of distinct rows, or -1 (nothing changed) when an index is out of
 * [0, n_rows).
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

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
    const float neg_lr = -lr;
    for (int64_t i = 0; i < u; ++i) {
        const int64_t r = rows[i];
        slot[r] = -1;
        const float *g = work + i * d;
        float *p = param + r * d;
        float *a = acc + r * d;
        if (mom != NULL) {
            float *m = mom + r * d;
            for (int64_t j = 0; j < d; ++j) {
                const float aj = a[j] + g[j] * g[j];
                a[j] = aj;
                const float step = (g[j] / sqrtf(aj + eps)) * neg_lr;
                const float mj = m[j] * momentum + step;
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
    return u;
}
