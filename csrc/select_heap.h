// Greedy reverse message passing (SPEC 4) with a lazy priority queue: a radix heap for
// the keys that keep the pop order monotone, a 4-ary heap for the others.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace d2 {

// A queue entry: the rank of a score (see rank_of) and a node. Entries order by
// (rank, node): larger score first, ties to the lower id, as in the reference's argmax.
struct QueueEntry {
    std::uint64_t rank, node;
};
inline bool entry_less(const QueueEntry& a, const QueueEntry& b) {
    return a.rank < b.rank || (a.rank == b.rank && a.node < b.node);
}

// Rank of a non-NaN score: a larger score gets a smaller rank, equal scores (also -0.0 and
// +0.0) the same one. The bits of a double, with the sign bit flipped for s >= 0 and all
// bits flipped for s < 0, order like the doubles; the rank is their complement.
inline std::uint64_t rank_of(double s) {
    if (s == 0.0) s = 0.0;  // -0.0 -> +0.0
    std::uint64_t bits;
    std::memcpy(&bits, &s, sizeof bits);
    return (bits >> 63) ? bits : ~(bits | (std::uint64_t{1} << 63));
}

// 4-ary min-heap of entries: four 16-byte children share a cache line, so a pop touches
// half the lines of a binary heap.
class QuadHeap {
   public:
    bool empty() const { return h_.empty(); }
    const QueueEntry& top() const { return h_.front(); }
    void push(QueueEntry e) {
        h_.push_back(e);
        std::size_t i = h_.size() - 1;
        while (i > 0) {
            std::size_t parent = (i - 1) / kArity;
            if (!entry_less(e, h_[parent])) break;
            h_[i] = h_[parent];
            i = parent;
        }
        h_[i] = e;
    }
    void pop() {
        QueueEntry e = h_.back();
        h_.pop_back();
        const std::size_t size = h_.size();
        if (size == 0) return;
        std::size_t i = 0;
        for (;;) {
            std::size_t first = kArity * i + 1;
            if (first >= size) break;
            std::size_t best = first, last = std::min(first + kArity, size);
            for (std::size_t c = first + 1; c < last; ++c)
                if (entry_less(h_[c], h_[best])) best = c;
            if (!entry_less(h_[best], e)) break;
            h_[i] = h_[best];
            i = best;
        }
        h_[i] = e;
    }

   private:
    static constexpr std::size_t kArity = 4;
    std::vector<QueueEntry> h_;
};

// Monotone min-queue of entries, read as 128-bit keys (rank, node), with 256-ary digits
// (a multi-level radix heap). A key pushed must not be below the last key popped
// (accepts). An entry sits in bucket (level, digit): level = the highest byte in which its
// key differs from the last popped key, digit = its byte there. The lowest bucket holds
// the minimum: it is alone there, or all keys there are equal (level 0), or the bucket is
// redistributed around its minimum into lower levels. So each entry moves at most 16
// times (2-3 in practice), always by sequential appends, and no sort is needed.
class RadixHeap {
   public:
    explicit RadixHeap(QueueEntry floor) : last_(floor), buckets_(kLevels * 256) {}
    bool empty() const { return levels_ == 0; }
    bool accepts(const QueueEntry& e) const { return !entry_less(e, last_); }
    // Pushes entry(i) for i in [0, count), sizing the buckets first.
    template <class EntryAt>
    void push_all(idx_t count, EntryAt entry) {
        std::vector<std::size_t> sizes(kLevels * 256, 0);
        for (idx_t i = 0; i < count; ++i) {
            const QueueEntry e = entry(i);
            const int level = level_of(e);
            ++sizes[level * 256 + digit_of(e, level)];
        }
        for (std::size_t b = 0; b < sizes.size(); ++b) buckets_[b].reserve(sizes[b]);
        for (idx_t i = 0; i < count; ++i) push(entry(i));
    }
    void push(QueueEntry e) {
        const int level = level_of(e);
        const int digit = static_cast<int>(digit_of(e, level));
        buckets_[level * 256 + digit].push_back(e);
        bits_[level][digit >> 6] |= std::uint64_t{1} << (digit & 63);
        levels_ |= 1u << level;
    }
    // The smallest entry, or nullptr if there is none. refresh(entries) is given each
    // bucket about to be redistributed: it may raise keys and drop entries in place.
    template <class Refresh>
    const QueueEntry* top(Refresh&& refresh) {
        while (!empty()) {
            std::vector<QueueEntry>& bucket = lowest_bucket();
            if (top_level_ == 0 || bucket.size() == 1) return &bucket.back();
            work_.swap(bucket);
            clear_bit();
            refresh(work_);
            // Keys raised out of the bucket's range go to their bucket (all keys are still
            // >= last_); the rest agree with their minimum above top_level_: all move lower.
            std::size_t kept = 0;
            for (const QueueEntry& e : work_) {
                if (level_of(e) == top_level_ && digit_of(e, top_level_) == top_digit_)
                    work_[kept++] = e;
                else
                    push(e);
            }
            work_.resize(kept);
            if (kept > 0) last_ = *std::min_element(work_.begin(), work_.end(), entry_less);
            for (const QueueEntry& e : work_) push(e);
            work_.clear();
        }
        return nullptr;
    }
    // Removes the entry top() returned (not nullptr).
    void pop() {
        std::vector<QueueEntry>& bucket = buckets_[top_level_ * 256 + top_digit_];
        last_ = bucket.back();
        bucket.pop_back();
        if (bucket.empty()) clear_bit();
    }

   private:
    static constexpr int kLevels = 16;
    std::vector<QueueEntry>& lowest_bucket() {
        top_level_ = __builtin_ctz(levels_);
        const std::uint64_t* words = bits_[top_level_];
        int w = 0;
        while (words[w] == 0) ++w;
        top_digit_ = w * 64 + __builtin_ctzll(words[w]);
        return buckets_[top_level_ * 256 + top_digit_];
    }
    void clear_bit() {
        std::uint64_t* words = bits_[top_level_];
        words[top_digit_ >> 6] &= ~(std::uint64_t{1} << (top_digit_ & 63));
        if ((words[0] | words[1] | words[2] | words[3]) == 0) levels_ &= ~(1u << top_level_);
    }
    static std::uint64_t digit_of(const QueueEntry& e, int level) {
        return level >= 8 ? (e.rank >> (8 * (level - 8))) & 255 : (e.node >> (8 * level)) & 255;
    }
    int level_of(const QueueEntry& e) const {
        if (std::uint64_t x = e.rank ^ last_.rank) return 8 + ((63 - __builtin_clzll(x)) >> 3);
        if (std::uint64_t x = e.node ^ last_.node) return (63 - __builtin_clzll(x)) >> 3;
        return 0;
    }
    QueueEntry last_;
    std::vector<std::vector<QueueEntry>> buckets_;
    std::vector<QueueEntry> work_;
    std::uint64_t bits_[kLevels][4] = {};
    std::uint32_t levels_ = 0;
    int top_level_ = 0;
    std::uint64_t top_digit_ = 0;
};

// FIFO ring of the next entries popped from the radix heap. A pick's lines are fetched
// in stages as its entry moves to the front: node data on entry, its CSR row at kRowAt,
// its neighbours' scores at kNeighboursAt, so each stage's misses have a few picks' time.
class Lookahead {
   public:
    static constexpr std::size_t kSize = 16, kRowAt = 8, kNeighboursAt = 3;
    bool empty() const { return size_ == 0; }
    bool full() const { return size_ == kSize; }
    std::size_t size() const { return size_; }
    const QueueEntry& front() const { return ring_[head_]; }
    const QueueEntry& operator[](std::size_t i) const { return ring_[(head_ + i) % kSize]; }
    void push_back(const QueueEntry& e) { ring_[(head_ + size_++) % kSize] = e; }
    QueueEntry pop_front() {
        QueueEntry e = ring_[head_];
        head_ = (head_ + 1) % kSize;
        --size_;
        return e;
    }

   private:
    QueueEntry ring_[kSize];
    std::size_t head_ = 0, size_ = 0;
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

// Selects v: records it, applies its reverse update. Returns false if a score became NaN
// (the reference's argmax would pick that NaN next, so the selection has to stop).
template <class OnRise>
inline bool apply_pick(const idx_t* indptr, const nbr_t* indices, const float* distances,
                 double gamma_r, bool absolute, idx_t v, std::uint8_t* selected, double* cur,
                 OnRise on_rise) {
    selected[v] = 1;
    for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) {
        D2_PREFETCH(cur + indices[p]);
        D2_PREFETCH(selected + indices[p]);
    }
    reverse_update(indptr, indices, distances, gamma_r, absolute, v, cur[v], selected, cur,
                   on_rise);
    bool finite = true;
    for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) finite &= !std::isnan(cur[indices[p]]);
    return finite;
}

// Picks n_keep nodes greedily; writes them in selection order to out.
// Lazy rule: every unselected node keeps an entry whose score is >= its current score
// (each rise pushes a fresh entry). The smallest entry of the queue is taken if its node
// is unselected and the entry equals the current score: the node is then the argmax,
// ties to the lowest id. A stale entry is re-keyed to the current score when the score
// fell, dropped when it rose (a fresher entry exists) or the node is selected.
// The queue: a radix heap that takes every key not below the last key it popped, the
// lookahead (entries it popped, sorted, all <= its keys) and a 4-ary heap for the other
// keys; its smallest entry is the smaller of the lookahead's front and the 4-ary top.
// While the picks are >= 0 (weights are >= 0) scores only fall, so a re-keyed entry
// misses the radix heap only if it falls within the lookahead: the 4-ary heap stays tiny.
// Picks < 0 raise scores, and most risen keys go to the 4-ary heap.
// Exact for any sign of the scores. Returns the number of picks (< n_keep only if a
// score became NaN).
// The same greedy continued from a state: current scores cur (n) and selected flags
// (n, 1 = picked already), both updated in place; makes up to n_keep more picks.
// Returns kStopped if stop() asked to stop.
template <class Stop = NeverStop>
idx_t select_heap_from(idx_t n, const idx_t* indptr, const nbr_t* indices,
                       const float* distances, std::vector<double>& cur,
                       std::vector<std::uint8_t>& selected, idx_t n_keep, double gamma_r,
                       bool absolute, idx_t* out, Stop stop = {}) {
    if (n == 0 || n_keep == 0) return 0;
    auto entry = [&cur](idx_t i) {
        return QueueEntry{rank_of(cur[i]), static_cast<std::uint64_t>(i)};
    };
    idx_t top = 0;  // argmax, ties to the lowest id: the radix heap's first key
    for (idx_t i = 0; i < n; ++i) {
        if (std::isnan(cur[i])) return 0;
        if (cur[i] > cur[top]) top = i;
    }
    RadixHeap radix(entry(top));
    radix.push_all(n, entry);
    // The lazy rule applied to a bucket of the radix heap before it is redistributed, with
    // the nodes' lines fetched ahead: the misses of a bucket overlap, and most stale
    // entries are re-keyed here instead of one stalled pop each.
    auto refresh = [&](std::vector<QueueEntry>& entries) {
        constexpr std::size_t kAhead = 16;
        const std::size_t size = entries.size();
        auto fetch = [&](std::size_t i) {
            if (i < size) {
                D2_PREFETCH(cur.data() + entries[i].node);
                D2_PREFETCH(selected.data() + entries[i].node);
            }
        };
        for (std::size_t i = 0; i < kAhead; ++i) fetch(i);
        std::size_t kept = 0;
        for (std::size_t i = 0; i < size; ++i) {
            fetch(i + kAhead);
            const idx_t v = static_cast<idx_t>(entries[i].node);
            if (selected[v]) continue;
            const std::uint64_t rank = rank_of(cur[v]);
            if (rank < entries[i].rank) continue;  // the score rose: a fresher entry exists
            entries[kept++] = {rank, entries[i].node};
        }
        entries.resize(kept);
    };
    QuadHeap heap;
    auto push = [&](QueueEntry e) {
        if (radix.accepts(e)) radix.push(e);
        else heap.push(e);
    };
    auto on_rise = [&](idx_t j, double s) { push({rank_of(s), static_cast<std::uint64_t>(j)}); };
    Lookahead ahead;
    auto fetch_row = [&](idx_t v) {
        D2_PREFETCH(indices + indptr[v]);
        D2_PREFETCH(distances + indptr[v]);
    };
    auto fetch_neighbours = [&](idx_t v) {
        for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) {
            D2_PREFETCH(cur.data() + indices[p]);
            D2_PREFETCH(selected.data() + indices[p]);
        }
    };
    idx_t picked = 0;
    for (idx_t step = 1; picked < n_keep; ++step) {
        if (step % kPollEvery == 0 && stop()) return kStopped;
        while (!ahead.full()) {
            const QueueEntry* e = radix.top(refresh);
            if (e == nullptr) break;
            D2_PREFETCH(cur.data() + e->node);
            D2_PREFETCH(selected.data() + e->node);
            D2_PREFETCH(indptr + e->node);
            ahead.push_back(*e);
            radix.pop();
        }
        if (ahead.size() > Lookahead::kRowAt)
            fetch_row(static_cast<idx_t>(ahead[Lookahead::kRowAt].node));
        if (ahead.size() > Lookahead::kNeighboursAt)
            fetch_neighbours(static_cast<idx_t>(ahead[Lookahead::kNeighboursAt].node));
        QueueEntry e;
        if (!heap.empty() && (ahead.empty() || entry_less(heap.top(), ahead.front()))) {
            e = heap.top();
            heap.pop();
        } else if (!ahead.empty()) {
            e = ahead.pop_front();
        } else {
            break;
        }
        const idx_t v = static_cast<idx_t>(e.node);
        if (selected[v]) continue;
        const QueueEntry now = entry(v);
        if (now.rank != e.rank) {
            if (now.rank > e.rank) push(now);
            continue;
        }
        out[picked++] = v;
        if (!apply_pick(indptr, indices, distances, gamma_r, absolute, v, selected.data(),
                        cur.data(), on_rise))
            break;
    }
    return picked;
}

template <class Stop = NeverStop>
idx_t select_heap(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
                  const double* scores, idx_t n_keep, double gamma_r, bool absolute,
                  idx_t* out, Stop stop = {}) {
    std::vector<double> cur(scores, scores + n);
    std::vector<std::uint8_t> selected(n, 0);
    return select_heap_from(n, indptr, indices, distances, cur, selected, n_keep, gamma_r,
                            absolute, out, stop);
}

}  // namespace d2
