// Host interface of the CUDA kernels (kernels.cu): plain C++, no CUDA headers, so the
// binding (bindings.cpp, built by the host compiler) includes it alone.
//
// All arrays are host arrays; the functions copy to and from the current device, run
// the kernels there and throw std::runtime_error with CUDA's message on any CUDA error.
#pragma once
#include <functional>
#include <string>

#include "common.h"

namespace d2 {
namespace cuda {

// Number of usable CUDA devices. 0 when there is none or no (recent enough) driver;
// why, if given, then receives CUDA's reason.
int device_count(std::string* why = nullptr);

// Forward message passing (forward.h, SPEC 3), one GPU thread per row.
void forward(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
             const double* scores, double gamma_f, bool product, double* out);

// Selection in rounds (select_rounds.h, SPEC 4): the rounds run on the GPU, the negative
// phase on the CPU heap (select_heap_from). Same contract as d2::select_rounds: returns
// the picks made (< n_keep only if a score became NaN), or kStopped if stop() (polled
// once per round) asked to stop.
idx_t select_rounds(idx_t n, const idx_t* indptr, const nbr_t* indices, const float* distances,
                    const double* scores, idx_t n_keep, double gamma_r, bool absolute,
                    idx_t* out, const std::function<bool()>& stop);

}  // namespace cuda
}  // namespace d2
