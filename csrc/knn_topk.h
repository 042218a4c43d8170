// The c nearest candidates of each query from a block of float32 distances (the list scan
// of the IVF search, after faiss computed the distances with BLAS).
#pragma once
#include <cstring>

#include "common.h"

namespace d2 {

// Whether any of the 8 distances at p is <= thr (NaN: no), branch-free: two 4-wide
// compares where the compiler has vector extensions.
inline bool any_le8(const float* p, float thr) {
#if defined(__GNUC__) && !defined(__CUDACC__)
    typedef float v4f __attribute__((vector_size(16)));
    typedef int v4i __attribute__((vector_size(16)));
    v4f a, b;
    std::memcpy(&a, p, sizeof a), std::memcpy(&b, p + 4, sizeof b);
    const v4f t = {thr, thr, thr, thr};
    const v4i hit = (a <= t) | (b <= t);
    return (hit[0] | hit[1] | hit[2] | hit[3]) != 0;
#else
    int hits = 0;
    for (int t = 0; t < 8; ++t) hits += p[t] <= thr;
    return hits != 0;
#endif
}

// Order of candidates: smaller distance first, ties to the lower id.
inline bool cand_less(float da, idx_t ia, float db, idx_t ib) {
    return da < db || (da == db && ia < ib);
}

// Merge row r of D (m, L) with ids ids[r * ids_stride + j] (ids_stride 0: one id a
// column) into row dest[r] of (outD, outI) (c entries each, ascending by cand_less,
// padded with (inf, -1)); the row keeps the c smallest of the union, ascending. NaN
// distances are never taken, nor distances above bound[r] when bound is not null (an
// upper bound of the query's c-th distance known from elsewhere: the IVF search scans a
// query's own list first). Serial: the IVF search runs one call a list on each of its
// threads, and each dest row belongs to one call.
//
// Distances are tested 8 at a time against the row's current c-th (any_le8); only a
// block with a hit is walked, and a hit is inserted into the sorted row in place. With the c-th tightening as the row fills, most distances cost
// a compare.
inline void topk_merge(idx_t m, idx_t L, const float* D, const idx_t* ids, idx_t ids_stride,
                       const idx_t* dest, const float* bound, idx_t c, float* outD,
                       idx_t* outI) {
    if (c <= 0) return;
    constexpr idx_t kBlock = 8;
    for (idx_t r = 0; r < m; ++r) {
        float* od = outD + dest[r] * c;
        idx_t* oi = outI + dest[r] * c;
        const float* row = D + r * L;
        const idx_t* rid = ids + r * ids_stride;
        float thr = od[c - 1];  // the c-th so far: larger distances cannot enter
        if (bound && bound[r] < thr) thr = bound[r];
        for (idx_t j0 = 0; j0 < L; j0 += kBlock) {
            bool hit = false;
            if (j0 + kBlock <= L) {
                hit = any_le8(row + j0, thr);
            } else {
                for (idx_t j = j0; j < L; ++j) hit |= row[j] <= thr;
            }
            if (!hit) continue;
            const idx_t j1 = j0 + kBlock < L ? j0 + kBlock : L;
            for (idx_t j = j0; j < j1; ++j) {
                const float v = row[j];
                const idx_t id = ids_stride ? rid[j] : ids[j];
                if (!(v <= thr) || !cand_less(v, id, od[c - 1], oi[c - 1])) continue;
                idx_t p = c - 1;  // insertion into the sorted row; the last one drops out
                for (; p > 0 && cand_less(v, id, od[p - 1], oi[p - 1]); --p)
                    od[p] = od[p - 1], oi[p] = oi[p - 1];
                od[p] = v, oi[p] = id;
                if (od[c - 1] < thr) thr = od[c - 1];
            }
        }
    }
}

}  // namespace d2
