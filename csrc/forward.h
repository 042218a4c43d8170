// Forward message passing (SPEC 3).
#pragma once
#include <cmath>

#include "common.h"

namespace d2 {

constexpr idx_t kPrefetchAhead = 32;  // edges

// acc_i = sum over row i (CSR order, float64) of exp(-gamma_f * d) * s_j.
// nnz bounds the prefetch look-ahead (edges of later rows).
D2_HD double forward_row(const idx_t* indptr, const nbr_t* indices, const float* distances,
                         const double* scores, double gamma_f, idx_t nnz, idx_t i) {
    double acc = 0.0;
    for (idx_t p = indptr[i]; p < indptr[i + 1]; ++p) {
        if (p + kPrefetchAhead < nnz) D2_PREFETCH(scores + indices[p + kPrefetchAhead]);
        acc += std::exp(-gamma_f * static_cast<double>(distances[p])) * scores[indices[p]];
    }
    return acc;
}

// out_i = s_i + acc_i (sum) or s_i * acc_i (product), for all n rows in parallel, in
// blocks of rows (poll_rows) with stop() polled between them. Returns false if stopped.
template <class Stop = NeverStop>
bool forward(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
             const double* scores, double gamma_f, bool product, double* out, Stop stop = {}) {
    return for_row_blocks(n, poll_rows(n, indptr[n]), stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(dynamic, 4096) if (n > kParallelMin)
        for (idx_t i = lo; i < hi; ++i) {
            double acc = forward_row(indptr, indices, distances, scores, gamma_f, indptr[n], i);
            out[i] = product ? scores[i] * acc : scores[i] + acc;
        }
    });
}

}  // namespace d2
