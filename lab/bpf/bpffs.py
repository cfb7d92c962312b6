"""The BPF filesystem: where maps and links are pinned so they outlive the process.

Each lab pins under its own directory, `/sys/fs/bpf/lab/<lab>/`, created with mode 0700, and
removes exactly that directory when it goes. bpffs is mounted at /sys/fs/bpf when missing.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re

log = logging.getLogger("lab.bpf")

MOUNT_POINT = "/sys/fs/bpf"
LAB_ROOT = f"{MOUNT_POINT}/lab"
BPF_FS_MAGIC = 0xCAFE4A11

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]


class _Statfs(ctypes.Structure):  # struct statfs (x86_64 and aarch64 agree on the first word)
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def is_bpffs(path: str) -> bool:
    st = _Statfs()
    if _libc.statfs(path.encode(), ctypes.byref(st)) != 0:
        return False
    return st.f_type & 0xFFFFFFFF == BPF_FS_MAGIC


def ensure_mounted(path: str = MOUNT_POINT) -> bool:
    """Mount bpffs at PATH unless it is there; return True if this call mounted it."""
    if is_bpffs(path):
        return False
    os.makedirs(path, exist_ok=True)
    if _libc.mount(b"bpf", path.encode(), b"bpf", 0, b"mode=0700") != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY and is_bpffs(path):  # someone else mounted it meanwhile
            return False
        raise OSError(err, f"mount bpffs: {os.strerror(err)}", path)
    log.info("mounted bpffs at %s", path)
    return True


_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def lab_dir(lab: str) -> str:
    """The pin directory of lab LAB (not created)."""
    if not _NAME.match(lab):
        raise ValueError(f"lab name {lab!r} cannot name a pin directory")
    return f"{LAB_ROOT}/{lab}"


def make_dir(path: str) -> str:
    """Create PATH (and missing parents) inside a mounted bpffs, each with mode 0700."""
    ensure_mounted()
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    return path


def remove_tree(path: str) -> list[str]:
    """Unpin everything under PATH and remove PATH; return what was removed.

    Only for a directory this lab created (a lab's own pin dir): bpffs entries are pins and
    directories, so unlink/rmdir are all it takes.
    """
    if not os.path.lexists(path):
        return []
    if not is_bpffs(path):
        raise ValueError(f"{path} is not on a BPF filesystem")
    removed = []
    for root, dirs, files in os.walk(path, topdown=False):
        for f in files:
            os.unlink(os.path.join(root, f))
            removed.append(os.path.join(root, f))
        for d in dirs:
            os.rmdir(os.path.join(root, d))
    os.rmdir(path)
    removed.append(path)
    for p in removed:
        log.info("unpinned %s", p)
    return removed
