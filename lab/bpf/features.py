"""What this kernel and toolchain offer the BPF datapath, probed at run time, with reasons.

`collect()` adds these to `lab doctor` (which probes netns, veth, netkit links, BIG TCP and the
tools itself). Probes that try something for real (a tcx link, native XDP on a veth, a test
run) do it as root inside an anonymous network namespace that vanishes with the probe; without
root they say what the kernel's BTF suggests. `has_tcx()` is what the `ingress`/`egress` hooks
use to pick tcx or tc.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from lab import netns
from lab.bpf import bpffs, libbpf
from lab.features import Capability, config_option

BPF_FUNC_SKB_CHANGE_PROTO = 31  # enum bpf_func_id
MIN_LIBBPF = (1, 1)


# --- what the kernel says about itself -----------------------------------------------------

def kernel_release() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@functools.cache
def _attach_types() -> frozenset[str] | None:
    from lab.bpf.btf import vmlinux
    try:
        btf = vmlinux()
        enum = btf.resolve(btf.find("bpf_attach_type", "enum"))
    except Exception:  # no kernel BTF: fall back to the release number
        return None
    return frozenset(name for name, _ in enum.enumerators)


def kernel_knows(attach_type: str, since: tuple[int, int]) -> bool:
    """Whether the kernel has ATTACH_TYPE (by its BTF; by release SINCE without BTF)."""
    names = _attach_types()
    return attach_type in names if names is not None else kernel_release() >= since


def has_tcx() -> bool:
    return kernel_knows("BPF_TCX_INGRESS", (6, 6))


def has_netkit_attach() -> bool:
    return kernel_knows("BPF_NETKIT_PRIMARY", (6, 7))


# --- trying things for real ----------------------------------------------------------------

def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class _FdProgram:
    """A bare program fd, shaped like object.Program for testrun."""
    fd: int
    is_xdp: bool
    name: str = "probe"


def _try_link(prog_type: int, retval: int, ifindex: int, attach_type: int,
              flags: int = 0) -> int:
    """0 if a `return RETVAL` program attaches there as a link (detached at once), else the
    errno."""
    fd = libbpf.load_return_program(prog_type, retval)
    try:
        os.close(libbpf.link_create(fd, ifindex, attach_type, flags))
        return 0
    except OSError as e:
        return e.errno or errno.EINVAL
    finally:
        os.close(fd)


def probe_tcx() -> Capability:
    if not _is_root():
        known = has_tcx()
        return Capability("tcx", known, ("the kernel knows BPF_TCX_INGRESS" if known else
                                         "the kernel lacks tcx (6.6+)") + "; not tried (not root)")
    with netns.anonymous():
        err = _try_link(libbpf.PROG_TYPE_SCHED_CLS, 0, 1, libbpf.ATTACH_TCX_INGRESS)
    if err == 0:
        return Capability("tcx", True, "a tcx link attaches (kernel 6.6+)")
    return Capability("tcx", False, f"tcx link refused ({os.strerror(err)}): needs kernel "
                                    f"6.6+, this is {platform.release()}")


def probe_xdp_veth() -> Capability:
    name = "xdp-native-veth"
    if config_option("CONFIG_VETH") == "n":
        return Capability(name, False, "CONFIG_VETH is not set")
    if not _is_root():
        return Capability(name, kernel_release() >= (4, 19),
                          "veth has native XDP since 4.19; not tried (not root)")
    from pyroute2 import IPRoute
    with netns.anonymous(), IPRoute() as ipr:
        ipr.link("add", ifname="probe0", kind="veth", peer={"ifname": "probe1"})
        ifindex = ipr.link_lookup(ifname="probe0")[0]
        err = _try_link(libbpf.PROG_TYPE_XDP, 2, ifindex, libbpf.ATTACH_XDP,
                        libbpf.XDP_FLAGS_DRV_MODE)
    if err == 0:
        return Capability(name, True, "driver-mode XDP attaches to veth")
    return Capability(name, False, f"driver-mode XDP on veth refused: {os.strerror(err)}")


def probe_skb_change_proto() -> Capability:
    name = "bpf_skb_change_proto"
    if not _is_root():
        return Capability(name, kernel_release() >= (4, 8),
                          "a helper since 4.8; not tried (not root)")
    ret = libbpf.lib().libbpf_probe_bpf_helper(libbpf.PROG_TYPE_SCHED_CLS,
                                               BPF_FUNC_SKB_CHANGE_PROTO, None)
    if ret == 1:
        return Capability(name, True, "the verifier accepts it in tc programs")
    return Capability(name, False, "not available to tc programs"
                      + (f" ({os.strerror(-ret)})" if ret < 0 else ""))


def probe_test_run(prog_type: int, label: str, retval: int) -> Capability:
    name = f"test-run-{label}"
    if not _is_root():
        return Capability(name, False, "BPF_PROG_TEST_RUN needs root")
    from lab.bpf import testrun
    fd = libbpf.load_return_program(prog_type, retval)
    try:
        result = testrun.run(_FdProgram(fd, prog_type == libbpf.PROG_TYPE_XDP), bytes(60))
    except OSError as e:
        return Capability(name, False, f"BPF_PROG_TEST_RUN failed: {e.strerror}")
    finally:
        os.close(fd)
    if result.retval != retval:
        return Capability(name, False, f"a program returning {retval} gave {result.retval}")
    return Capability(name, True, f"BPF_PROG_TEST_RUN runs {label} programs")


def probe_test_run_checksum_complete() -> Capability:
    """BPF_PROG_TEST_RUN with BPF_F_TEST_SKB_CHECKSUM_COMPLETE: tc programs tested against an
    skb whose skb->csum the kernel checks afterwards (the packet tests of header rewrites)."""
    name = "test-run-checksum-complete"
    if not _is_root():
        return Capability(name, False, "BPF_PROG_TEST_RUN needs root")
    from lab.bpf import testrun
    fd = libbpf.load_return_program(libbpf.PROG_TYPE_SCHED_CLS, 0)
    try:
        testrun.run(_FdProgram(fd, False), bytes(60), checksum_complete=True)
    except OSError as e:
        return Capability(name, False, f"refused ({e.strerror}): needs kernel 6.11+, this is "
                                       f"{platform.release()}")
    finally:
        os.close(fd)
    return Capability(name, True, "tc test runs can start CHECKSUM_COMPLETE and check skb->csum")


@functools.cache
def has_test_run_checksum_complete() -> bool:
    return probe_test_run_checksum_complete().ok


def probe_btf() -> Capability:
    path = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(path):
        return Capability("btf", False, f"no {path}: the kernel needs CONFIG_DEBUG_INFO_BTF=y")
    return Capability("btf", True, f"{path} ({os.path.getsize(path) >> 10} KiB)")


def probe_bpffs() -> Capability:
    where = bpffs.MOUNT_POINT
    if bpffs.is_bpffs(where):
        return Capability("bpffs", True, f"mounted at {where}")
    if _is_root():
        return Capability("bpffs", True, f"not mounted at {where}; the lab mounts it to pin")
    return Capability("bpffs", False, f"not mounted at {where}, and mounting needs root")


def probe_libbpf() -> Capability:
    try:
        v = libbpf.version()
    except Exception as e:
        return Capability("libbpf", False, str(e))
    nums = tuple(int(x) for x in re.findall(r"\d+", v)[:2])
    need = "" if nums >= MIN_LIBBPF else f" (the lab needs {MIN_LIBBPF[0]}.{MIN_LIBBPF[1]}+)"
    return Capability("libbpf", nums >= MIN_LIBBPF, f"libbpf.so.1 {v.lstrip('v')}{need}")


def probe_clang_bpf() -> Capability:
    name = "clang-bpf"
    clang = shutil.which("clang")
    if clang is None:
        return Capability(name, False, "clang not found (Debian package clang)")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("int probe(void) { return 0; }\n")
        r = subprocess.run([clang, "-target", "bpf", "-O2", "-g", "-c", src, "-o",
                            os.path.join(tmp, "probe.o")], capture_output=True, text=True)
    if r.returncode != 0:
        return Capability(name, False, f"clang cannot build for -target bpf: "
                                       f"{r.stderr.strip()[:200]}")
    return Capability(name, True, "clang builds -target bpf objects with BTF")


PROBES: list[Callable[[], Capability]] = [
    probe_libbpf,
    probe_clang_bpf,
    probe_btf,
    probe_bpffs,
    probe_tcx,
    probe_xdp_veth,
    probe_skb_change_proto,
    functools.partial(probe_test_run, libbpf.PROG_TYPE_SCHED_CLS, "sched_cls", 0),
    functools.partial(probe_test_run, libbpf.PROG_TYPE_XDP, "xdp", 2),
    probe_test_run_checksum_complete,
]


def collect() -> list[Capability]:
    """Every probe; one that crashes says so instead of stopping the others."""
    out = []
    for probe in PROBES:
        try:
            out.append(probe())
        except Exception as e:  # a doctor reports, it does not fall over
            name = getattr(probe, "__name__", "bpf probe").removeprefix("probe_")
            out.append(Capability(name, False, f"probe failed: {e}"))
    return out
