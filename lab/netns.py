"""Named network namespaces, as `ip netns` makes them, without forking.

A namespace is created by unshare(CLONE_NEWNET) on the calling thread and bind-mounted at
/run/netns/NAME (so `ip netns exec NAME ...` works), after which the thread returns to the
namespace it started in. Code that must run inside a namespace (netlink sockets, BPF attach by
ifindex, /proc/sys/net writes) uses `entered()`, which switches only the calling thread.
Processes are started inside a namespace the way `ip netns exec` starts them: own mount
namespace, /sys remounted for that network namespace, /etc/netns/NAME/* bound over /etc.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import subprocess
from collections.abc import Iterator, Sequence

RUN_DIR = "/run/netns"
ETC_DIR = "/etc/netns"

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MNT_DETACH = 0x2

from lab.libc import check as _check
from lab.libc import libc as _libc


def path_of(name: str) -> str:
    return name if name.startswith("/") else f"{RUN_DIR}/{name}"


def exists(name: str) -> bool:
    return os.path.exists(path_of(name))


def mounted(name: str) -> bool:
    """Whether NAME's file holds a namespace (a bind mount), not only the empty mount point
    that create() makes first and remove() leaves last."""
    return os.path.ismount(path_of(name))


def inode(name: str) -> int:
    """The namespace's identity (what /proc/PID/ns/net links to): survives renames, not reuse."""
    return os.stat(path_of(name)).st_ino


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return []


def _prepare_run_dir() -> None:
    # As iproute2 does: /run/netns is a shared mount point so that the bind mounts made here
    # propagate into mount namespaces created later (ip netns exec, our own processes).
    os.makedirs(RUN_DIR, mode=0o755, exist_ok=True)
    run = RUN_DIR.encode()
    if _libc.mount(b"none", run, None, MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "make /run/netns shared", RUN_DIR)
    _check(_libc.mount(run, run, b"none", MS_BIND | MS_REC, None), "bind /run/netns", RUN_DIR)
    _check(_libc.mount(b"none", run, None, MS_SHARED | MS_REC, None), "share /run/netns",
           RUN_DIR)


@contextlib.contextmanager
def _returning_home() -> Iterator[None]:
    """Whatever namespace the body switches the calling thread to, switch it back after."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
        finally:
            os.close(home)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace NAME, then switch back."""
    target = os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _returning_home():
            _check(_libc.setns(target, CLONE_NEWNET), "setns", path_of(name))
            os.close(target)
            target = -1
            yield
    finally:
        if target >= 0:
            os.close(target)


@contextlib.contextmanager
def anonymous() -> Iterator[None]:
    """Run the body in a fresh, unnamed namespace that vanishes afterwards (for probes).

    Nothing is mounted, so even a crash mid-probe leaves nothing behind.
    """
    with _returning_home():
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        yield


def create(name: str) -> int:
    """Create namespace NAME (it must not exist); return its inode.

    Raises FileExistsError if a namespace of that name exists already: the lab never adopts a
    namespace it did not create.
    """
    _prepare_run_dir()
    path = path_of(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    try:
        with _returning_home():
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)", path)
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND,
                               None), "bind-mount namespace", path)
    except OSError:
        with contextlib.suppress(OSError):
            _libc.umount2(path.encode(), MNT_DETACH)
        os.unlink(path)
        raise
    return os.stat(path).st_ino


def remove(name: str) -> None:
    """Unmount and unlink namespace NAME. The kernel frees it once no process or fd holds it."""
    path = path_of(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (
            errno.EINVAL, errno.ENOENT):
        _check(-1, "umount", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def socket_in(name: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket that belongs to namespace NAME (sockets keep the namespace they were made in)."""
    with entered(name):
        return socket.socket(family, type | socket.SOCK_CLOEXEC, proto)


def pids_by_inode() -> dict[int, list[int]]:
    """Every process's network namespace inode -> pids (one pass over /proc)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.setdefault(os.stat(f"/proc/{entry}/ns/net").st_ino, []).append(int(entry))
            except OSError:
                continue
    return out


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is NAME (found by inode, like `ip netns pids`)."""
    return pids_by_inode().get(inode(name), [])


def _exec_setup(ns_path: bytes, etc_files: list[tuple[bytes, bytes]]):
    """Return a preexec function: enter the namespace as `ip netns exec` does.

    It runs in the forked child before exec, so it only calls libc through prebuilt arguments.
    """
    libc = _libc

    def setup() -> None:
        fd = os.open(ns_path, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
        if libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        # Keep mounts made here from leaking back, then show this namespace's devices in /sys.
        libc.mount(b"none", b"/", None, MS_SLAVE | MS_REC, None)
        libc.umount2(b"/sys", MNT_DETACH)
        libc.mount(b"lab", b"/sys", b"sysfs", 0, None)
        for src, dst in etc_files:
            libc.mount(src, dst, b"none", MS_BIND, None)

    return setup


def popen(name: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start ARGV inside namespace NAME, like `ip netns exec NAME ARGV`."""
    etc_dir = f"{ETC_DIR}/{os.path.basename(path_of(name))}"
    etc_files = []
    if os.path.isdir(etc_dir):
        for f in sorted(os.listdir(etc_dir)):
            if os.path.exists(f"/etc/{f}"):
                etc_files.append((f"{etc_dir}/{f}".encode(), f"/etc/{f}".encode()))
    return subprocess.Popen(list(argv), preexec_fn=_exec_setup(path_of(name).encode(), etc_files),
                            **kwargs)


def run(name: str, argv: Sequence[str], check: bool = True, timeout: float | None = None,
        input: str | bytes | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ARGV inside namespace NAME to completion (INPUT on its stdin); on failure raise
    with its output."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with popen(name, argv, **kwargs) as proc:
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    return result
