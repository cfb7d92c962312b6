"""TAYGA, the userspace stateless translator (Debian package `tayga`), as the translator
section's `engine: tayga`: the same prefix and EAM entries as our BPF translator, for the
benchmark that compares the two (scenarios/nat46-bench.yaml).

At `lab up` (translator_topology.start): the configuration goes to the lab's run directory,
`tayga --mktun` creates the TUN device inside the gateway's namespace (it goes with the
namespace), the lab sets it up and routes into it what our translator's ingress would
translate: the prefix, the IPv4 ranges of EAM entries whose IPv6 side holds real hosts, and
the IPv6 ranges of those whose IPv4 side does; then `tayga --nodetach` runs as a process of
the lab (journaled, stopped by `lab down`).

TAYGA 0.9.2 (Debian 12) accepts the well-known prefix 64:ff9b::/96 and network-specific
prefixes, but refuses any other prefix inside the IETF-reserved ::/8 ("reserved address"), so RFC
8215's 64:ff9b:1::/48 and its /96 subnets cannot be compared; with the well-known prefix it
refuses, as RFC 6052 3.1 asks, non-global IPv4 addresses (the documentation ranges the lab
uses). A benchmark against it uses a documentation NSP such as 2001:db8:64::/96 for every
engine. It has no allow-list and no exclusions: the section refuses those with engine tayga.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from pathlib import Path

from lab.datapath.translator.addrmap import Rfc6052Prefix
from lab.datapath.translator.config import TranslatorConfig
from lab.errors import LabError, UsageError
from lab.lab import Lab

TUN = "nat64"
# TAYGA's own IPv4 address (the source of the ICMP errors it sends): the IPv4 Service
# Continuity Prefix of RFC 7335, meant for translators' own ends; routed into the TUN.
ADDRESS4 = "192.0.0.2"
UNSUPPORTED = ("allow", "exclude", "zero_tos", "pool4", "mtu4", "mtu6")


def check_prefix(prefix: Rfc6052Prefix) -> str | None:
    """Why TAYGA 0.9.2 would refuse PREFIX (None: it accepts it)."""
    net = prefix.network
    wkp = ipaddress.ip_network("64:ff9b::/96")
    if net != wkp and net.overlaps(ipaddress.ip_network("::/8")):
        return (f"TAYGA refuses {net}: inside the IETF-reserved ::/8 (which holds RFC 8215's "
                "64:ff9b:1::/48) it allows only the well-known prefix 64:ff9b::/96 (use a "
                "network-specific prefix such as 2001:db8:64::/96 to compare engines)")
    return None


def conf(cfg: TranslatorConfig, directory: Path) -> str:
    """tayga.conf for translator configuration CFG (a TranslatorConfig)."""
    lines = [f"tun-device {TUN}", f"ipv4-addr {ADDRESS4}"]
    if cfg.prefix is not None:
        lines.append(f"prefix {cfg.prefix.network}")
    for e in cfg.eam:
        if not e.own:
            lines.append(f"map {e.v4} {e.v6}")
    lines.append(f"data-dir {directory}")
    return "\n".join(lines) + "\n"


def start(lab: Lab, node: str, cfg: TranslatorConfig, routes: list[str]) -> None:
    """Create TAYGA's TUN device in NODE, route ROUTES (prefixes) into it and run it."""
    binary = shutil.which("tayga")
    if binary is None:
        raise UsageError("engine tayga needs TAYGA (Debian package `tayga`; `make deps` "
                         "installs it)")
    directory = lab.record.dir / "tayga"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "tayga.conf"
    path.write_text(conf(cfg, directory))
    handle = lab.node(node)
    made = handle.run([binary, "-c", str(path), "--mktun"], check=False)
    if made.returncode != 0:
        raise LabError(f"tayga --mktun in {node}: {(made.stderr or made.stdout).strip()}")
    from pyroute2 import IPRoute
    with handle.entered(), IPRoute() as ipr:
        index = ipr.link_lookup(ifname=TUN)[0]
        ipr.link("set", index=index, state="up")
        for dst in routes + [f"{ADDRESS4}/32"]:
            net = ipaddress.ip_network(dst)
            ipr.route("add", dst=str(net), oif=index,
                      family=socket.AF_INET6 if net.version == 6 else socket.AF_INET)
    log = open(directory / "tayga.log", "wb")
    try:
        proc = handle.popen([binary, "-c", str(path), "--nodetach"], stdout=log,
                            stderr=subprocess.STDOUT)
    finally:
        log.close()
    try:
        proc.wait(0.3)
    except subprocess.TimeoutExpired:
        return          # running
    raise LabError(f"tayga exited at once ({proc.returncode}): see {directory / 'tayga.log'}")
