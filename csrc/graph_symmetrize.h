// CSR adjacency from kNN lists: union (symmetric) or directed.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"

namespace d2 {

// Sort key of one edge: neighbour id in the high 32 bits, the bits of a non-negative
// float32 distance in the low 32 (their integer order is the float order).
inline std::uint64_t edge_key(nbr_t j, float d) {
    d += 0.0f;  // -0.0 -> +0.0
    std::uint32_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(j)) << 32) | bits;
}

inline float edge_dist(std::uint64_t key) {
    std::uint32_t bits = static_cast<std::uint32_t>(key);
    float d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

// knn_idx (n, c): ids in [-1, n), -1 = missing; knn_dist (n, c): finite, >= 0.
// Self entries and -1 are dropped; a pair present twice keeps its smaller distance.
// Fills indptr (n + 1) and returns (indices, distances), each row sorted by neighbour.
// stop() is polled between blocks of rows in every pass; returns false if it asked to stop.
template <class Stop = NeverStop>
bool build_csr(idx_t n, idx_t c, const idx_t* knn_idx, const float* knn_dist, bool symmetric,
               idx_t* indptr, std::vector<nbr_t>& indices, std::vector<float>& distances,
               Stop stop = {}) {
    const idx_t rows = poll_rows(n, n * c * (symmetric ? 2 : 1));
    // 1. degree of every row before deduplication
    std::vector<idx_t> start(n + 1, 0);
    {
        std::vector<std::atomic<idx_t>> deg(n);
        for (idx_t i = 0; i < n; ++i) deg[i].store(0, std::memory_order_relaxed);
        const bool done = for_row_blocks(n, rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
            for (idx_t i = lo; i < hi; ++i) {
                idx_t own = 0;
                for (idx_t p = i * c; p < (i + 1) * c; ++p) {
                    idx_t j = knn_idx[p];
                    if (j < 0 || j == i) continue;
                    ++own;
                    if (symmetric) deg[j].fetch_add(1, std::memory_order_relaxed);
                }
                deg[i].fetch_add(own, std::memory_order_relaxed);
            }
        });
        if (!done || stop()) return false;
        for (idx_t i = 0; i < n; ++i) start[i + 1] = start[i] + deg[i].load();
    }
    // 2. scatter edge keys into their rows (order within a row is fixed by the sort below)
    // zeroed in blocks with polls between them (first touch of the pages: a long step if
    // done at once, or by the first block of the scatter, which writes all over)
    std::unique_ptr<std::uint64_t[]> keys(new std::uint64_t[static_cast<size_t>(start[n])]);
    if (!for_row_blocks(start[n], kPollEdges, stop, [&](idx_t lo, idx_t hi) {
            std::fill(keys.get() + lo, keys.get() + hi, std::uint64_t{0});
        }) || stop())
        return false;
    {
        std::vector<std::atomic<idx_t>> fill(n);
        for (idx_t i = 0; i < n; ++i) fill[i].store(start[i], std::memory_order_relaxed);
        const bool done = for_row_blocks(n, rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
            for (idx_t i = lo; i < hi; ++i) {
                for (idx_t p = i * c; p < (i + 1) * c; ++p) {
                    idx_t j = knn_idx[p];
                    if (j < 0 || j == i) continue;
                    keys[fill[i].fetch_add(1, std::memory_order_relaxed)] =
                        edge_key(static_cast<nbr_t>(j), knn_dist[p]);
                    if (symmetric)
                        keys[fill[j].fetch_add(1, std::memory_order_relaxed)] =
                            edge_key(static_cast<nbr_t>(i), knn_dist[p]);
                }
            }
        });
        if (!done || stop()) return false;
    }
    // 3. sort each row by (neighbour, distance), keep the first of each neighbour
    std::vector<idx_t> kept(n);
    if (!for_row_blocks(n, rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(dynamic, 1024) if (n > kParallelMin)
            for (idx_t i = lo; i < hi; ++i) {
                std::uint64_t* row = keys.get() + start[i];
                idx_t len = start[i + 1] - start[i];
                std::sort(row, row + len);
                idx_t m = 0;
                for (idx_t p = 0; p < len; ++p)
                    if (m == 0 || (row[p] >> 32) != (row[m - 1] >> 32)) row[m++] = row[p];
                kept[i] = m;
            }
        }) || stop())
        return false;
    indptr[0] = 0;
    for (idx_t i = 0; i < n; ++i) indptr[i + 1] = indptr[i] + kept[i];
    indices.reserve(static_cast<size_t>(indptr[n]));  // filled block by block
    distances.reserve(static_cast<size_t>(indptr[n]));
    return for_row_blocks(n, rows, stop, [&](idx_t lo, idx_t hi) {
        indices.resize(static_cast<size_t>(indptr[hi]));
        distances.resize(static_cast<size_t>(indptr[hi]));
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (idx_t i = lo; i < hi; ++i) {
            const std::uint64_t* row = keys.get() + start[i];
            for (idx_t p = 0; p < kept[i]; ++p) {
                indices[indptr[i] + p] = static_cast<nbr_t>(row[p] >> 32);
                distances[indptr[i] + p] = edge_dist(row[p]);
            }
        }
    });
}

}  // namespace d2
