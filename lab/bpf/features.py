"""What this kernel and toolchain offer the datapath, probed at run time, each with a reason.

`probe_all()` feeds `lab doctor`. Probes that need to try something for real (attach tcx, native
XDP on veth, create a netkit device) do it as root inside a throwaway network namespace that
exists only for the probe's duration; without root they fall back to what the kernel's BTF and
config say. `has_tcx()` is what the `ingress`/`egress` hooks use to pick tcx or tc.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import gzip
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from lab.bpf import bpffs, libbpf

CLONE_NEWNET = 0x40000000
BPF_FUNC_SKB_CHANGE_PROTO = 31
MIN_LIBBPF = (1, 1)


@dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


# --- what the kernel says about itself -----------------------------------------------------

def kernel_release() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@functools.cache
def kernel_config() -> dict[str, str] | None:
    """CONFIG_* of the running kernel (/proc/config.gz or /boot/config-RELEASE), if readable."""
    for path, opener in (("/proc/config.gz", gzip.open),
                         (f"/boot/config-{platform.release()}", open)):
        try:
            with opener(path, "rt") as f:
                return dict(line.strip().split("=", 1) for line in f
                            if line.startswith("CONFIG_") and "=" in line)
        except OSError:
            continue
    return None


def config_says(option: str) -> str | None:
    """'y', 'm', 'n' (not set), or None when the config cannot be read."""
    cfg = kernel_config()
    return None if cfg is None else cfg.get(option, "n")


@functools.cache
def _attach_types() -> frozenset[str] | None:
    try:
        from lab.bpf.btf import vmlinux
        btf = vmlinux()
        return frozenset(n for n, _ in btf.resolve(btf.find("bpf_attach_type", "enum")).enumerators)
    except Exception:
        return None


def kernel_knows(attach_type: str, since: tuple[int, int]) -> bool:
    """Whether the kernel has ATTACH_TYPE (from its BTF; by release SINCE without BTF)."""
    names = _attach_types()
    return attach_type in names if names is not None else kernel_release() >= since


def has_tcx() -> bool:
    return kernel_knows("BPF_TCX_INGRESS", (6, 6))


def has_netkit_attach() -> bool:
    return kernel_knows("BPF_NETKIT_PRIMARY", (6, 7))


# --- trying things for real ----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def scratch_netns() -> Iterator[None]:
    """Run the body in a new, unnamed network namespace (this thread only); it disappears when
    the body ends, with everything created in it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back: {os.strerror(err)}")
    finally:
        os.close(home)


def _is_root() -> bool:
    return os.geteuid() == 0


def _try_link(prog_type: int, retval: int, ifindex: int, attach_type: int, flags: int = 0) -> int:
    """0 if a `return RETVAL` program attaches as a link there, else the errno."""
    fd = libbpf.load_return_program(prog_type, retval)
    try:
        link = libbpf.link_create(fd, ifindex, attach_type, flags)
        os.close(link)
        return 0
    except OSError as e:
        return e.errno or errno.EINVAL
    finally:
        os.close(fd)


def probe_tcx() -> Probe:
    if not _is_root():
        ok = has_tcx()
        return Probe("tcx", ok, ("kernel BTF knows BPF_TCX_INGRESS" if ok else
                                 "kernel lacks BPF_TCX_INGRESS (needs 6.6+)") + "; not tried (not root)")
    with scratch_netns():
        err = _try_link(libbpf.PROG_TYPE_SCHED_CLS, 0, 1, libbpf.ATTACH_TCX_INGRESS)
    if err == 0:
        return Probe("tcx", True, "tcx link attached to lo in a scratch namespace")
    return Probe("tcx", False, f"tcx link refused ({os.strerror(err)}): needs kernel 6.6+")


def _veth_pair() -> int:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        ipr.link("add", ifname="probe0", kind="veth", peer={"ifname": "probe1"})
        return ipr.link_lookup(ifname="probe0")[0]


def probe_xdp_veth() -> Probe:
    name = "xdp-native-veth"
    if config_says("CONFIG_VETH") == "n":
        return Probe(name, False, "CONFIG_VETH is not set")
    if not _is_root():
        return Probe(name, kernel_release() >= (4, 19),
                     "veth has native XDP since 4.19; not tried (not root)")
    with scratch_netns():
        err = _try_link(libbpf.PROG_TYPE_XDP, 2, _veth_pair(), libbpf.ATTACH_XDP,
                        libbpf.XDP_FLAGS_DRV_MODE)
    if err == 0:
        return Probe(name, True, "XDP link in driver mode attached to a veth")
    return Probe(name, False, f"driver-mode XDP on veth refused: {os.strerror(err)}")


def probe_netkit() -> Probe:
    cfg = config_says("CONFIG_NETKIT")
    if cfg == "n":
        return Probe("netkit", False, "CONFIG_NETKIT is not set in the kernel config")
    if not has_netkit_attach():
        return Probe("netkit", False, "kernel lacks BPF_NETKIT_PRIMARY (needs 6.7+)")
    if not _is_root():
        return Probe("netkit", True, f"CONFIG_NETKIT={cfg}; not tried (not root)")
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    with scratch_netns(), IPRoute() as ipr:
        try:
            ipr.link("add", ifname="probe0", kind="netkit")
        except NetlinkError as e:
            return Probe("netkit", False, f"creating a netkit link failed: {e.args[1]}")
    return Probe("netkit", True, "netkit link created in a scratch namespace")


def probe_skb_change_proto() -> Probe:
    name = "bpf_skb_change_proto"
    if not _is_root():
        return Probe(name, kernel_release() >= (4, 8), "helper since 4.8; not tried (not root)")
    ret = libbpf.lib().libbpf_probe_bpf_helper(libbpf.PROG_TYPE_SCHED_CLS,
                                               BPF_FUNC_SKB_CHANGE_PROTO, None)
    if ret == 1:
        return Probe(name, True, "the verifier accepts it in sched_cls programs")
    return Probe(name, False, "not available to sched_cls programs"
                 + (f" ({os.strerror(-ret)})" if ret < 0 else ""))


def probe_test_run(prog_type: int, label: str, retval: int) -> Probe:
    name = f"test-run-{label}"
    if not _is_root():
        return Probe(name, False, "BPF_PROG_TEST_RUN needs root")
    from lab.bpf import testrun
    fd = libbpf.load_return_program(prog_type, retval)
    try:
        prog = _FdProgram(fd, prog_type == libbpf.PROG_TYPE_XDP)
        result = testrun.run(prog, bytes(60))
    except OSError as e:
        return Probe(name, False, f"BPF_PROG_TEST_RUN failed: {e.strerror}")
    finally:
        os.close(fd)
    ok = result.retval == retval
    return Probe(name, ok, f"ran a {label} program: {result.code}" if ok else
                 f"unexpected return {result.retval}")


@dataclass(frozen=True)
class _FdProgram:
    fd: int
    is_xdp: bool
    name: str = "probe"


def probe_btf() -> Probe:
    path = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(path):
        return Probe("btf", False, f"no {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y")
    return Probe("btf", True, f"{path} ({os.path.getsize(path) >> 10} KiB)")


def probe_bpffs() -> Probe:
    if bpffs.is_bpffs(bpffs.MOUNT_POINT):
        return Probe("bpffs", True, f"mounted at {bpffs.MOUNT_POINT}")
    return Probe("bpffs", _is_root(), f"not mounted at {bpffs.MOUNT_POINT}; " +
                 ("the lab mounts it when it pins" if _is_root() else "mounting needs root"))


def probe_libbpf() -> Probe:
    try:
        v = libbpf.version()
    except Exception as e:
        return Probe("libbpf", False, str(e))
    nums = tuple(int(x) for x in re.findall(r"\d+", v)[:2])
    return Probe("libbpf", nums >= MIN_LIBBPF, f"libbpf {v.lstrip('v')}"
                 + ("" if nums >= MIN_LIBBPF else f" (need {MIN_LIBBPF[0]}.{MIN_LIBBPF[1]}+)"))


def probe_clang() -> Probe:
    clang = shutil.which("clang")
    if clang is None:
        return Probe("clang", False, "clang not found (Debian package clang)")
    version = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout
    first = version.splitlines()[0] if version else "unknown version"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("int probe(void) { return 0; }\n")
        r = subprocess.run([clang, "-target", "bpf", "-O2", "-c", src, "-o",
                            os.path.join(tmp, "probe.o")], capture_output=True, text=True)
    if r.returncode != 0:
        return Probe("clang", False, f"{first}: cannot build for -target bpf: "
                     f"{r.stderr.strip()[:200]}")
    return Probe("clang", True, first)


PROBES: list[Callable[[], Probe]] = [
    probe_libbpf,
    probe_clang,
    probe_btf,
    probe_bpffs,
    probe_tcx,
    probe_xdp_veth,
    probe_netkit,
    probe_skb_change_proto,
    lambda: probe_test_run(libbpf.PROG_TYPE_SCHED_CLS, "sched_cls", 0),
    lambda: probe_test_run(libbpf.PROG_TYPE_XDP, "xdp", 2),
]


def probe_all() -> list[Probe]:
    """Every probe; a probe that crashes reports that instead of stopping the others."""
    out = []
    for probe in PROBES:
        try:
            out.append(probe())
        except Exception as e:  # a doctor reports, it does not fall over
            name = getattr(probe, "__name__", "probe").removeprefix("probe_")
            out.append(Probe(name, False, f"probe failed: {e}"))
    return out
