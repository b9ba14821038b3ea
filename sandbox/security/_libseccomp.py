"""libseccomp (Debian's libseccomp2) through cffi's ABI mode: the few calls that build a filter
and export it as BPF. Imported only when a filter is compiled (a cache miss), since parsing the
declarations costs some milliseconds. The declarations follow <seccomp.h> (libseccomp 2.x ABI).
"""

from __future__ import annotations

import os

from cffi import FFI  # type: ignore[import-untyped]

from sandbox.errors import ContainerStartError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

_CDEF = """
typedef void *scmp_filter_ctx;
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a; uint64_t datum_b; };
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_syscall_resolve_name(const char *name);
int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall, unsigned int arg_cnt,
                           const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
const struct scmp_version *seccomp_version(void);
"""
_NR_SCMP_ERROR = -1
_SCMP_FLTATR_CTL_OPTIMIZE = 8  # 2: the syscall numbers sorted into a binary tree (libseccomp >= 2.5)
_EEXIST = 17

ffi = FFI()
ffi.cdef(_CDEF)
try:
    lib: Any = ffi.dlopen("libseccomp.so.2")
except OSError as e:
    raise ContainerStartError("CreateContainerError", "dlopen libseccomp.so.2", 2, str(e)) from None


def version() -> str:
    v = lib.seccomp_version()
    return f"{v.major}.{v.minor}.{v.micro}"


def arch_token(name: str) -> int:
    """The AUDIT_ARCH_* value libseccomp uses for an architecture name; 0 if it does not know it."""
    return int(lib.seccomp_arch_resolve_name(name.encode()))


def syscall_number(token: int, name: str) -> int:
    """The call's number on that architecture (x32's with its 0x40000000 bit); negative when the
    architecture has no such call or libseccomp does not know the name."""
    return int(lib.seccomp_syscall_resolve_name_arch(token, name.encode()))


def _fail(op: str, rc: int, where: str) -> ContainerStartError:
    return ContainerStartError("CreateContainerError", op, -rc, where)


class Filter:
    """One libseccomp filter context, released on exit from the `with` block."""

    def __init__(self, default_action: int) -> None:
        self.ctx = lib.seccomp_init(default_action)
        if self.ctx == ffi.NULL:
            raise ContainerStartError("CreateContainerError", "seccomp_init", 22, hex(default_action))
        # A list of ~350 calls checked one after another costs hundreds of BPF instructions for a
        # call late in it (futex, keyctl); the tree costs a few dozen. Best effort: older
        # libseccomp keeps the linear order.
        lib.seccomp_attr_set(self.ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        lib.seccomp_release(self.ctx)
        self.ctx = ffi.NULL

    def add_arch(self, name: str, where: str) -> None:
        token = arch_token(name)
        if token == 0:
            return  # an architecture this libseccomp does not know cannot run here either
        rc = lib.seccomp_arch_add(self.ctx, token)
        if rc < 0 and rc != -_EEXIST:  # the native one is already there
            raise _fail(f"seccomp add arch {name}", rc, where)

    def add_rule(self, action: int, name: str, cmps: list[tuple[int, int, int, int]], where: str) -> None:
        """Names unknown to this libseccomp are skipped (runc and containerd do the same)."""
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number == _NR_SCMP_ERROR:
            return
        array = ffi.new("struct scmp_arg_cmp[]", max(len(cmps), 1))
        for i, (index, op, a, b) in enumerate(cmps):
            array[i].arg, array[i].op, array[i].datum_a, array[i].datum_b = index, op, a, b
        rc = lib.seccomp_rule_add_array(self.ctx, action, number, len(cmps), array)
        if rc < 0:
            raise _fail(f"seccomp rule {name}"[:47], rc, where)

    def export_bpf(self, where: str) -> bytes:
        fd = os.memfd_create("sbx-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(self.ctx, fd)
            if rc < 0:
                raise _fail("seccomp_export_bpf", rc, where)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
