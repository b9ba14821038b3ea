"""cffi out-of-line API build of `sandbox._native` (spawn.c + mounts.c + netns.c + extract.c).

The cdef is the part of sbx.h between the CDEF markers, so the header stays the one source of
truth. pause.c is a separate static program, built by setup.py.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = (HERE / "sbx.h").read_text()
CDEF = HEADER.split("/* CDEF BEGIN */", 1)[1].split("/* CDEF END */", 1)[0]

# The runtime's receiver of the stages' trace records (sandbox/native.py defines it; its address
# goes in struct sbx_spawn_res.on_trace only while tracing).
TRACE_CALLBACK = 'extern "Python" void sbx_py_trace(void *, const struct sbx_trace *);'

ffibuilder = FFI()
ffibuilder.cdef(CDEF + TRACE_CALLBACK)
ffibuilder.set_source(
    "sandbox._native",
    '#include "sbx.h"',
    # extract.c dlopen()s zlib and libcrypto when a layer is first unpacked: nothing is linked here
    # that `sandbox run`, which loads this module too, would pay for.
    # setuptools insists on paths relative to setup.py's directory.
    sources=["native/spawn.c", "native/mounts.c", "native/caps.c", "native/netns.c", "native/devices.c",
             "native/extract.c"],
    include_dirs=["native"],
    extra_compile_args=["-std=gnu11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
