// Per-node bodies of the rounds selection (SPEC 4, "Parallel exact selection"), written
// once for the CPU loops of select_rounds.h and the CUDA kernels of cuda/kernels.cu
// (D2_HD: __host__ __device__ under nvcc, plain inline otherwise).
//
// The graph is CSR (indptr, indices, distances); its in-neighbour rows (iptr, iidx, idist)
// are the graph itself when it is symmetric, else its transpose.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.h"

namespace d2 {

// True if v is a strict local maximum among its unselected neighbours by the key
// (score, then lower id): its out-neighbours and, unless the graph is symmetric, its
// in-neighbours. Reads only: many nodes may be tested at once.
D2_HD bool is_local_max(const idx_t* indptr, const nbr_t* indices, const idx_t* iptr,
                        const nbr_t* iidx, bool symmetric, const std::uint8_t* selected,
                        const double* cur, idx_t v) {
    for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) {
        const nbr_t u = indices[p];
        if (!selected[u] && !key_less(cur[u], u, cur[v], v)) return false;
    }
    if (!symmetric)
        for (idx_t p = iptr[v]; p < iptr[v + 1]; ++p) {
            const nbr_t u = iidx[p];
            if (!selected[u] && !key_less(cur[u], u, cur[v], v)) return false;
        }
    return true;
}

// The new score of node j after round `round`: cur[j] minus the reverse updates of the
// picks of that round (picked_in[v] == round) among its in-neighbours, summed in in-row
// order: exp(-gamma_r * d(v, j)) * s_v (weighted) or s_v (absolute). Reads only; the
// caller stores the result, so all touched nodes of a round can be pulled at once.
D2_HD double pull_update(const idx_t* iptr, const nbr_t* iidx, const float* idist,
                         const std::int32_t* picked_in, std::int32_t round, double gamma_r,
                         bool absolute, const double* cur, idx_t j) {
    double s = cur[j];
    for (idx_t p = iptr[j]; p < iptr[j + 1]; ++p) {
        const nbr_t v = iidx[p];
        if (picked_in[v] != round) continue;
        s -= absolute ? cur[v] : std::exp(-gamma_r * static_cast<double>(idist[p])) * cur[v];
    }
    return s;
}

}  // namespace d2
