// CUDA kernels of d2fast: forward message passing and the rounds selection (SPEC 3-4).
//
// The per-row and per-node math is the CPU's own (forward.h: forward_row, rounds_body.h:
// is_local_max, pull_update; D2_HD functions). This file only spreads it over GPU threads
// (grid-stride loops, lists appended with atomic counters: their order does not matter,
// every node's result is its own) and runs the rounds from the host, which reads a few
// counters per round. The negative phase finishes on the CPU heap, as in select_rounds.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

#include "forward.h"
#include "kernels.h"
#include "rounds_body.h"
#include "select_heap.h"
#include "select_rounds.h"

namespace d2 {
namespace cuda {
namespace {

using counter_t = unsigned long long;  // the type of atomicAdd's 64-bit counters

// Every CUDA call goes through check(): an error becomes std::runtime_error (RuntimeError
// in Python) with the call, its size if any, and CUDA's message.
void check(cudaError_t err, const char* what, std::size_t bytes = 0) {
    if (err != cudaSuccess)
        throw std::runtime_error(std::string("d2fast._cuda: ") + what +
                                 (bytes ? " of " + std::to_string(bytes) + " bytes" : "") +
                                 " failed: " + cudaGetErrorString(err) + " (" +
                                 cudaGetErrorName(err) + ")");
}
// After a launch: a bad configuration shows now, a fault in the kernel at the next copy.
#define D2_CUDA_LAUNCHED(kernel) check(cudaGetLastError(), "launch of " #kernel)

// A device array owned by the host side: freed on every exit, also by an exception.
template <class T>
class DeviceArray {
   public:
    explicit DeviceArray(idx_t size) {
        if (size > 0) check(cudaMalloc(&ptr_, bytes(size)), "cudaMalloc", bytes(size));
    }
    DeviceArray(const T* host, idx_t size) : DeviceArray(size) { upload(host, size); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    ~DeviceArray() {
        if (ptr_ != nullptr) cudaFree(ptr_);
    }
    T* get() const { return ptr_; }
    void upload(const T* host, idx_t count) {
        if (count > 0)
            check(cudaMemcpy(ptr_, host, bytes(count), cudaMemcpyHostToDevice),
                  "cudaMemcpy to the device", bytes(count));
    }
    void download(T* host, idx_t count, idx_t from = 0) const {
        if (count > 0)
            check(cudaMemcpy(host, ptr_ + from, bytes(count), cudaMemcpyDeviceToHost),
                  "cudaMemcpy to the host", bytes(count));
    }
    void fill_bytes(int byte, idx_t count) {
        if (count > 0) check(cudaMemset(ptr_, byte, bytes(count)), "cudaMemset", bytes(count));
    }
    T read(idx_t at = 0) const {
        T value;
        download(&value, 1, at);
        return value;
    }

   private:
    static std::size_t bytes(idx_t count) { return static_cast<std::size_t>(count) * sizeof(T); }
    T* ptr_ = nullptr;
};

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over count items (count > 0).
unsigned blocks_for(idx_t count) {
    return static_cast<unsigned>(std::min<idx_t>((count + kThreads - 1) / kThreads, idx_t{1} << 20));
}

#define D2_FOR_EACH(i, count)                                                    \
    for (idx_t i = static_cast<idx_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (count); \
         i += static_cast<idx_t>(gridDim.x) * blockDim.x)

__device__ void append(idx_t* list, counter_t* size, idx_t v) {
    list[atomicAdd(size, counter_t{1})] = v;
}

__global__ void forward_kernel(idx_t n, const idx_t* indptr, const nbr_t* indices,
                               const float* distances, const double* scores, double gamma_f,
                               bool product, idx_t nnz, double* out) {
    D2_FOR_EACH(i, n) {
        const double acc = forward_row(indptr, indices, distances, scores, gamma_f, nnz, i);
        out[i] = product ? scores[i] * acc : scores[i] + acc;
    }
}

// The first candidates: every node with a score >= 0.
__global__ void nonnegative_kernel(idx_t n, const double* cur, idx_t* cand, counter_t* size) {
    D2_FOR_EACH(i, n) {
        if (cur[i] >= 0.0) append(cand, size, i);
    }
}

// *found = 1 if a candidate's key beats the bar (bar_score, bar_node).
__global__ void beats_kernel(idx_t nc, const idx_t* cand, const double* cur, double bar_score,
                             idx_t bar_node, int* found) {
    D2_FOR_EACH(c, nc) {
        const idx_t v = cand[c];
        if (key_less(bar_score, bar_node, cur[v], v)) *found = 1;
    }
}

// This round's picks: the candidates that are strict local maxima.
__global__ void local_max_kernel(idx_t nc, const idx_t* cand, const idx_t* indptr,
                                 const nbr_t* indices, const idx_t* iptr, const nbr_t* iidx,
                                 bool symmetric, const std::uint8_t* selected, const double* cur,
                                 idx_t* picks, counter_t* size) {
    D2_FOR_EACH(c, nc) {
        const idx_t v = cand[c];
        if (is_local_max(indptr, indices, iptr, iidx, symmetric, selected, cur, v))
            append(picks, size, v);
    }
}

// Selects the picks and records their pick-time scores.
__global__ void mark_picks_kernel(idx_t np, const idx_t* picks, std::int32_t round,
                                  const double* cur, std::uint8_t* selected,
                                  std::int32_t* picked_in, double* pick_score) {
    D2_FOR_EACH(t, np) {
        const idx_t v = picks[t];
        selected[v] = 1;
        picked_in[v] = round;
        pick_score[t] = cur[v];
    }
}

// The touched nodes: unselected out-neighbours of the picks, each listed once (the first
// thread to stamp it with this round lists it).
__global__ void touch_kernel(idx_t np, const idx_t* picks, const idx_t* indptr,
                             const nbr_t* indices, const std::uint8_t* selected,
                             std::int32_t round, std::int32_t* stamp, idx_t* touched,
                             counter_t* size) {
    D2_FOR_EACH(t, np) {
        const idx_t v = picks[t];
        for (idx_t p = indptr[v]; p < indptr[v + 1]; ++p) {
            const nbr_t j = indices[p];
            if (!selected[j] && atomicExch(&stamp[j], round) != round) append(touched, size, j);
        }
    }
}

// Each touched node pulls this round's updates. Reads the picks' scores, writes only
// unselected nodes' scores: no conflicts. *nan = 1 if a score became NaN.
__global__ void pull_kernel(idx_t nt, const idx_t* touched, const idx_t* iptr, const nbr_t* iidx,
                            const float* idist, const std::int32_t* picked_in, std::int32_t round,
                            double gamma_r, bool absolute, double* cur, int* nan) {
    D2_FOR_EACH(t, nt) {
        const idx_t j = touched[t];
        const double s = pull_update(iptr, iidx, idist, picked_in, round, gamma_r, absolute, cur, j);
        cur[j] = s;
        if (isnan(s)) *nan = 1;
    }
}

// Lists u among the next candidates once (stamp `queued`) if unselected and >= 0.
__device__ void queue_node(idx_t u, std::int32_t queued, std::int32_t* stamp,
                           const std::uint8_t* selected, const double* cur, idx_t* next,
                           counter_t* size) {
    if (atomicExch(&stamp[u], queued) != queued && !selected[u] && cur[u] >= 0.0)
        append(next, size, u);
}

__device__ void queue_row(const idx_t* ptr, const nbr_t* idx, idx_t u, std::int32_t queued,
                          std::int32_t* stamp, const std::uint8_t* selected, const double* cur,
                          idx_t* next, counter_t* size) {
    for (idx_t p = ptr[u]; p < ptr[u + 1]; ++p)
        queue_node(idx[p], queued, stamp, selected, cur, next, size);
}

// Next candidates, part 1: the touched nodes and their out- (and in-) neighbours.
__global__ void queue_touched_kernel(idx_t nt, const idx_t* touched, const idx_t* indptr,
                                     const nbr_t* indices, const idx_t* iptr, const nbr_t* iidx,
                                     bool symmetric, std::int32_t queued, std::int32_t* stamp,
                                     const std::uint8_t* selected, const double* cur, idx_t* next,
                                     counter_t* size) {
    D2_FOR_EACH(t, nt) {
        const idx_t j = touched[t];
        queue_node(j, queued, stamp, selected, cur, next, size);
        queue_row(indptr, indices, j, queued, stamp, selected, cur, next, size);
        if (!symmetric) queue_row(iptr, iidx, j, queued, stamp, selected, cur, next, size);
    }
}

// Next candidates, part 2 (directed graphs): the picks' in-neighbours, whose neighbour
// left the local-maximum test.
__global__ void queue_in_kernel(idx_t np, const idx_t* picks, const idx_t* iptr, const nbr_t* iidx,
                                std::int32_t queued, std::int32_t* stamp,
                                const std::uint8_t* selected, const double* cur, idx_t* next,
                                counter_t* size) {
    D2_FOR_EACH(t, np) {
        queue_row(iptr, iidx, picks[t], queued, stamp, selected, cur, next, size);
    }
}

// A pick and its pick-time score; a comes before b in the sequential order if its key
// (score, then lower id) is larger.
struct Pick {
    double score;
    idx_t node;
};
bool pick_before(const Pick& a, const Pick& b) {
    return key_less(b.score, b.node, a.score, a.node);
}

enum class Outcome { kDone, kStopped, kNaN };

// The rounds on the device (the graph and its in-neighbour rows already there). Appends
// every pick with its pick-time score to picks; if fewer than n_keep were made, leaves
// the scores and selected flags in cur_h and selected_h for the negative phase.
Outcome run_rounds(idx_t n, const idx_t* indptr, const nbr_t* indices, const idx_t* iptr,
                   const nbr_t* iidx, const float* idist, bool symmetric, const double* scores,
                   idx_t n_keep, double gamma_r, bool absolute, const std::function<bool()>& stop,
                   std::vector<Pick>& picks, std::vector<double>& cur_h,
                   std::vector<std::uint8_t>& selected_h) {
    DeviceArray<double> d_cur(scores, n), d_pick_score(n);
    DeviceArray<std::uint8_t> d_selected(n);
    DeviceArray<std::int32_t> d_stamp(n), d_picked_in(n);
    DeviceArray<idx_t> d_cand(n), d_next(n), d_picks(n), d_touched(n);
    DeviceArray<counter_t> d_size(1);
    DeviceArray<int> d_flag(1);
    d_selected.fill_bytes(0, n);
    d_stamp.fill_bytes(0xff, n);  // -1: never stamped
    d_picked_in.fill_bytes(0xff, n);
    double* cur = d_cur.get();
    std::uint8_t* selected = d_selected.get();
    std::int32_t* stamp = d_stamp.get();
    counter_t* size = d_size.get();
    idx_t* cand = d_cand.get();
    idx_t* next = d_next.get();

    d_size.fill_bytes(0, 1);
    nonnegative_kernel<<<blocks_for(n), kThreads>>>(n, cur, cand, size);
    D2_CUDA_LAUNCHED(nonnegative_kernel);
    idx_t nc = static_cast<idx_t>(d_size.read());

    // the best n_keep picks; top() is the worst of them: the bar, once there are n_keep
    std::priority_queue<Pick, std::vector<Pick>, bool (*)(const Pick&, const Pick&)> best(
        pick_before);
    std::vector<idx_t> new_nodes;
    std::vector<double> new_scores;
    for (std::int32_t round = 0; nc > 0; ++round) {
        if (stop()) return Outcome::kStopped;
        if (static_cast<idx_t>(best.size()) == n_keep) {  // can an unpicked node still enter?
            const Pick bar = best.top();
            d_flag.fill_bytes(0, 1);
            beats_kernel<<<blocks_for(nc), kThreads>>>(nc, cand, cur, bar.score, bar.node,
                                                       d_flag.get());
            D2_CUDA_LAUNCHED(beats_kernel);
            if (d_flag.read() == 0) break;
        }
        // picks: appended to d_picks after the earlier ones
        const idx_t before = static_cast<idx_t>(picks.size());
        idx_t* now = d_picks.get() + before;
        d_size.fill_bytes(0, 1);
        local_max_kernel<<<blocks_for(nc), kThreads>>>(nc, cand, indptr, indices, iptr, iidx,
                                                       symmetric, selected, cur, now, size);
        D2_CUDA_LAUNCHED(local_max_kernel);
        const idx_t np = static_cast<idx_t>(d_size.read());
        if (np > 0) {
            mark_picks_kernel<<<blocks_for(np), kThreads>>>(np, now, round, cur, selected,
                                                            d_picked_in.get(),
                                                            d_pick_score.get() + before);
            D2_CUDA_LAUNCHED(mark_picks_kernel);
            new_nodes.resize(np);
            new_scores.resize(np);
            d_picks.download(new_nodes.data(), np, before);
            d_pick_score.download(new_scores.data(), np, before);
            for (idx_t t = 0; t < np; ++t) {
                const Pick pick{new_scores[t], new_nodes[t]};
                picks.push_back(pick);
                best.push(pick);
                if (static_cast<idx_t>(best.size()) > n_keep) best.pop();
            }
        }
        if (stop()) return Outcome::kStopped;
        // updates: the touched nodes pull them
        d_size.fill_bytes(0, 1);
        if (np > 0) {
            touch_kernel<<<blocks_for(np), kThreads>>>(np, now, indptr, indices, selected, round,
                                                       stamp, d_touched.get(), size);
            D2_CUDA_LAUNCHED(touch_kernel);
        }
        const idx_t nt = static_cast<idx_t>(d_size.read());
        d_flag.fill_bytes(0, 1);
        if (nt > 0) {
            pull_kernel<<<blocks_for(nt), kThreads>>>(nt, d_touched.get(), iptr, iidx, idist,
                                                      d_picked_in.get(), round, gamma_r,
                                                      absolute, cur, d_flag.get());
            D2_CUDA_LAUNCHED(pull_kernel);
        }
        // next candidates: nodes whose own score, a neighbour's score or a neighbour's
        // selection changed
        const std::int32_t queued = -2 - round;  // a second stamp value for this round
        d_size.fill_bytes(0, 1);
        if (nt > 0) {
            queue_touched_kernel<<<blocks_for(nt), kThreads>>>(nt, d_touched.get(), indptr,
                                                               indices, iptr, iidx, symmetric,
                                                               queued, stamp, selected, cur,
                                                               next, size);
            D2_CUDA_LAUNCHED(queue_touched_kernel);
        }
        if (!symmetric && np > 0) {
            queue_in_kernel<<<blocks_for(np), kThreads>>>(np, now, iptr, iidx, queued, stamp,
                                                          selected, cur, next, size);
            D2_CUDA_LAUNCHED(queue_in_kernel);
        }
        nc = static_cast<idx_t>(d_size.read());
        if (d_flag.read() != 0) return Outcome::kNaN;
        std::swap(cand, next);
    }
    if (static_cast<idx_t>(picks.size()) < n_keep) {
        cur_h.resize(n);
        selected_h.resize(n);
        d_cur.download(cur_h.data(), n);
        d_selected.download(selected_h.data(), n);
    }
    return Outcome::kDone;
}

}  // namespace

idx_t select_rounds(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
                    const double* scores, idx_t n_keep, double gamma_r, bool absolute,
                    idx_t* out, const std::function<bool()>& stop) {
    if (n == 0 || n_keep == 0) return 0;
    for (idx_t i = 0; i < n; ++i)
        if (std::isnan(scores[i])) return 0;
    auto poll = [&stop] { return stop(); };
    // in-neighbours: the graph itself when symmetric, else its transpose (on the host)
    const idx_t symmetric_or_stop = is_symmetric(n, indptr, indices, distances, poll);
    if (symmetric_or_stop == kStopped) return kStopped;
    const bool symmetric = symmetric_or_stop == 1;
    std::vector<Pick> picks;  // all picks of the rounds, in the order found
    std::vector<double> cur;
    std::vector<std::uint8_t> selected;
    {
        std::vector<idx_t> tptr;
        std::vector<nbr_t> tidx;
        std::vector<float> tdist;
        if (!symmetric) transpose(n, indptr, indices, distances, tptr, tidx, tdist);
        if (stop()) return kStopped;
        const idx_t nnz = indptr[n];
        DeviceArray<idx_t> d_indptr(indptr, n + 1);
        DeviceArray<nbr_t> d_indices(indices, nnz);
        DeviceArray<float> d_distances(distances, nnz);
        DeviceArray<idx_t> d_tptr(tptr.data(), static_cast<idx_t>(tptr.size()));
        DeviceArray<nbr_t> d_tidx(tidx.data(), static_cast<idx_t>(tidx.size()));
        DeviceArray<float> d_tdist(tdist.data(), static_cast<idx_t>(tdist.size()));
        const Outcome outcome = run_rounds(
            n, d_indptr.get(), d_indices.get(), symmetric ? d_indptr.get() : d_tptr.get(),
            symmetric ? d_indices.get() : d_tidx.get(),
            symmetric ? d_distances.get() : d_tdist.get(), symmetric, scores, n_keep, gamma_r,
            absolute, stop, picks, cur, selected);
        if (outcome == Outcome::kStopped) return kStopped;
        if (outcome == Outcome::kNaN) return 0;
    }  // device memory freed here
    std::sort(picks.begin(), picks.end(), pick_before);
    const idx_t done = std::min<idx_t>(n_keep, static_cast<idx_t>(picks.size()));
    for (idx_t t = 0; t < done; ++t) out[t] = picks[t].node;
    if (done == n_keep) return done;
    // negative phase: every unpicked score is < 0; the lazy heap on the host takes over
    const idx_t more = select_heap_from(n, indptr, indices, distances, cur, selected,
                                        n_keep - done, gamma_r, absolute, out + done, poll);
    return more == kStopped ? kStopped : done + more;
}

int device_count(std::string* why) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();  // leave no error behind for later calls
        if (why != nullptr)
            *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err) + " (" +
                   cudaGetErrorName(err) + ")";
        return 0;
    }
    if (count == 0 && why != nullptr) *why = "no CUDA device";
    return count;
}

void forward(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
             const double* scores, double gamma_f, bool product, double* out) {
    if (n == 0) return;
    const idx_t nnz = indptr[n];
    DeviceArray<idx_t> d_indptr(indptr, n + 1);
    DeviceArray<nbr_t> d_indices(indices, nnz);
    DeviceArray<float> d_distances(distances, nnz);
    DeviceArray<double> d_scores(scores, n), d_out(n);
    forward_kernel<<<blocks_for(n), kThreads>>>(n, d_indptr.get(), d_indices.get(),
                                                d_distances.get(), d_scores.get(), gamma_f,
                                                product, nnz, d_out.get());
    D2_CUDA_LAUNCHED(forward_kernel);
    d_out.download(out, n);
}

}  // namespace cuda
}  // namespace d2
