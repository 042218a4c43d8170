"""Build the d2fast C++/OpenMP extension ``d2fast._core``.

Environment variables
---------------------
D2FAST_NO_EXT=1   skip the extension (d2fast then runs on numba or NumPy).
D2FAST_NATIVE=1   add ``-march=native`` (faster, not portable to other CPUs).
D2FAST_NO_OPENMP=1  build the kernels serially even if the compiler has OpenMP.
"""
import os
import tempfile

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup


def has_flag(compiler, flags):
    """Return True if ``compiler`` compiles and links a one-line file with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.cpp")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main() { return omp_get_max_threads() < 0; }\n"
                    if "-fopenmp" in flags else "int main() { return 0; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Probe OpenMP and -march=native the way hnswlib probes its flags."""

    def build_extensions(self):
        flags = ["-O3", "-fvisibility=hidden", "-ffp-contract=off"]
        if os.environ.get("D2FAST_NATIVE") == "1" and has_flag(self.compiler, ["-march=native"]):
            flags.append("-march=native")
        omp = [] if os.environ.get("D2FAST_NO_OPENMP") == "1" else ["-fopenmp"]
        if omp and not has_flag(self.compiler, omp):
            print("d2fast: compiler has no OpenMP, building the kernels serially")
            omp = []
        for ext in self.extensions:
            ext.extra_compile_args += flags + omp
            ext.extra_link_args += omp
        super().build_extensions()


ext_modules = []
if os.environ.get("D2FAST_NO_EXT") != "1":
    ext_modules.append(
        Pybind11Extension(
            "d2fast._core",
            ["csrc/bindings.cpp"],
            include_dirs=["csrc"],
            cxx_std=17,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
