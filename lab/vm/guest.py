"""The guest side: the job lab-vm-init runs, and lab-vm-init itself (init.c, built on first use).

The guest's root is the host's `/`, shared read-only over virtio-fs. The job turns it into a
usable system, in an order that matters: sources under /var (the kernel cache) are bound
before /var becomes a tmpfs, and the writable shares are mounted last, so a share under /tmp
lands on the guest's tmpfs rather than under it.
"""

from __future__ import annotations

import compileall
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence

from lab.errors import UsageError
from lab.vm.kernels import GuestPackage, Kernel

JOB_MAGIC = "lab-vm-job 1"
INIT_SOURCE = os.path.join(os.path.dirname(__file__), "init.c")
# Directories the guest mounts a fresh tmpfs on: the host's content there is not visible.
TMPFS_DIRS = ("/run", "/tmp", "/var")
MODULES_VIEW = "/run/lab-vm/modules"  # the kernel's modules, bound from the cache
LIB_TOP = "/run/lab-vm/lib-top"  # upper layer of /usr/lib when the host has no /lib/modules
# Host directories under TMPFS_DIRS kept visible are held here while the tmpfs go on top
# (/dev/shm is mounted before any of TMPFS_DIRS).
KEEP_HOLD = "/dev/shm/lab-vm-keep"


@dataclasses.dataclass(frozen=True)
class Share:
    """A host directory shared writable with the guest, at the same path."""

    tag: str
    path: str


def _mount(fstype: str, source: str, target: str, data: str = "",
           flags: Sequence[str] = ()) -> tuple[str, ...]:
    return ("mount", fstype, source, target, data, ",".join(flags))


# What a guest with NICs loads before its command runs (in order: each needs the one before).
NIC_MODULES = ("failover", "net_failover", "virtio_net")


def setup_records(kernel: Kernel, packages: Sequence[GuestPackage], shares: Sequence[Share],
                  host_lib: str = "/usr/lib", hostname: str = "lab-vm",
                  keep: Sequence[str] = (), modules: Sequence[str] = ()
                  ) -> list[tuple[str, ...]]:
    """The guest's set-up, as job records, in the order lab-vm-init performs them. KEEP: host
    directories under TMPFS_DIRS (a checkout in /tmp) that stay visible, read-only, at their
    own path: bound aside before the tmpfs are mounted and back on top of them after.
    MODULES: loaded (in order) before the command, e.g. NIC_MODULES: no udev loads them."""
    has_modules_dir = os.path.isdir(os.path.join(host_lib, "modules"))
    r: list[tuple[str, ...]] = [
        _mount("proc", "proc", "/proc", flags=("nosuid", "nodev", "noexec")),
        _mount("sysfs", "sysfs", "/sys", flags=("nosuid", "nodev", "noexec")),
        _mount("devtmpfs", "devtmpfs", "/dev", "mode=0755", ("nosuid",)),
        _mount("devpts", "devpts", "/dev/pts", "mode=0620,ptmxmode=0666",
               ("nosuid", "noexec", "mkdir")),
        _mount("tmpfs", "tmpfs", "/dev/shm", "mode=1777", ("nosuid", "nodev", "mkdir")),
        ("symlink", "/proc/self/fd", "/dev/fd"),
        ("symlink", "/proc/self/fd/0", "/dev/stdin"),
        ("symlink", "/proc/self/fd/1", "/dev/stdout"),
        ("symlink", "/proc/self/fd/2", "/dev/stderr"),
        *(_mount("", path, f"{KEEP_HOLD}/{i}", "", ("bind", "ro", "mkdir"))
          for i, path in enumerate(keep)),
        _mount("bpf", "bpffs", "/sys/fs/bpf", "mode=0700", ("nosuid", "nodev", "noexec")),
        _mount("cgroup2", "cgroup2", "/sys/fs/cgroup", "", ("nosuid", "nodev", "noexec",
                                                           "nofail")),
        _mount("tracefs", "tracefs", "/sys/kernel/tracing", "", ("nofail",)),
        _mount("debugfs", "debugfs", "/sys/kernel/debug", "", ("nofail",)),
        _mount("tmpfs", "tmpfs", "/run", "mode=0755", ("nosuid", "nodev")),
        ("mkdir", "/run/lock", "1777"),
        # The kernel's modules, where modprobe looks: /lib/modules/RELEASE.
        _mount("", os.path.dirname(kernel.modules), MODULES_VIEW, "",
               ("bind", "ro", "mkdir")),
    ]
    if has_modules_dir:
        r += [_mount("tmpfs", "tmpfs", os.path.join(host_lib, "modules"), "mode=0755"),
              ("symlink", os.path.join(MODULES_VIEW, kernel.release),
               os.path.join(host_lib, "modules", kernel.release))]
    else:
        # The read-only root has no /lib/modules to mount on: lay a read-only overlay over
        # /usr/lib whose upper layer (on tmpfs, so lookups that miss it stay cheap) holds
        # only `modules`.
        r += [("mkdir", LIB_TOP, "0755"),
              ("symlink", MODULES_VIEW, os.path.join(LIB_TOP, "modules")),
              ("insmod", kernel.module_path("overlay")),
              _mount("overlay", "overlay", host_lib, f"lowerdir={LIB_TOP}:{host_lib}",
                     ("ro",))]
    r += [("insmod", kernel.module_path(m)) for m in modules
          if kernel.config().get(f"CONFIG_{m.upper()}") == "m"]
    for pkg in packages:
        for prog in pkg.programs():
            target = os.path.realpath(prog)  # /sbin/tc is /usr/sbin/tc on merged-/usr hosts
            if os.path.isfile(target):
                r.append(_mount("", pkg.root + prog, target, "", ("bind", "ro")))
    r += [
        _mount("tmpfs", "tmpfs", "/tmp", "mode=1777", ("nosuid", "nodev")),
        _mount("tmpfs", "tmpfs", "/var", "mode=0755", ("nosuid", "nodev")),
        ("mkdir", "/var/tmp", "1777"),
        ("mkdir", "/var/log", "0755"),
        ("mkdir", "/var/lib", "0755"),
        ("mkdir", "/var/cache", "0755"),
        ("symlink", "/run", "/var/run"),
        ("symlink", "/run/lock", "/var/lock"),
    ]
    r += [_mount("", f"{KEEP_HOLD}/{i}", path, "", ("bind", "ro", "mkdir"))
          for i, path in enumerate(keep)]
    for share in shares:
        r.append(_mount("virtiofs", share.tag, share.path, "", ("mkdir",)))
    r.append(("hostname", hostname))
    return r


def hidden_by_tmpfs(path: str, shares: Sequence[Share] = ()) -> bool:
    """Is host PATH invisible in the guest (under a guest tmpfs and not in a share)?"""
    path = os.path.realpath(path)
    if any(path == s.path or path.startswith(s.path.rstrip("/") + "/") for s in shares):
        return False
    return any(path == d or path.startswith(d + "/") for d in TMPFS_DIRS)


def kept_visible(paths: Sequence[str], shares: Sequence[Share] = ()) -> list[str]:
    """Of host directories PATHS, those the guest's tmpfs would hide, each once (none inside
    another): what setup_records(keep=...) binds back."""
    hidden = sorted({os.path.realpath(p) for p in paths if hidden_by_tmpfs(p, shares)})
    kept: list[str] = []
    for path in hidden:  # sorted: a parent comes before what is inside it
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def precompile(*paths: str | os.PathLike) -> None:
    """Byte-compile the Python sources under PATHS on the host, as their first import would
    if bytecode writing were on. The guest's root is read-only: a module without a current
    .pyc is compiled again on every import there, a cost that emulation (TCG) multiplies by
    25 (the lab's own modules, imported by every `python -m lab` in the guest)."""
    for path in paths:
        if os.path.isdir(path):
            compileall.compile_dir(os.fspath(path), quiet=2, workers=1)


def encode_job(setup: Sequence[tuple[str, ...]], argv: Sequence[str], env: Mapping[str, str],
               cwd: str) -> bytes:
    """The job file: NUL-terminated fields, a record's keyword then its fields."""
    fields: list[str] = [JOB_MAGIC]
    for record in setup:
        fields.extend(record)
    fields += ["cwd", cwd]
    for key, value in env.items():
        if "=" in key or not key:
            raise UsageError(f"bad environment variable name {key!r}")
        fields += ["env", f"{key}={value}"]
    for arg in argv:
        fields += ["arg", arg]
    out = bytearray()
    for f in fields:
        b = os.fsencode(f)
        if b"\0" in b:
            raise UsageError(f"a NUL byte in {f!r} cannot be passed to the guest")
        out += b + b"\0"
    return bytes(out)


def decode_job(data: bytes) -> list[str]:
    """The fields of a job file (for tests and debugging)."""
    fields = [os.fsdecode(f) for f in data.split(b"\0")]
    if fields[-1] != "":
        raise ValueError("job file does not end with a NUL")
    return fields[:-1]


def build_init(cache_root: str) -> str:
    """lab-vm-init built from init.c (static, so the guest execs no dynamic loader for it),
    cached by the source's hash."""
    with open(INIT_SOURCE, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()[:16]
    out_dir = os.path.join(cache_root, "init", digest)
    binary = os.path.join(out_dir, "lab-vm-init")
    if os.path.exists(binary):
        return binary
    cc = next((c for c in (os.environ.get("CC"), "cc", "gcc", "clang") if c and shutil.which(c)),
              None)
    if cc is None:
        raise UsageError("building the VM's init needs a C compiler: install gcc or clang, "
                         "and libc6-dev")
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".part-")
    os.close(fd)
    try:
        proc = subprocess.run([cc, "-O2", "-Wall", "-static", "-o", tmp, INIT_SOURCE],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise UsageError(f"building lab-vm-init failed (is libc6-dev installed?):\n"
                             f"{proc.stdout}")
        os.chmod(tmp, 0o755)
        os.rename(tmp, binary)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return binary
