"""Build the d2fast C++/OpenMP extension ``d2fast._core``.

Environment variables
---------------------
D2FAST_NO_EXT=1   skip the extension (d2fast then runs on numba or NumPy).
D2FAST_NATIVE=1   add ``-march=native`` (faster, not portable to other CPUs).
D2FAST_NO_OPENMP=1  build the kernels serially even if the compiler has OpenMP.
D2FAST_CUDA=0|1   the CUDA extension ``d2fast._cuda`` (``csrc/cuda/``): by default it is
                  built when ``nvcc`` is found (on PATH, in $CUDA_HOME/bin or
                  /usr/local/cuda/bin) and skipped with a warning if that build fails;
                  0 skips it, 1 requires it (no nvcc or a failed build is then an error).
D2FAST_CUDA_ARCH  nvcc's ``-arch`` for it (default ``all-major``: sm_75, sm_80, sm_90,
                  sm_100, sm_110, sm_120 and PTX for newer GPUs), e.g. ``sm_86`` or ``native``.
D2FAST_SANITIZE   sanitizers for ``d2fast._core`` only (not CUDA), e.g. ``address,undefined``:
                  adds ``-fsanitize=...``, ``-fno-sanitize-recover=undefined`` (a UBSan finding
                  aborts) and ``-fno-omit-frame-pointer -g -O1``. Python is not instrumented,
                  so import it with the ASan runtime preloaded; see tests/README.md.
"""
import os
import shutil
import subprocess
import sys
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
        sanitize = sanitizer_flags()
        for ext in self.extensions:
            extra = sanitize if ext.name == "d2fast._core" else []
            ext.extra_compile_args += flags + omp + extra  # extra's -O1 overrides -O3
            ext.extra_link_args += omp + extra
        self.host_flags = flags + omp
        self.failed = []
        super().build_extensions()
        # a failed optional extension is not installed (nor copied by --inplace/editable)
        self.extensions = [ext for ext in self.extensions if ext not in self.failed]

    def build_extension(self, ext):
        if not getattr(ext, "cuda_sources", None):
            return super().build_extension(ext)
        try:
            ext.extra_objects = [self.nvcc_compile(ext, src) for src in ext.cuda_sources]
            super().build_extension(ext)
        except Exception as exc:
            if os.environ.get("D2FAST_CUDA") == "1":
                raise
            self.failed.append(ext)
            print(f"d2fast: WARNING: building the CUDA extension {ext.name} failed "
                  f"({exc}); installing without the 'cuda' backend (D2FAST_CUDA=0 skips "
                  "the attempt, D2FAST_CUDA=1 makes it an error)", file=sys.stderr)

    def nvcc_compile(self, ext, src):
        """Compile one .cu file with nvcc into the build temp dir; returns the object."""
        obj = os.path.join(self.build_temp, "cuda", os.path.basename(src) + ".o")
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        arch = os.environ.get("D2FAST_CUDA_ARCH") or "all-major"
        cmd = [ext.nvcc, "-c", src, "-o", obj, "-O3", "--std=c++17", f"-arch={arch}",
               "--threads", "0",  # one host thread per architecture
               "--fmad=false",  # no FMA contraction on the device: the CPU's arithmetic
               "--expt-relaxed-constexpr",  # host lambdas in shared D2_HD templates
               "-Xcompiler", ",".join(["-fPIC"] + self.host_flags)]
        cmd += [f"-I{d}" for d in ext.include_dirs]
        print(" ".join(cmd))
        subprocess.run(cmd, check=True)
        return obj


def sanitizer_flags():
    """Compile and link flags of D2FAST_SANITIZE (e.g. "address,undefined"); [] if unset."""
    wanted = os.environ.get("D2FAST_SANITIZE", "").strip()
    if not wanted:
        return []
    flags = [f"-fsanitize={wanted}", "-fno-omit-frame-pointer", "-g", "-O1"]
    if "undefined" in wanted.split(","):
        flags.append("-fno-sanitize-recover=undefined")
    return flags


def find_nvcc():
    """nvcc on PATH, in $CUDA_HOME/bin or in /usr/local/cuda/bin; None if absent."""
    for path in (shutil.which("nvcc"),
                 *(os.path.join(os.environ[var], "bin", "nvcc")
                   for var in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(var)),
                 "/usr/local/cuda/bin/nvcc"):
        if path and os.access(path, os.X_OK):
            return path
    return None


def find_cudart(nvcc):
    """The directory of CUDA's static runtime library (libcudart_static.a) for nvcc."""
    # nvcc may be a wrapper script (e.g. /usr/local/bin/nvcc): ask it where its tree is
    out = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                         capture_output=True, text=True)
    tops = [line.split("=", 1)[1].strip() for line in (out.stdout + out.stderr).splitlines()
            if line.startswith("#$ TOP=")]
    roots = tops + [os.environ.get("CUDA_HOME", ""), os.environ.get("CUDA_PATH", ""),
                    os.path.dirname(os.path.dirname(os.path.realpath(nvcc))), "/usr/local/cuda"]
    for root in filter(None, roots):
        for lib in ("lib64", os.path.join("targets", "x86_64-linux", "lib"), "lib"):
            if os.path.exists(os.path.join(root, lib, "libcudart_static.a")):
                return os.path.realpath(os.path.join(root, lib))
    raise RuntimeError(f"libcudart_static.a not found for {nvcc} (set CUDA_HOME)")


def cuda_extension():
    """The d2fast._cuda extension, or None when it is not to be built (see above)."""
    want = os.environ.get("D2FAST_CUDA", "")
    if want == "0":
        return None
    nvcc = find_nvcc()
    if nvcc is None:
        if want == "1":
            raise RuntimeError("D2FAST_CUDA=1 but nvcc was not found (PATH, $CUDA_HOME/bin, "
                               "/usr/local/cuda/bin)")
        return None
    try:
        libdir = find_cudart(nvcc)
    except Exception as exc:
        if want == "1":
            raise
        print(f"d2fast: WARNING: not building d2fast._cuda: {exc}", file=sys.stderr)
        return None
    ext = Pybind11Extension(
        "d2fast._cuda",
        ["csrc/cuda/bindings.cpp"],
        include_dirs=["csrc"],
        cxx_std=17,
        # the static CUDA runtime: the module imports (and reports 0 devices) on machines
        # without CUDA libraries; a GPU needs only its driver
        extra_link_args=[f"-L{libdir}", "-lcudart_static", "-ldl", "-lrt", "-lpthread"],
        depends=["csrc/cuda/kernels.cu", "csrc/cuda/kernels.h", "csrc/common.h",
                 "csrc/forward.h", "csrc/rounds_body.h", "csrc/select_heap.h",
                 "csrc/select_rounds.h", "csrc/py_arrays.h"],
    )
    ext.nvcc = nvcc
    ext.cuda_sources = ["csrc/cuda/kernels.cu"]
    return ext


ext_modules = []
if os.environ.get("D2FAST_NO_EXT") != "1":
    ext_modules.append(
        Pybind11Extension(
            "d2fast._core",
            ["csrc/bindings.cpp"],
            include_dirs=["csrc"],
            cxx_std=17,
            depends=[os.path.join("csrc", f) for f in sorted(os.listdir("csrc"))
                     if f.endswith(".h")],
        )
    )
    cuda = cuda_extension()
    if cuda is not None:
        ext_modules.append(cuda)

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
