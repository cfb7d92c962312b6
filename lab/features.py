"""What this machine can do: privileges, kernel features and tools, each with the reason.

Probes that need the kernel run in an anonymous network namespace (netns.anonymous()), so they
never touch the host's devices and leave nothing behind, even when interrupted.
"""

from __future__ import annotations

import functools
import gzip
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass

from lab import netns
from lab.errors import UsageError

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39
GSO_LEGACY_MAX_SIZE = 65536
BIG_TCP_PROBE_SIZE = 185000


@dataclass
class Capability:
    name: str
    ok: bool
    detail: str  # the value found, or why not

    def as_dict(self) -> dict:
        return asdict(self)


def _effective_caps() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def privileges() -> Capability:
    caps = _effective_caps()
    if os.geteuid() == 0 or (caps >> CAP_SYS_ADMIN & 1 and caps >> CAP_NET_ADMIN & 1):
        if not os.path.exists("/proc/self/ns/net"):
            return Capability("privileges", False, "this kernel has no network namespaces "
                                                   "(CONFIG_NET_NS)")
        return Capability("privileges", True, "root" if os.geteuid() == 0 else
                          "CAP_SYS_ADMIN and CAP_NET_ADMIN")
    return Capability("privileges", False, "the lab needs root (CAP_SYS_ADMIN and "
                                           "CAP_NET_ADMIN) to create network namespaces")


def require_privileges() -> None:
    cap = privileges()
    if not cap.ok:
        raise UsageError(f"{cap.detail}: run it as root (e.g. with sudo)")



def require_bpf_privileges(what: str) -> None:
    """Loading programs needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN: say so up front."""
    caps = _effective_caps()
    if caps >> CAP_NET_ADMIN & 1 and (caps >> CAP_BPF & 1 or caps >> CAP_SYS_ADMIN & 1):
        return
    raise UsageError(f"{what} loads BPF programs, which needs root (CAP_BPF and CAP_NET_ADMIN)")


@functools.cache
def kernel_config() -> dict[str, str] | None:
    """The running kernel's build configuration, if the machine exposes it."""
    # /lib/modules/RELEASE/config: where the split packaging of 7.x kernels puts it (and
    # where the lab's VM shows every guest kernel's, /boot being the host's).
    release = platform.release()
    paths = ["/proc/config.gz", f"/boot/config-{release}", f"/lib/modules/{release}/config"]
    for path in paths:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                text = f.read()
        except OSError:
            continue
        config = {}
        for m in re.finditer(r"^(CONFIG_\w+)=(.*)$", text, re.M):
            config[m.group(1)] = m.group(2)
        return config
    return None


def config_option(option: str) -> str | None:
    config = kernel_config()
    return None if config is None else config.get(option, "n")


def link_kind(kind: str) -> tuple[bool, str]:
    from lab.netlink import rtnl
    from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket

    with netns.anonymous():
        sock = open_socket()
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            batch = RtnlBatch(sock)
            if kind == "veth":
                msg = rtnl.new_veth("probe0", 2, "probe1", 3, fd)
            else:
                msg = rtnl.new_netkit("probe0", 2, "probe1", 3, fd)
            batch.add(rtnl.RTM_NEWLINK, msg, f"create {kind}", create=True)
            try:
                batch.flush()
            except NetlinkError as e:
                return False, str(e)
            return True, "link kind available"
        finally:
            os.close(fd)
            sock.close()


def netkit() -> tuple[bool, str]:
    """Can this kernel create netkit devices (CONFIG_NETKIT, kernel 6.7+)?"""
    option = config_option("CONFIG_NETKIT")
    if option is not None and option not in ("y", "m"):
        return False, f"this kernel ({platform.release()}) is built without netkit " \
                      "(CONFIG_NETKIT is not set)"
    ok, detail = link_kind("netkit")
    if not ok:
        return False, f"this kernel ({platform.release()}) cannot create netkit devices " \
                      f"({detail}; netkit needs kernel 6.7+ with CONFIG_NETKIT)"
    return True, "CONFIG_NETKIT=" + (option or "?")


def netem() -> tuple[bool, str]:
    """Can a netem qdisc (delay, loss) be added here (CONFIG_NET_SCH_NETEM, built in or a
    module the kernel can load)? Tried on a veth in a throwaway namespace."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    option = config_option("CONFIG_NET_SCH_NETEM")
    if option is not None and option not in ("y", "m"):
        return False, f"this kernel ({platform.release()}) is built without netem " \
                      "(CONFIG_NET_SCH_NETEM is not set)"
    with netns.anonymous(), IPRoute() as ipr:
        ipr.link("add", ifname="probe0", kind="veth", peer="probe1")
        idx = ipr.link_lookup(ifname="probe0")[0]
        try:
            ipr.tc("add", "netem", idx, delay=1000)
        except NetlinkError as e:
            why = "the module cannot be loaded" if option == "m" else e.args[-1]
            return False, f"this kernel ({platform.release()}) cannot add a netem qdisc " \
                          f"(CONFIG_NET_SCH_NETEM={option or '?'}: {why})"
    return True, "CONFIG_NET_SCH_NETEM=" + (option or "?")


def big_tcp() -> dict[str, Capability]:
    """BIG TCP limits of a fresh veth: IPv6 (kernel 5.19+) and IPv4 (6.3+) GSO/GRO sizes."""
    from lab.netlink import rtnl
    from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket, request

    with netns.anonymous():
        sock = open_socket()
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            batch = RtnlBatch(sock)
            batch.add(rtnl.RTM_NEWLINK, rtnl.new_veth("probe0", 2, "probe1", 3, fd),
                      "create veth", create=True)
            batch.flush()
            (msg,) = request(sock, rtnl.RTM_GETLINK, rtnl.get_link(2), rtnl.LinkMessage)
            tso_max = msg.get_attr("IFLA_TSO_MAX_SIZE")
            out = {}
            for family, attrs in (("ipv6", ("gso_max_size", "gro_max_size")),
                                  ("ipv4", ("gso_ipv4_max_size", "gro_ipv4_max_size"))):
                batch = RtnlBatch(sock)
                batch.add(rtnl.RTM_NEWLINK,
                          rtnl.set_link(2, **{a: BIG_TCP_PROBE_SIZE for a in attrs}),
                          f"set {family} sizes")
                try:
                    batch.flush()
                except NetlinkError as e:
                    out[family] = Capability(f"big_tcp_{family}", False, str(e))
                    continue
                (msg,) = request(sock, rtnl.RTM_GETLINK, rtnl.get_link(2), rtnl.LinkMessage)
                got = [msg.get_attr(rtnl.ifla(a)) for a in attrs]
                if all(g == BIG_TCP_PROBE_SIZE for g in got):
                    out[family] = Capability(f"big_tcp_{family}", True,
                                             f"veth accepts {BIG_TCP_PROBE_SIZE} "
                                             f"(tso_max_size {tso_max})")
                else:
                    need = "5.19" if family == "ipv6" else "6.3"
                    out[family] = Capability(f"big_tcp_{family}", False,
                                             f"this kernel ({platform.release()}) ignores "
                                             f"{'/'.join(attrs)} above 64 KB (BIG TCP for "
                                             f"{family} needs kernel {need}+)")
            return out
        finally:
            os.close(fd)
            sock.close()


TOOLS = {
    # name: (command, version argument, what the lab uses it for)
    "clang": ("clang", "--version", "compiles bpf/*.c"),
    "iperf3": ("iperf3", "--version", "throughput"),
    "sockperf": ("sockperf", "--version", "request/response latency"),
    "netperf": ("netperf", "-V", "TCP_RR/TCP_CRR/TCP_STREAM, the published figures' tool"),
    "tcpdump": ("tcpdump", "--version", "captures"),
    "ethtool": ("ethtool", "--version", "offload inspection"),
    "unbound": ("unbound", "-V", "DNS64"),
    "tayga": ("tayga", "--help", "userspace NAT64 for comparison"),
    "qemu": ("qemu-system-x86_64", "--version", "kernel VMs (lab vm)"),
    "ip": ("ip", "-V", "users' own inspection (the lab itself uses netlink)"),
}


# How long a tool may take to print its version: an emulated kernel VM (lab vm under TCG, on a
# busy host) took more than 5 s to start clang or QEMU, which is slowness, not absence.
TOOL_TIMEOUT = {"tcg": 60.0}
TOOL_TIMEOUT_NATIVE = 5.0


def tool(name: str) -> Capability:
    if name == "netperf":  # also the lab's verified copy of Debian's non-free package
        from lab.traffic import netperf_package

        return netperf_package.capability()
    cmd, arg, use = TOOLS[name]
    path = shutil.which(cmd)
    if path is None:
        return Capability(name, False, f"{cmd} not found (used for: {use})")
    timeout = TOOL_TIMEOUT.get(os.environ.get("LAB_VM_ACCEL", ""), TOOL_TIMEOUT_NATIVE)
    try:
        out = subprocess.run([path, arg], capture_output=True, text=True, timeout=timeout)
        text = (out.stdout or out.stderr).strip().splitlines()
        version = next((ln for ln in text if re.search(r"\d+\.\d+", ln)), f"at {path}")
    except (OSError, subprocess.TimeoutExpired) as e:
        return Capability(name, False, f"{cmd} does not run: {e}")
    return Capability(name, True, version.strip()[:80])


def _big_tcp_form(ipv6: Capability) -> Capability:
    """How this kernel writes IPv6 packets above 64 KB (what the translator must write too)."""
    from lab import bigtcp_form   # sends a packet: imported when run

    name = "big_tcp_ipv6_form"
    if not ipv6.ok:
        return Capability(name, False, f"no IPv6 BIG TCP: {ipv6.detail}")
    try:
        form = bigtcp_form.ipv6_form()
    except bigtcp_form.ProbeError as e:
        return Capability(name, False, str(e))
    return Capability(name, True, bigtcp_form.DESCRIPTIONS[form])


def collect() -> list[Capability]:
    """Every probe, as `lab doctor` lists them and scenarios' `requires:` name them: privileges
    first (without them, the kernel probes are skipped), then links, BIG TCP, BPF, tools."""
    # lab.bpf.features and lab.netfilter build their probes on this module's Capability:
    # imported when run.
    from lab import netfilter
    from lab.bpf import features as bpf_features

    caps = [privileges()]
    if caps[0].ok:
        ok, detail = link_kind("veth")
        caps.append(Capability("veth", ok, detail))
        ok, detail = netkit()
        caps.append(Capability("netkit", ok, detail))
        ok, detail = netem()
        caps.append(Capability("netem", ok, detail))
        big = big_tcp()
        caps += big.values()
        caps.append(_big_tcp_form(big["ipv6"]))
        caps += netfilter.capabilities()
    caps += bpf_features.collect()
    caps += [tool(name) for name in TOOLS]
    return caps
