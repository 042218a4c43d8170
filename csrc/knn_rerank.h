// Exact float64 distance keys of kNN candidate pairs (the re-ranking after faiss).
#pragma once
#include "common.h"

namespace d2 {

// keys[r, t] for query row rows[r] and candidate cand[r, t] (-1: key 0, ignored later):
// squared L2 of the float32 rows in float64, or 1 - dot for unit rows (cosine).
inline void pair_keys(idx_t d, const float* X, idx_t m, idx_t c, const idx_t* rows,
                      const idx_t* cand, bool cosine, double* keys) {
#pragma omp parallel for schedule(static) if (m * c * d > 64 * kParallelMin)
    for (idx_t r = 0; r < m; ++r) {
        const float* xi = X + rows[r] * d;
        for (idx_t t = 0; t < c; ++t) {
            const idx_t j = cand[r * c + t];
            double acc = 0.0;
            if (j >= 0) {
                const float* xj = X + j * d;
                if (cosine) {
                    for (idx_t q = 0; q < d; ++q) acc += static_cast<double>(xi[q]) * xj[q];
                    acc = 1.0 - acc;
                } else {
                    for (idx_t q = 0; q < d; ++q) {
                        const double diff = static_cast<double>(xj[q]) - xi[q];
                        acc += diff * diff;
                    }
                }
            }
            keys[r * c + t] = acc;
        }
    }
}

}  // namespace d2
