"""The BPF filesystem, where maps and links are pinned so they outlive the process.

Each lab pins under its own directory, /sys/fs/bpf/lab/<lab>/ (`Lab.pin_dir`; the state record
removes it at `lab down`), made with mode 0700. bpffs is mounted at /sys/fs/bpf when missing,
and the mount is noted in the state record so the last `lab down` can undo it.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os

from lab import state

log = logging.getLogger("lab.bpf")

MOUNT_POINT = str(state.BPFFS)
BPF_FS_MAGIC = 0xCAFE4A11

from lab.libc import libc as _libc


class _Statfs(ctypes.Structure):  # struct statfs: f_type comes first on every Linux ABI
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def is_bpffs(path: str) -> bool:
    st = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(st)) != 0:
        return False
    return st.f_type & 0xFFFFFFFF == BPF_FS_MAGIC


def ensure_mounted(path: str = MOUNT_POINT) -> bool:
    """Mount bpffs at PATH unless it is there; return True if this call mounted it."""
    if is_bpffs(path):
        return False
    os.makedirs(path, exist_ok=True)
    if _libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, b"mode=0700") != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY and is_bpffs(path):  # someone else mounted it meanwhile
            return False
        raise OSError(err, f"mount bpffs: {os.strerror(err)}", path)
    if path == MOUNT_POINT:
        state.note_bpffs_mounted()
    log.info("mounted bpffs at %s", path)
    return True


def make_dir(path: str | os.PathLike) -> str:
    """Create PATH (and missing parents) inside the mounted bpffs, each with mode 0700."""
    ensure_mounted()
    path = os.fspath(path)
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    if not is_bpffs(p):
        raise ValueError(f"{path} is not on a BPF filesystem")
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    return path
