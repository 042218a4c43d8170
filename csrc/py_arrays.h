// Helpers of the pybind11 binding files (bindings.cpp, cuda/bindings.cpp): array checks
// and Ctrl-C polling. Not included by the kernels, which stay free of Python.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "common.h"

namespace d2py {
namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;  // no forcecast: wrong dtypes are errors

template <class T>
inline const T* data_of(const py::array& a, const char* name, py::ssize_t ndim) {
    if (!py::isinstance<carray<T>>(a) || !(a.flags() & py::array::c_style))
        throw py::type_error(std::string(name) + " must be a C-contiguous array of dtype " +
                             py::str(py::dtype::of<T>()).cast<std::string>());
    if (a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D");
    return static_cast<const T*>(a.data());
}

// `a` itself, or an aligned copy when its data is misaligned for its dtype (a memmap of an
// .npz member, a view at a byte offset): the kernels read through T*, and a misaligned T*
// is undefined behaviour (UBSan: "load of misaligned address"). Call before data_of.
inline py::array aligned(py::array a) {
    if (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) return a;
    return py::module_::import("numpy").attr("array")(a);  // a copy, aligned
}

// Ctrl-C during a kernel: polled by the kernels with the GIL released; a pending signal
// sets the Python error (KeyboardInterrupt) and stops the kernel, which then returns.
struct CheckSignals {
    bool operator()() const {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    }
};

// After a selection kernel returned `picked`: Ctrl-C -> KeyboardInterrupt (already set by
// CheckSignals), fewer than n_keep picks -> FloatingPointError (a score became NaN).
inline void check_picks(d2::idx_t picked, d2::idx_t n_keep) {
    if (picked == d2::kStopped) throw py::error_already_set();
    if (picked < n_keep) {
        const std::string msg = "select: scores became NaN during selection (" +
                                std::to_string(picked) + " of " + std::to_string(n_keep) +
                                " picks made)";
        PyErr_SetString(PyExc_FloatingPointError, msg.c_str());
        throw py::error_already_set();
    }
}

}  // namespace d2py
