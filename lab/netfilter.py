"""Netfilter in a lab's namespaces: the connection tracking table, emptying tables the lab
wrote, and whether this machine can run kube-proxy's rules at all (`lab doctor`).

Everything here acts inside one namespace (a thread that entered it, or a process started
in it) and never in the host's. The rules themselves are the legacy node's
(lab/datapath/kubeproxy/); this module knows only tables, conntrack and tools.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from ipaddress import ip_address

from lab import netns
from lab.features import Capability

# iptables 1.8 ships two backends under the same rules language: nft (nf_tables rules with
# xtables matches: `iptables` on Debian 11+, Ubuntu 21.04+, RHEL 8+) and legacy (x_tables).
IPTABLES_BACKENDS = ("nft", "legacy")


def iptables_program(name: str, family: int, backend: str) -> str:
    """iptables-nft-restore, ip6tables-legacy-save, ...: one backend's own command."""
    if backend not in IPTABLES_BACKENDS:
        raise ValueError(f"iptables backend {backend!r}: expected one of {IPTABLES_BACKENDS}")
    return f"{'iptables' if family == 4 else 'ip6tables'}-{backend}-{name}"


# -- conntrack ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Connection:
    """One conntrack entry: the original direction's tuple and the reply's."""

    protocol: str
    orig_src: str
    orig_dst: str
    orig_dport: int
    reply_src: str
    reply_dst: str
    state: str

    @property
    def dnat(self) -> bool:
        """The reply comes from elsewhere than the original destination: DNATed."""
        return self.reply_src != self.orig_dst

    @property
    def snat(self) -> bool:
        return self.reply_dst != self.orig_src


def parse_conntrack(text: str) -> list[Connection]:
    """/proc/net/nf_conntrack's lines (CONFIG_NF_CONNTRACK_PROCFS)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        kv = [f.split("=", 1) for f in fields if "=" in f]
        src = [v for k, v in kv if k == "src"]
        dst = [v for k, v in kv if k == "dst"]
        dport = [v for k, v in kv if k == "dport"]
        if len(src) < 2 or len(dst) < 2:
            continue
        proto = fields[2]
        state = fields[5] if proto == "tcp" and "=" not in fields[5] else ""
        out.append(Connection(proto, str(ip_address(src[0])), str(ip_address(dst[0])),
                              int(dport[0]) if dport else 0, str(ip_address(src[1])),
                              str(ip_address(dst[1])), state))
    return out


def conntrack(namespace: str) -> list[Connection]:
    """NAMESPACE's conntrack table (empty if conntrack never ran there)."""
    with netns.entered(namespace):
        try:
            with open("/proc/thread-self/net/nf_conntrack") as f:
                return parse_conntrack(f.read())
        except FileNotFoundError:
            return []


def flush_conntrack(namespace: str) -> None:
    from pyroute2 import Conntrack

    with netns.entered(namespace):
        ct = Conntrack()
        try:
            ct.flush()
        finally:
            ct.close()


# -- tables the lab wrote -----------------------------------------------------------------------

def _run(namespace: str, argv: list[str], text: str) -> subprocess.CompletedProcess:
    return netns.run(namespace, argv, check=False, input=text, timeout=120)


def remove_tables(namespace: str, nft_tables: tuple[str, ...] = (),
                  legacy_tables: tuple[str, ...] = ()) -> list[str]:
    """Delete NFT_TABLES ("ip6 kube-proxy", "ip6 nat": nf_tables tables, iptables-nft's
    among them) and flush LEGACY_TABLES ("ip6 nat": iptables-legacy's) in NAMESPACE, and
    forget its connections. Returns what is gone; missing tables are no error."""
    gone = []
    if nft_tables and shutil.which("nft"):
        batch = "".join(f"add table {t}\ndelete table {t}\n" for t in nft_tables)
        if _run(namespace, ["nft", "-f", "-"], batch).returncode == 0:
            gone += [f"nft table {t}" for t in nft_tables]
    for family in (4, 6):
        names = [t.split()[1] for t in legacy_tables
                 if t.split()[0] == ("ip" if family == 4 else "ip6")]
        prog = iptables_program("restore", family, "legacy")
        if names and shutil.which(prog):
            batch = "".join(f"*{n}\nCOMMIT\n" for n in names)
            if _run(namespace, [prog, "-w", "5"], batch).returncode == 0:
                gone += [f"iptables-legacy table {t}" for t in legacy_tables
                         if t.startswith(("ip " if family == 4 else "ip6 "))]
    flush_conntrack(namespace)
    return gone


# -- can this machine run kube-proxy's rules? ---------------------------------------------------

# What kube-proxy's rules need of the kernel, in one small batch per tool: conntrack, NAT
# (DNAT, MASQUERADE --random-fully), and the matches and statements it uses (comment,
# statistic, mark, addrtype, conntrack state; verdict maps over concatenations, numgen, fib).
_IPTABLES_PROBE = """\
*nat
:PROBE-SVC - [0:0]
-A PREROUTING -m comment --comment "probe" -j PROBE-SVC
-A PROBE-SVC -m tcp -p tcp -d {vip} --dport 80 -m statistic --mode random \
--probability 0.5000000000 -j DNAT --to-destination {ep}
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully
-A OUTPUT -m addrtype --dst-type LOCAL -j RETURN
COMMIT
*filter
-A FORWARD -m conntrack --ctstate INVALID -j DROP
COMMIT
"""
_NFT_PROBE = """\
add table {fam} probe
add chain {fam} probe nat-prerouting {{ type nat hook prerouting priority -100 ; }}
add chain {fam} probe nat-postrouting {{ type nat hook postrouting priority 100 ; }}
add chain {fam} probe filter-forward {{ type filter hook forward priority -110 ; }}
add chain {fam} probe endpoint
add chain {fam} probe service
add map {fam} probe service-ips {{ type {addr} . inet_proto . inet_service : verdict ; }}
add rule {fam} probe nat-prerouting {fam} daddr . meta l4proto . th dport vmap @service-ips
add rule {fam} probe service numgen random mod 1 vmap {{ 0 : goto endpoint }}
add rule {fam} probe endpoint meta l4proto tcp dnat to {ep}
add rule {fam} probe nat-postrouting mark and 0x4000 == 0 return
add rule {fam} probe nat-postrouting masquerade fully-random
add rule {fam} probe filter-forward ct state new fib daddr type local return
add element {fam} probe service-ips {{ {vip} . tcp . 80 : goto service }}
"""
_SAMPLES = {4: ("10.96.0.10", "10.244.0.10:80"), 6: ("fd00:10:96::a", "[fd00:10:244::10]:80")}


def _first_error(out: subprocess.CompletedProcess) -> str:
    text = (out.stderr or out.stdout or "").strip().splitlines()
    return text[0] if text else f"exit status {out.returncode}"


def _version(cmd: str) -> str:
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return cmd
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else cmd


def iptables_capability(backend: str = "nft") -> Capability:
    """Do this backend's iptables-restore and ip6tables-restore load rules like kube-proxy's?"""
    name = "iptables" if backend == "nft" else f"iptables_{backend}"
    needed = [iptables_program(v, fam, backend) for fam in (4, 6) for v in ("restore", "save")]
    missing = [c for c in needed if shutil.which(c) is None]
    if missing:
        return Capability(name, False, f"{', '.join(missing)} not found: install the iptables "
                                       "package (make deps)")
    try:
        with netns.anonymous():
            for fam, (vip, ep) in _SAMPLES.items():
                prog = iptables_program("restore", fam, backend)
                out = subprocess.run([prog, "-w", "5"], text=True, capture_output=True,
                                     input=_IPTABLES_PROBE.format(vip=vip, ep=ep), timeout=30)
                if out.returncode != 0:
                    return Capability(name, False, f"{prog} refuses what kube-proxy's rules "
                                                   f"use: {_first_error(out)}")
    except OSError as e:
        return Capability(name, False, f"cannot probe: {e}")
    return Capability(name, True, f"{_version(needed[0])}: conntrack, NAT and kube-proxy's "
                                  "matches load")


def nftables_capability() -> Capability:
    """Does nft load rules like kube-proxy's nftables mode?"""
    if shutil.which("nft") is None:
        return Capability("nftables", False, "nft not found: install the nftables package "
                                             "(make deps)")
    try:
        with netns.anonymous():
            for fam, (vip, ep) in _SAMPLES.items():
                family, addr = ("ip", "ipv4_addr") if fam == 4 else ("ip6", "ipv6_addr")
                out = subprocess.run(["nft", "-f", "-"], text=True, capture_output=True,
                                     input=_NFT_PROBE.format(fam=family, addr=addr, vip=vip,
                                                             ep=ep), timeout=30)
                if out.returncode != 0:
                    return Capability("nftables", False, f"nft refuses what kube-proxy's "
                                                         f"IPv{fam} rules use: "
                                                         f"{_first_error(out)}")
    except OSError as e:
        return Capability("nftables", False, f"cannot probe: {e}")
    return Capability("nftables", True, f"{_version('nft')}: verdict maps, numgen, NAT load")


def capabilities() -> list[Capability]:
    return [iptables_capability("nft"), iptables_capability("legacy"), nftables_capability()]
