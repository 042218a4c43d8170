// pybind11 bindings of the CUDA kernels (d2fast._cuda): dtype/shape checks, output
// allocation, GIL release. Built by the host compiler; the CUDA code is kernels.cu, linked
// in as an object compiled by nvcc (setup.py). CUDA errors arrive as RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "kernels.h"
#include "py_arrays.h"

namespace py = pybind11;
using d2::idx_t;
using d2::nbr_t;
using d2py::CheckSignals;
using d2py::data_of;

// The CSR graph and its scores, checked for dtypes and sizes (values: the Python layer).
struct Csr {
    idx_t n;
    const idx_t* indptr;
    const nbr_t* indices;
    const float* distances;
    const double* scores;
};

static Csr check_csr(const py::array& indptr, const py::array& indices,
                     const py::array& distances, const py::array& scores) {
    Csr g{indptr.size() - 1, data_of<idx_t>(indptr, "indptr", 1),
          data_of<nbr_t>(indices, "indices", 1), data_of<float>(distances, "distances", 1),
          data_of<double>(scores, "scores", 1)};
    if (g.n < 0 || indices.size() != distances.size() || g.indptr[g.n] != indices.size())
        throw py::value_error("indptr/indices/distances sizes do not form a CSR graph");
    if (scores.size() != g.n) throw py::value_error("scores must have one entry per node");
    return g;
}

static py::array_t<double> forward(const py::array& indptr, const py::array& indices,
                                   const py::array& distances, const py::array& scores,
                                   double gamma_f, bool product) {
    const Csr g = check_csr(indptr, indices, distances, scores);
    py::array_t<double> out(g.n);
    double* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        d2::cuda::forward(g.n, g.indptr, g.indices, g.distances, g.scores, gamma_f, product, o);
    }
    return out;
}

static py::array_t<idx_t> select_rounds(const py::array& indptr, const py::array& indices,
                                        const py::array& distances, const py::array& scores,
                                        idx_t n_keep, double gamma_r, bool absolute) {
    const Csr g = check_csr(indptr, indices, distances, scores);
    if (n_keep < 0 || n_keep > g.n) throw py::value_error("n_keep must satisfy 0 <= n_keep <= n");
    py::array_t<idx_t> out(n_keep);
    idx_t* o = out.mutable_data();
    idx_t picked;
    {
        py::gil_scoped_release release;
        picked = d2::cuda::select_rounds(g.n, g.indptr, g.indices, g.distances, g.scores, n_keep,
                                         gamma_r, absolute, o, CheckSignals{});
    }
    d2py::check_picks(picked, n_keep);
    return out;
}

static std::string device_status() {
    std::string why;
    const int count = d2::cuda::device_count(&why);
    return count > 0 ? std::to_string(count) + " usable CUDA device(s)" : why;
}

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "d2fast CUDA kernels (see d2fast/_backends/reference.py for the contract)";
    m.def("forward", &forward, py::arg("indptr"), py::arg("indices"), py::arg("distances"),
          py::arg("scores"), py::arg("gamma_f"), py::arg("product"));
    m.def("select_rounds", &select_rounds, py::arg("indptr"), py::arg("indices"),
          py::arg("distances"), py::arg("scores"), py::arg("n_keep"), py::arg("gamma_r"),
          py::arg("absolute"));
    m.def("device_count", [] { return d2::cuda::device_count(); },
          "Number of usable CUDA devices (0 without a GPU or driver; never raises)");
    m.def("device_status", &device_status,
          "The device count in words, or why no CUDA device is usable");
}
