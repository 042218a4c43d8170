// Exact float64 distance keys of kNN candidate pairs (the re-ranking after faiss).
#pragma once
#include "common.h"

namespace d2 {

// Sum over q < d of term(q) in float64, in four interleaved partial sums (a serial
// sum waits for each add's latency: four chains run about three times faster).
template <class Term>
inline double sum4(idx_t d, Term term) {
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    idx_t q = 0;
    for (; q + 4 <= d; q += 4)
        a0 += term(q), a1 += term(q + 1), a2 += term(q + 2), a3 += term(q + 3);
    for (; q < d; ++q) a0 += term(q);
    return (a0 + a1) + (a2 + a3);
}

// keys[r, t] for query row rows[r] and candidate cand[r, t] (-1: key 0, ignored later):
// squared L2 of the float32 rows in float64, or 1 - dot for unit rows (cosine). The
// next query's candidate rows are prefetched: the candidates are scattered over X.
inline void pair_keys(idx_t d, const float* X, idx_t m, idx_t c, const idx_t* rows,
                      const idx_t* cand, bool cosine, double* keys) {
#pragma omp parallel for schedule(static) if (m * c * d > 64 * kParallelMin)
    for (idx_t r = 0; r < m; ++r) {
        const float* xi = X + rows[r] * d;
        if (r + 1 < m)  // the next query's rows arrive while this one's are summed
            for (idx_t t = 0; t < c; ++t) {
                const idx_t j = cand[(r + 1) * c + t];
                if (j >= 0)
                    for (idx_t q = 0; q < d; q += 16) D2_PREFETCH(X + j * d + q);
            }
        for (idx_t t = 0; t < c; ++t) {
            const idx_t j = cand[r * c + t];
            double acc = 0.0;
            if (j >= 0) {
                const float* xj = X + j * d;
                if (cosine) {
                    acc = 1.0 - sum4(d, [&](idx_t q) {
                        return static_cast<double>(xi[q]) * xj[q];
                    });
                } else {
                    acc = sum4(d, [&](idx_t q) {
                        const double diff = static_cast<double>(xj[q]) - xi[q];
                        return diff * diff;
                    });
                }
            }
            keys[r * c + t] = acc;
        }
    }
}

}  // namespace d2
