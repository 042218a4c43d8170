// Shared definitions for the d2fast kernels: plain C++ on raw pointers, no Python.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__CUDACC__)
#define D2_HD __host__ __device__ inline
#else
#define D2_HD inline
#endif

// Prefetch for reading on the CPU: hides the latency of the random gathers
// (s[indices[p]]) that dominate message passing on graphs larger than the cache.
#if defined(__CUDA_ARCH__) || !defined(__GNUC__)
#define D2_PREFETCH(addr) ((void)0)
#else
#define D2_PREFETCH(addr) __builtin_prefetch(addr)
#endif

namespace d2 {

using idx_t = std::int64_t;  // row offsets (indptr) and node ids in kNN lists
using nbr_t = std::int32_t;  // neighbour ids stored in CSR indices

// Below this many nodes a loop runs on one thread: waking a team costs more than the
// work, and far more when another process holds a core.
constexpr idx_t kParallelMin = 50000;

// Cooperative cancellation: long kernels call stop() every kPollEvery steps (from one
// thread, outside parallel regions) and return kStopped once it says true. The Python
// binding's stop() checks for Ctrl-C; the default never stops.
struct NeverStop {
    bool operator()() const { return false; }
};
constexpr idx_t kPollEvery = idx_t{1} << 12;
constexpr idx_t kStopped = -1;

// Loops over rows poll stop() between blocks of about kPollEdges edges (a few 10 ms on one
// core), so Ctrl-C stops them within ~0.1 s whatever the graph's size and degree.
constexpr idx_t kPollEdges = idx_t{1} << 18;
inline idx_t poll_rows(idx_t n, idx_t nnz) {
    const idx_t per_row = nnz / (n > 0 ? n : 1) + 1;
    return kPollEdges / per_row > 1024 ? kPollEdges / per_row : 1024;
}

// body(lo, hi) on the blocks [lo, hi) of `rows` rows covering [0, n), stop() polled
// between them; false if it asked to stop.
template <class Stop, class Body>
bool for_row_blocks(idx_t n, idx_t rows, Stop& stop, Body body) {
    for (idx_t lo = 0; lo < n; lo += rows) {
        if (lo > 0 && stop()) return false;
        body(lo, lo + rows < n ? lo + rows : n);
    }
    return true;
}

// Key order of the selection: larger score first, ties to the lower node id.
D2_HD bool key_less(double sa, idx_t ia, double sb, idx_t ib) {
    return sa < sb || (sa == sb && ia > ib);
}

}  // namespace d2
