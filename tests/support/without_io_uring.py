#!/usr/bin/env python3
"""Runs a command with io_uring blocked, the way a container sandbox blocks it.

Installs a seccomp filter that makes io_uring_setup(2) fail with EPERM (the other io_uring
calls need a ring, so blocking setup is enough), then execs the command. x86_64 and aarch64.

    without_io_uring.py PROGRAM [ARGS...]
"""
import ctypes
import os
import platform
import struct
import sys

IO_URING_SETUP = 425  # the same number on x86_64 and aarch64 (asm-generic)
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    arch = AUDIT_ARCH.get(platform.machine())
    if arch is None:
        sys.exit(f"without_io_uring.py: unsupported machine {platform.machine()}")
    program = b"".join(
        [
            insn(BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
            insn(BPF_JEQ_K, 1, 0, arch),
            insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            insn(BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
            insn(BPF_JEQ_K, 0, 1, IO_URING_SETUP),
            insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
            insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ]
    )
    count = len(program) // 8
    buffer = ctypes.create_string_buffer(program)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(count, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        sys.exit(f"prctl(SECCOMP): {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


main()
