// Parallel exact selection in rounds (SPEC 4, "Parallel exact selection").
//
// While every pick has a score >= 0 (and weights are >= 0) scores only fall. A node that
// is a strict local maximum among its unselected neighbours (key: score, then lower id)
// is then picked by the sequential greedy before any of its neighbours and with its
// current score, so all such nodes can be picked at once, in rounds. The sequential order
// is the picks sorted by their pick-time key. Rounds stop when the best unpicked key is
// below the n_keep-th best pick (no later pick can enter the top n_keep) or when no
// unpicked score is >= 0; the negative phase then finishes on the lazy heap.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"
#include "rounds_body.h"
#include "select_heap.h"

namespace d2 {

// Appends the items i in [first, last) with keep(i) to out, in increasing order; parallel,
// deterministic.
template <class Keep>
void parallel_filter_into(idx_t first, idx_t last, Keep keep, std::vector<idx_t>& out) {
    const idx_t count = last - first;
    std::vector<std::vector<idx_t>> parts;
#pragma omp parallel if (count > kParallelMin)
    {
#ifdef _OPENMP
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
        const int t = 0, nt = 1;
#endif
#pragma omp single
        parts.resize(nt);
        const idx_t lo = first + count * t / nt, hi = first + count * (t + 1) / nt;
        for (idx_t i = lo; i < hi; ++i)
            if (keep(i)) parts[t].push_back(i);
    }
    for (auto& part : parts) out.insert(out.end(), part.begin(), part.end());
}

// out = the items i in [0, count) with keep(i), in increasing order, filtered in blocks
// of `rows` items with stop() polled between them; false if it asked to stop.
template <class Keep, class Stop>
bool parallel_filter(idx_t count, idx_t rows, Stop& stop, Keep keep, std::vector<idx_t>& out) {
    out.clear();
    return for_row_blocks(count, rows, stop,
                          [&](idx_t lo, idx_t hi) { parallel_filter_into(lo, hi, keep, out); });
}

// 1 if every edge (i, j, d) has its twin (j, i, d) (the union graphs of knn_graph), 0 if
// not, kStopped if stop() (polled between blocks of rows) asked to stop.
template <class Stop>
idx_t is_symmetric(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
                   Stop& stop) {
    int ok = 1;
    const idx_t rows = poll_rows(n, indptr[n]);
    for (idx_t lo = 0; lo < n && ok; lo += rows) {
        if (stop()) return kStopped;
        const idx_t hi = std::min(n, lo + rows);
#pragma omp parallel for schedule(static) reduction(&& : ok) if (n > kParallelMin)
        for (idx_t i = lo; i < hi; ++i) {
            for (idx_t p = indptr[i]; p < indptr[i + 1] && ok; ++p) {
                const nbr_t j = indices[p];
                const nbr_t* first = indices + indptr[j];
                const nbr_t* last = indices + indptr[j + 1];
                const nbr_t* at = std::lower_bound(first, last, static_cast<nbr_t>(i));
                ok = at != last && *at == i && distances[indptr[j] + (at - first)] == distances[p];
            }
        }
    }
    return ok;
}

// The reversed graph: row j lists the sources i of the edges i -> j, by increasing i.
inline void transpose(idx_t n, const idx_t* indptr, const nbr_t* indices,
                      const float* distances, std::vector<idx_t>& tptr,
                      std::vector<nbr_t>& tidx, std::vector<float>& tdist) {
    const idx_t nnz = indptr[n];
    tptr.assign(n + 1, 0);
    for (idx_t p = 0; p < nnz; ++p) ++tptr[indices[p] + 1];
    for (idx_t j = 0; j < n; ++j) tptr[j + 1] += tptr[j];
    std::vector<idx_t> fill(tptr.begin(), tptr.end() - 1);
    tidx.resize(nnz);
    tdist.resize(nnz);
    for (idx_t i = 0; i < n; ++i)
        for (idx_t p = indptr[i]; p < indptr[i + 1]; ++p) {
            const idx_t q = fill[indices[p]]++;
            tidx[q] = static_cast<nbr_t>(i);
            tdist[q] = distances[p];
        }
}

// Picks n_keep nodes, the same ones in the same order as select_heap (up to float
// summation order of the updates a node receives in one round). Returns the picks made,
// or kStopped if stop() (polled between blocks of rows of every step) asked to stop.
template <class Stop = NeverStop>
idx_t select_rounds(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
                    const double* scores, idx_t n_keep, double gamma_r, bool absolute,
                    idx_t* out, Stop stop = {}) {
    if (n == 0 || n_keep == 0) return 0;
    for (idx_t i = 0; i < n; ++i)
        if (std::isnan(scores[i])) return 0;
    // in-neighbours: the graph itself when symmetric, else its transpose
    std::vector<idx_t> tptr_v;
    std::vector<nbr_t> tidx_v;
    std::vector<float> tdist_v;
    const idx_t symmetric_or_stop = is_symmetric(n, indptr, indices, distances, stop);
    if (symmetric_or_stop == kStopped) return kStopped;
    const bool symmetric = symmetric_or_stop == 1;
    if (!symmetric) transpose(n, indptr, indices, distances, tptr_v, tidx_v, tdist_v);
    const idx_t* iptr = symmetric ? indptr : tptr_v.data();
    const nbr_t* iidx = symmetric ? indices : tidx_v.data();
    const float* idist = symmetric ? distances : tdist_v.data();

    if (stop()) return kStopped;
    const idx_t rows = poll_rows(n, indptr[n]);  // rows a block between two stop() polls
    std::vector<double> cur(scores, scores + n);
    std::vector<std::uint8_t> selected(n, 0);
    std::vector<std::int32_t> stamp(n, -1);        // round that last queued a node
    std::vector<std::int32_t> picked_in(n, -1);    // round a node was picked in
    std::vector<QueueEntry> picks;                  // (rank of the pick-time score, node)
    std::vector<idx_t> cand, now, touched;
    if (!parallel_filter(n, kPollEdges, stop, [&](idx_t i) { return cur[i] >= 0.0; }, cand))
        return kStopped;
    for (std::int32_t round = 0; !cand.empty(); ++round) {
        if (stop()) return kStopped;
        if (static_cast<idx_t>(picks.size()) >= n_keep) {  // can an unpicked node still enter?
            std::vector<QueueEntry> best(picks);
            std::nth_element(best.begin(), best.begin() + (n_keep - 1), best.end(), entry_less);
            const QueueEntry bar = best[n_keep - 1];
            QueueEntry top{rank_of(cur[cand[0]]), static_cast<std::uint64_t>(cand[0])};
            for (idx_t v : cand) {
                const QueueEntry e{rank_of(cur[v]), static_cast<std::uint64_t>(v)};
                if (entry_less(e, top)) top = e;
            }
            if (entry_less(bar, top)) break;
        }
        const idx_t nc = static_cast<idx_t>(cand.size());
        if (!parallel_filter(nc, rows, stop, [&](idx_t c) {
                return is_local_max(indptr, indices, iptr, iidx, symmetric, selected.data(),
                                    cur.data(), cand[c]);
            }, now) || stop())
            return kStopped;
        for (idx_t& c : now) c = cand[c];
        for (idx_t v : now) {
            selected[v] = 1;
            picked_in[v] = round;
            picks.push_back({rank_of(cur[v]), static_cast<std::uint64_t>(v)});
        }
        // nodes whose score changes: unselected out-neighbours of the picks (marked in
        // parallel: concurrent writers store the same value), then collected in id order
        if (!for_row_blocks(static_cast<idx_t>(now.size()), rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(dynamic, 256) if (hi - lo > 4096)
                for (idx_t t = lo; t < hi; ++t)
                    for (idx_t p = indptr[now[t]]; p < indptr[now[t] + 1]; ++p)
                        __atomic_store_n(&stamp[indices[p]], round, __ATOMIC_RELAXED);
            }) || stop())
            return kStopped;
        if (!parallel_filter(n, kPollEdges, stop,
                             [&](idx_t j) { return stamp[j] == round && !selected[j]; }, touched))
            return kStopped;
        const idx_t nt = static_cast<idx_t>(touched.size());
        // pull: each touched node sums the updates of this round's picks (in-row order)
        if (!for_row_blocks(nt, rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(dynamic, 1024) if (hi - lo > 4096)
                for (idx_t t = lo; t < hi; ++t) {
                    const idx_t j = touched[t];
                    cur[j] = pull_update(iptr, iidx, idist, picked_in.data(), round, gamma_r,
                                         absolute, cur.data(), j);
                }
            }) || stop())
            return kStopped;
        // next candidates: nodes whose own score, a neighbour's score or a neighbour's
        // selection changed: the touched nodes, their neighbours, the picks' in-neighbours
        const std::int32_t queued = -2 - round;  // a second stamp value for this round
        auto queue_row = [&](const idx_t* ptr, const nbr_t* idx, idx_t u) {
            for (idx_t p = ptr[u]; p < ptr[u + 1]; ++p)
                __atomic_store_n(&stamp[idx[p]], queued, __ATOMIC_RELAXED);
        };
        if (!for_row_blocks(nt, rows, stop, [&](idx_t lo, idx_t hi) {
#pragma omp parallel for schedule(dynamic, 256) if (hi - lo > 4096)
                for (idx_t t = lo; t < hi; ++t) {
                    const idx_t j = touched[t];
                    __atomic_store_n(&stamp[j], queued, __ATOMIC_RELAXED);
                    queue_row(indptr, indices, j);
                    if (!symmetric) queue_row(iptr, iidx, j);
                }
            }) || stop())
            return kStopped;
        if (!symmetric)
            for (idx_t v : now) queue_row(iptr, iidx, v);
        for (idx_t j : touched)
            if (std::isnan(cur[j])) return 0;
        if (!parallel_filter(n, kPollEdges, stop, [&](idx_t u) {
                return stamp[u] == queued && !selected[u] && cur[u] >= 0.0;
            }, cand))
            return kStopped;
    }
    std::sort(picks.begin(), picks.end(), entry_less);
    const idx_t done = std::min<idx_t>(n_keep, static_cast<idx_t>(picks.size()));
    for (idx_t t = 0; t < done; ++t) out[t] = static_cast<idx_t>(picks[t].node);
    if (done == n_keep) return done;
    // negative phase: every unpicked score is < 0; the lazy heap takes over from here
    const idx_t more = select_heap_from(n, indptr, indices, distances, cur, selected,
                                        n_keep - done, gamma_r, absolute, out + done, stop);
    return more == kStopped ? kStopped : done + more;
}

}  // namespace d2
