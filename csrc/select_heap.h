// Greedy reverse message passing (SPEC 4) with a lazy max-heap.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#if defined(_OPENMP) && defined(__GLIBCXX__)
#include <parallel/algorithm>
#endif

#include "common.h"

namespace d2 {

struct HeapEntry {
    double score;
    idx_t node;
};

// 4-ary max-heap of (score, -node) keys: four 16-byte children share a cache line,
// so a pop touches half the lines of a binary heap.
class LazyHeap {
   public:
    bool empty() const { return h_.empty(); }
    const HeapEntry& top() const { return h_.front(); }
    void push(double score, idx_t node) {
        h_.push_back({score, node});
        idx_t i = static_cast<idx_t>(h_.size()) - 1;
        HeapEntry e = h_[i];
        while (i > 0) {
            idx_t parent = (i - 1) / kArity;
            if (!less(h_[parent], e)) break;
            h_[i] = h_[parent];
            i = parent;
        }
        h_[i] = e;
    }
    void pop() {
        HeapEntry e = h_.back();
        h_.pop_back();
        const idx_t size = static_cast<idx_t>(h_.size());
        if (size == 0) return;
        idx_t i = 0;
        for (;;) {
            idx_t first = kArity * i + 1;
            if (first >= size) break;
            idx_t best = first, last = std::min(first + kArity, size);
            for (idx_t c = first + 1; c < last; ++c)
                if (less(h_[best], h_[c])) best = c;
            if (!less(e, h_[best])) break;
            h_[i] = h_[best];
            i = best;
        }
        h_[i] = e;
    }

   private:
    static constexpr idx_t kArity = 4;
    static bool less(const HeapEntry& a, const HeapEntry& b) {
        return key_less(a.score, a.node, b.score, b.node);
    }
    std::vector<HeapEntry> h_;
};

// Lower (or raise, when s_v < 0) every unselected neighbour of the pick v.
// Calls on_rise(j, new_score) for each neighbour whose score went up.
template <class OnRise>
D2_HD void reverse_update(const idx_t* indptr, const nbr_t* indices, const float* distances,
                          double gamma_r, bool absolute, idx_t v, double s_v,
                          const std::uint8_t* selected, double* cur, OnRise on_rise) {
    for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) {
        nbr_t j = indices[p];
        if (selected[j]) continue;
        double delta = absolute ? s_v : std::exp(-gamma_r * static_cast<double>(distances[p])) * s_v;
        double updated = cur[j] - delta;
        if (updated > cur[j]) on_rise(j, updated);
        cur[j] = updated;
    }
}

// All nodes by key (score descending, ties to the lower id): the initial heap content,
// consumed in order. Parallel sort when OpenMP and libstdc++'s parallel mode are there.
inline std::vector<HeapEntry> sorted_entries(idx_t n, const double* scores) {
    std::vector<HeapEntry> order(n);
#pragma omp parallel for schedule(static)
    for (idx_t i = 0; i < n; ++i) order[i] = {scores[i], i};
    auto greater = [](const HeapEntry& a, const HeapEntry& b) {
        return key_less(b.score, b.node, a.score, a.node);
    };
#if defined(_OPENMP) && defined(__GLIBCXX__)
    __gnu_parallel::sort(order.begin(), order.end(), greater);
#else
    std::sort(order.begin(), order.end(), greater);
#endif
    return order;
}

// Picks n_keep nodes greedily; writes them in selection order to out.
// The lazy max-heap is split in two: the initial entries of all nodes, sorted once and
// read in order, and a binary heap of the entries pushed later. The larger of the two
// fronts is the heap's top. An entry is taken only if it equals the node's current
// score; a stale larger entry is re-pushed with the current score; every rise of a
// score (s_v < 0) pushes a fresh entry. Exact for any sign of the scores.
// Returns the number of picks (< n_keep only if scores became NaN).
inline idx_t select_heap(idx_t n, const idx_t* indptr, const nbr_t* indices,
                         const float* distances, const double* scores, idx_t n_keep,
                         double gamma_r, bool absolute, idx_t* out) {
    std::vector<double> cur(scores, scores + n);
    std::vector<std::uint8_t> selected(n, 0);
    const std::vector<HeapEntry> order = sorted_entries(n, scores);
    LazyHeap heap;
    idx_t next = 0, picked = 0;
    while (picked < n_keep) {
        HeapEntry e;
        bool from_order = next < n && (heap.empty() ||
                                       !key_less(order[next].score, order[next].node,
                                                 heap.top().score, heap.top().node));
        if (from_order) {
            e = order[next++];
        } else if (!heap.empty()) {
            e = heap.top();
            heap.pop();
        } else {
            break;
        }
        if (selected[e.node]) continue;
        double now = cur[e.node];
        if (e.score != now) {
            if (e.score > now) heap.push(now, e.node);
            continue;
        }
        out[picked++] = e.node;
        selected[e.node] = 1;
        for (idx_t p = indptr[e.node]; p < indptr[e.node + 1]; ++p) {
            D2_PREFETCH(cur.data() + indices[p]);
            D2_PREFETCH(selected.data() + indices[p]);
        }
        reverse_update(indptr, indices, distances, gamma_r, absolute, e.node, now,
                       selected.data(), cur.data(),
                       [&heap](idx_t j, double s) { heap.push(s, j); });
    }
    return picked;
}

}  // namespace d2
