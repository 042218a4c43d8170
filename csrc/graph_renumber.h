// The graph induced by a list of nodes, renumbered: a subgraph, or the whole graph permuted.
#pragma once
#include <algorithm>
#include <vector>

#include "common.h"
#include "graph_symmetrize.h"  // edge_key, edge_dist

namespace d2 {

// A CSR graph of n nodes (indptr, indices, distances; rows' neighbours in [0, n)) and m
// distinct ids `rows` in [0, n). Node t of the result is node rows[t]; its edges are those
// of rows[t] to nodes in `rows`, renumbered, each row sorted by new id, same distances.
// Fills out_indptr (m + 1) and returns (out_indices, out_distances) through the vectors.
// O(n + nnz * log degree) time; stop() is polled between blocks of rows.
template <class Stop = NeverStop>
bool renumber(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
              idx_t m, const idx_t* rows, idx_t* out_indptr, std::vector<nbr_t>& out_indices,
              std::vector<float>& out_distances, Stop stop = {}) {
    std::vector<nbr_t> new_id(static_cast<size_t>(n), -1);
#pragma omp parallel for schedule(static) if (m > kParallelMin)
    for (idx_t t = 0; t < m; ++t) new_id[rows[t]] = static_cast<nbr_t>(t);
    // Both passes walk the old rows in order (sequential reads) and write new row
    // new_id[r]: a random permutation costs little more than a subgraph.
    const idx_t block = poll_rows(n, indptr[n]);
    // 1. the kept degree of every new row
    std::vector<idx_t> kept(static_cast<size_t>(m));
    if (!for_row_blocks(n, block, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
            for (idx_t r = lo; r < hi; ++r) {
                if (new_id[r] < 0) continue;
                idx_t count = 0;
                for (idx_t p = indptr[r]; p < indptr[r + 1]; ++p)
                    count += new_id[indices[p]] >= 0;
                kept[new_id[r]] = count;
            }
        }) || stop())
        return false;
    out_indptr[0] = 0;
    for (idx_t t = 0; t < m; ++t) out_indptr[t + 1] = out_indptr[t] + kept[t];
    out_indices.resize(static_cast<size_t>(out_indptr[m]));
    out_distances.resize(static_cast<size_t>(out_indptr[m]));
    // 2. each kept row: its kept edges as (new id, distance) keys, sorted, unpacked
    return for_row_blocks(n, block, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel if (n > kParallelMin)
        {
            std::vector<std::uint64_t> keys;
#pragma omp for schedule(dynamic, 1024)
            for (idx_t r = lo; r < hi; ++r) {
                if (new_id[r] < 0) continue;
                keys.clear();
                for (idx_t p = indptr[r]; p < indptr[r + 1]; ++p)
                    if (new_id[indices[p]] >= 0)
                        keys.push_back(edge_key(new_id[indices[p]], distances[p]));
                std::sort(keys.begin(), keys.end());
                const idx_t start = out_indptr[new_id[r]];
                for (size_t q = 0; q < keys.size(); ++q) {
                    out_indices[start + q] = static_cast<nbr_t>(keys[q] >> 32);
                    out_distances[start + q] = edge_dist(keys[q]);
                }
            }
        }
    });
}

}  // namespace d2
