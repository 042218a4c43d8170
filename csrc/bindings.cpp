// pybind11 bindings of the d2fast kernels: dtype/shape checks, output allocation,
// GIL release. No algorithm code lives here; the Python layer validates values.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "forward.h"
#include "py_arrays.h"
#include "graph_renumber.h"
#include "graph_symmetrize.h"
#include "knn_rerank.h"
#include "knn_topk.h"
#include "select_heap.h"
#include "select_rounds.h"

namespace py = pybind11;
using d2::idx_t;
using d2::nbr_t;
using d2py::carray;
using d2py::aligned;
using d2py::CheckSignals;
using d2py::data_of;

// Hand a std::vector to NumPy without copying it.
template <class T>
static py::array_t<T> to_numpy(std::vector<T>&& v) {
    auto* owned = new std::vector<T>(std::move(v));
    py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(static_cast<py::ssize_t>(owned->size()), owned->data(), free_when_done);
}

static void check_csr(const py::array& indptr, const py::array& indices,
                      const py::array& distances) {
    data_of<idx_t>(indptr, "indptr", 1);
    data_of<nbr_t>(indices, "indices", 1);
    data_of<float>(distances, "distances", 1);
    if (indptr.size() < 1 || indices.size() != distances.size())
        throw py::value_error("indptr/indices/distances sizes do not form a CSR graph");
}

// A CSR graph of `rows` nodes from `kernel(indptr, indices, distances)` (the GIL released;
// false: Ctrl-C stopped it) as the tuple (indptr, indices, distances) of NumPy arrays.
template <class Kernel>
static py::tuple csr_tuple(idx_t rows, Kernel kernel) {
    py::array_t<idx_t> indptr(rows + 1);
    idx_t* ip = indptr.mutable_data();
    std::vector<nbr_t> indices;
    std::vector<float> distances;
    bool done;
    {
        py::gil_scoped_release release;
        done = kernel(ip, indices, distances);
    }
    if (!done) throw py::error_already_set();
    return py::make_tuple(indptr, to_numpy(std::move(indices)), to_numpy(std::move(distances)));
}

static py::tuple build_csr(py::array knn_idx, py::array knn_dist, bool symmetric) {
    knn_idx = aligned(knn_idx), knn_dist = aligned(knn_dist);
    const idx_t* I = data_of<idx_t>(knn_idx, "knn_idx", 2);
    const float* D = data_of<float>(knn_dist, "knn_dist", 2);
    if (knn_idx.shape(0) != knn_dist.shape(0) || knn_idx.shape(1) != knn_dist.shape(1))
        throw py::value_error("knn_idx and knn_dist must have the same shape");
    const idx_t n = knn_idx.shape(0), c = knn_idx.shape(1);
    return csr_tuple(n, [&](idx_t* ip, std::vector<nbr_t>& indices,
                            std::vector<float>& distances) {
        return d2::build_csr(n, c, I, D, symmetric, ip, indices, distances, CheckSignals{});
    });
}

static py::tuple renumber(py::array indptr, py::array indices, py::array distances,
                          py::array rows) {
    indptr = aligned(indptr), indices = aligned(indices), distances = aligned(distances);
    rows = aligned(rows);
    check_csr(indptr, indices, distances);
    const idx_t* r = data_of<idx_t>(rows, "rows", 1);
    const idx_t n = indptr.size() - 1, m = rows.size();
    for (idx_t t = 0; t < m; ++t)
        if (r[t] < 0 || r[t] >= n) throw py::value_error("rows must lie in [0, n)");
    const auto* ptr = static_cast<const idx_t*>(indptr.data());
    const auto* idx = static_cast<const nbr_t*>(indices.data());
    const auto* dist = static_cast<const float*>(distances.data());
    return csr_tuple(m, [&](idx_t* op, std::vector<nbr_t>& out_indices,
                            std::vector<float>& out_distances) {
        return d2::renumber(n, ptr, idx, dist, m, r, op, out_indices, out_distances,
                            CheckSignals{});
    });
}

static py::array_t<double> forward(py::array indptr, py::array indices, py::array distances,
                                   py::array scores, double gamma_f, bool product) {
    indptr = aligned(indptr), indices = aligned(indices), distances = aligned(distances);
    scores = aligned(scores);
    check_csr(indptr, indices, distances);
    const idx_t n = indptr.size() - 1;
    const double* s = data_of<double>(scores, "scores", 1);
    if (scores.size() != n) throw py::value_error("scores must have one entry per node");
    py::array_t<double> out(n);
    double* o = out.mutable_data();
    bool done;
    {
        py::gil_scoped_release release;
        done = d2::forward(n, static_cast<const idx_t*>(indptr.data()),
                           static_cast<const nbr_t*>(indices.data()),
                           static_cast<const float*>(distances.data()), s, gamma_f, product, o,
                           CheckSignals{});
    }
    if (!done) throw py::error_already_set();
    return out;
}

// Shared by select_heap and select_rounds: checks, output, GIL release, NaN error.
template <class Kernel>
static py::array_t<idx_t> run_select(Kernel kernel, py::array indptr, py::array indices,
                                     py::array distances, py::array scores, idx_t n_keep,
                                     double gamma_r, bool absolute) {
    indptr = aligned(indptr), indices = aligned(indices), distances = aligned(distances);
    scores = aligned(scores);
    check_csr(indptr, indices, distances);
    const idx_t n = indptr.size() - 1;
    const double* s = data_of<double>(scores, "scores", 1);
    if (scores.size() != n) throw py::value_error("scores must have one entry per node");
    if (n_keep < 0 || n_keep > n) throw py::value_error("n_keep must satisfy 0 <= n_keep <= n");
    py::array_t<idx_t> out(n_keep);
    idx_t* o = out.mutable_data();
    idx_t picked;
    {
        py::gil_scoped_release release;
        picked = kernel(n, static_cast<const idx_t*>(indptr.data()),
                        static_cast<const nbr_t*>(indices.data()),
                        static_cast<const float*>(distances.data()), s, n_keep, gamma_r,
                        absolute, o, CheckSignals{});
    }
    d2py::check_picks(picked, n_keep);
    return out;
}

static py::array_t<idx_t> select_heap(const py::array& indptr, const py::array& indices,
                                      const py::array& distances, const py::array& scores,
                                      idx_t n_keep, double gamma_r, bool absolute) {
    return run_select(d2::select_heap<CheckSignals>, indptr, indices, distances, scores,
                      n_keep, gamma_r, absolute);
}

static py::array_t<idx_t> select_rounds(const py::array& indptr, const py::array& indices,
                                        const py::array& distances, const py::array& scores,
                                        idx_t n_keep, double gamma_r, bool absolute) {
    return run_select(d2::select_rounds<CheckSignals>, indptr, indices, distances, scores,
                      n_keep, gamma_r, absolute);
}

static py::array_t<double> pair_keys(py::array X, py::array rows, py::array cand,
                                     bool cosine) {
    X = aligned(X), rows = aligned(rows), cand = aligned(cand);
    const float* x = data_of<float>(X, "X", 2);
    const idx_t* r = data_of<idx_t>(rows, "rows", 1);
    const idx_t* cd = data_of<idx_t>(cand, "cand", 2);
    const idx_t n = X.shape(0), d = X.shape(1), m = cand.shape(0), c = cand.shape(1);
    if (rows.size() != m) throw py::value_error("rows must have one entry per row of cand");
    for (idx_t i = 0; i < m; ++i)
        if (r[i] < 0 || r[i] >= n) throw py::value_error("rows must lie in [0, n)");
    for (idx_t i = 0; i < m * c; ++i)
        if (cd[i] < -1 || cd[i] >= n) throw py::value_error("cand must lie in [-1, n)");
    py::array_t<double> keys({m, c});
    double* k = keys.mutable_data();
    {
        py::gil_scoped_release release;
        d2::pair_keys(d, x, m, c, r, cd, cosine, k);
    }
    return keys;
}

// In place: the output rows are updated, so the IVF scan merges list after list into them.
static void topk_merge(py::array D, py::array ids, py::array dest, py::array outD,
                       py::array outI, py::object bound) {
    D = aligned(D), ids = aligned(ids), dest = aligned(dest);
    const float* d = data_of<float>(D, "D", 2);
    const idx_t m = D.shape(0), L = D.shape(1);
    const idx_t* id = data_of<idx_t>(ids, "ids", ids.ndim() == 2 ? 2 : 1);
    if (ids.ndim() == 1 ? ids.size() != L : (ids.shape(0) != m || ids.shape(1) != L))
        throw py::value_error("ids must have shape (L,) or the shape of D");
    const idx_t* dst = data_of<idx_t>(dest, "dest", 1);
    if (dest.size() != m) throw py::value_error("dest must have one entry per row of D");
    data_of<float>(outD, "outD", 2), data_of<idx_t>(outI, "outI", 2);
    if (!(outD.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) ||
        !(outI.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error("outD and outI must be aligned");
    const idx_t M = outD.shape(0), c = outD.shape(1);
    if (outI.shape(0) != M || outI.shape(1) != c)
        throw py::value_error("outD and outI must have the same shape");
    for (idx_t r = 0; r < m; ++r)
        if (dst[r] < 0 || dst[r] >= M) throw py::value_error("dest must lie in [0, len(outD))");
    py::array b;
    const float* bd = nullptr;
    if (!bound.is_none()) {
        b = aligned(bound.cast<py::array>());
        bd = data_of<float>(b, "bound", 1);
        if (b.size() != m) throw py::value_error("bound must have one entry per row of D");
    }
    float* od = static_cast<float*>(outD.mutable_data());  // raises if read-only
    idx_t* oi = static_cast<idx_t*>(outI.mutable_data());
    py::gil_scoped_release release;
    d2::topk_merge(m, L, d, id, ids.ndim() == 2 ? L : 0, dst, bd, c, od, oi);
}

static int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

PYBIND11_MODULE(_core, m) {
    m.doc() = "d2fast C++/OpenMP kernels (see d2fast/_backends/reference.py for the contract)";
    m.def("build_csr", &build_csr, py::arg("knn_idx"), py::arg("knn_dist"), py::arg("symmetric"));
    m.def("renumber", &renumber, py::arg("indptr"), py::arg("indices"), py::arg("distances"),
          py::arg("rows"));
    m.def("forward", &forward, py::arg("indptr"), py::arg("indices"), py::arg("distances"),
          py::arg("scores"), py::arg("gamma_f"), py::arg("product"));
    m.def("select_heap", &select_heap, py::arg("indptr"), py::arg("indices"),
          py::arg("distances"), py::arg("scores"), py::arg("n_keep"), py::arg("gamma_r"),
          py::arg("absolute"));
    m.def("select_rounds", &select_rounds, py::arg("indptr"), py::arg("indices"),
          py::arg("distances"), py::arg("scores"), py::arg("n_keep"), py::arg("gamma_r"),
          py::arg("absolute"));
    m.def("pair_keys", &pair_keys, py::arg("X"), py::arg("rows"), py::arg("cand"),
          py::arg("cosine"));
    m.def("topk_merge", &topk_merge, py::arg("D"), py::arg("ids"), py::arg("dest"),
          py::arg("outD"), py::arg("outI"), py::arg("bound") = py::none());
    m.def("max_threads", &max_threads, "OpenMP threads the kernels use (1 if built serially)");
}
