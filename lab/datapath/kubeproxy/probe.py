"""Can this machine run kube-proxy's rules? `lab doctor`'s iptables, iptables_legacy and
nftables lines.

A tool on PATH is not enough: the kernel must have what the rules use (conntrack, NAT,
statistic, addrtype, comment, mark, masquerade; for nftables numgen, fib, verdict maps). So
each probe loads kube-proxy's ruleset for one IPv4 and one IPv6 service, in an anonymous
network namespace that vanishes with the probe, and reports the tool's version or the first
line it refused.
"""

from __future__ import annotations

import shutil
import subprocess

from lab import netns
from lab.datapath.kubeproxy import iptables, nftables
from lab.datapath.kubeproxy.services import ClusterConfig, Endpoint, ServicePort
from lab.features import Capability

_SAMPLE = {
    4: (ServicePort("lab", "probe", "p80", "tcp", "10.96.0.10", 80,
                    (Endpoint("10.244.0.10", 80), Endpoint("10.244.0.11", 80)), 30080),
        ClusterConfig(4, "10.244.0.0/16", "10.96.0.0/16", ("192.0.2.1",))),
    6: (ServicePort("lab", "probe", "p80", "tcp", "fd00:10:96::a", 80,
                    (Endpoint("fd00:10:244::10", 80), Endpoint("fd00:10:244::11", 80)), 30080),
        ClusterConfig(6, "fd00:10:244::/56", "fd00:10:96::/108", ("2001:db8::1",))),
}


def _first_error(out: subprocess.CompletedProcess) -> str:
    text = (out.stderr or out.stdout or "").strip().splitlines()
    return text[0] if text else f"exit status {out.returncode}"


def _version(cmd: str, arg: str = "--version") -> str:
    try:
        out = subprocess.run([cmd, arg], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return cmd
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else cmd


def iptables_mode(backend: str = "nft") -> Capability:
    name = "iptables" if backend == "nft" else f"iptables_{backend}"
    needed = [iptables.program(verb, fam, backend) for fam in (4, 6)
              for verb in ("restore", "save")]
    missing = [c for c in needed if shutil.which(c) is None]
    if missing:
        return Capability(name, False, f"{', '.join(missing)} not found: install the iptables "
                                       "package (make deps)")
    try:
        with netns.anonymous():
            for fam, (svc, cfg) in _SAMPLE.items():
                out = subprocess.run(iptables.restore_command(fam, backend), text=True,
                                     input=iptables.Ruleset([svc], cfg).initial(),
                                     capture_output=True, timeout=30)
                if out.returncode != 0:
                    return Capability(name, False, f"{needed[2 * (fam == 6)]} refuses "
                                                   f"kube-proxy's rules: {_first_error(out)}")
    except OSError as e:
        return Capability(name, False, f"cannot probe: {e}")
    return Capability(name, True, f"{_version(needed[0])}: loads kube-proxy's rules")


def nftables_mode() -> Capability:
    if shutil.which("nft") is None:
        return Capability("nftables", False, "nft not found: install the nftables package "
                                             "(make deps)")
    try:
        with netns.anonymous():
            for fam, (svc, cfg) in _SAMPLE.items():
                out = subprocess.run(nftables.command(), text=True,
                                     input=nftables.Ruleset([svc], cfg).full_sync(),
                                     capture_output=True, timeout=30)
                if out.returncode != 0:
                    return Capability("nftables", False, f"nft refuses kube-proxy's IPv{fam} "
                                                         f"rules: {_first_error(out)}")
    except OSError as e:
        return Capability("nftables", False, f"cannot probe: {e}")
    return Capability("nftables", True, f"{_version('nft')}: loads kube-proxy's rules")


def collect() -> list[Capability]:
    return [iptables_mode("nft"), iptables_mode("legacy"), nftables_mode()]
