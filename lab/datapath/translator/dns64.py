"""DNS64 (RFC 6147) for a translator of the lab, by a real server: unbound with its dns64
module, started inside the lab from the translator section's `dns64:` mapping.

    datapath:
      translator:
        prefix: "64:ff9b:1::/96"
        dns64:
          node: gw                       # the resolver's node (default: the translator's)
          listen: "fd00:0:0:1::1"        # default: the first own pair's IPv6, else the node's
          clients: [node1-pod0]          # whose resolv.conf names it (default: every pod)
          zone:                          # an IPv4-only name to resolve
            name: ipv4only.lab
            A: 198.51.100.10             # an address or a list of them
            node: server4                # its authoritative server (default: the node
                                         # holding the first A address)

Two unbound processes: on the zone's node an authoritative one (local-data: the A records,
SOA, NS; no AAAA), and on the resolver's node a recursive one with `module-config: "dns64
iterator"`, `dns64-prefix:` the translator's prefix and a stub zone pointing at the first.
A pod asking for the name's AAAA gets NODATA from the zone, and the resolver synthesizes
AAAA records from the A records, inside the prefix. (unbound's own local-data would be
answered before the module chain, without synthesis: hence the second server.)

Both run in the foreground (`-d`), without chroot or privilege drop, with config, logs and
nothing else in the lab's run directory; they are started with NodeHandle.popen, so the
journal has them and `lab down` stops them. Their sockets live in the lab's namespaces, so
port 53 never meets a system resolver (Debian's unbound package installs a service on the
host; the lab neither uses nor touches it). Pods get /etc/netns/<ns>/resolv.conf, which
processes started in the lab see as /etc/resolv.conf (and `lab down` removes).
"""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from lab.errors import InputError, LabError, UsageError
from lab.lab import Lab
from lab.topology import Topology

PORT = 53
READY_TIMEOUT = 10.0


def _bad(path: tuple, message: str, key: bool = False) -> InputError:
    """A bad value at PATH (relative to the `dns64:` mapping)."""
    return InputError(message, path=path, at_key=key)


@dataclass(frozen=True)
class Dns64Config:
    node: str                  # the resolver
    listen: str                # its address
    clients: tuple[str, ...]   # nodes whose resolv.conf names it
    prefix: str                # the translator's RFC 6052 prefix
    zone: str                  # e.g. "ipv4only.lab"
    records: tuple[str, ...]   # the zone's A records (IPv4 addresses)
    zone_node: str             # the zone's authoritative server
    zone_address: str          # where it listens (the first A address if it is the node's)

    def synthesized(self) -> list[str]:
        """The AAAA records the resolver makes of the A records (RFC 6052)."""
        from lab.datapath.translator.addrmap import Rfc6052Prefix
        prefix = Rfc6052Prefix.parse(self.prefix)
        return [str(prefix.embed(IPv4Address(a))) for a in self.records]


KEYS = ("node", "listen", "clients", "zone")
ZONE_KEYS = ("name", "A", "node")


def parse(data: Any, topo: Topology, translator_node: str, prefix: str | None,
          own6: str | None) -> Dns64Config:
    """The `dns64:` mapping resolved against TOPO; InputError at the bad value (paths
    relative to the mapping)."""
    if not isinstance(data, Mapping):
        raise _bad((), "expected a mapping")
    for key in data:
        if key not in KEYS:
            raise _bad((key,), f"unknown setting '{key}' (known: {', '.join(KEYS)})",
                             key=True)
    if prefix is None:
        raise _bad((), "DNS64 synthesizes addresses in the translator's prefix: set "
                             "`prefix`", key=True)
    node = data.get("node", translator_node)
    if node not in topo.nodes:
        raise _bad(("node",), f"no node '{node}'")
    addrs6 = [str(a.ip) for a in topo.nodes[node].addresses(6) if not a.ip.is_link_local]
    if "listen" in data:
        listen = str(data["listen"])
        if listen not in [str(a.ip) for a in topo.nodes[node].addresses()]:
            raise _bad(("listen",), f"{listen} is not an address of node '{node}'")
    elif own6 is not None and node == translator_node:
        listen = own6
    elif addrs6:
        listen = addrs6[0]
    else:
        raise _bad(("node",), f"node '{node}' has no IPv6 address to serve on")
    clients = data.get("clients")
    if clients is None:
        clients = [n.name for n in topo.nodes.values() if n.role == "pod"]
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise _bad(("clients",), "expected a list of node names")
    for i, c in enumerate(clients):
        if c not in topo.nodes:
            raise _bad(("clients", i), f"no node '{c}'")
    zone = data.get("zone")
    if not isinstance(zone, Mapping):
        raise _bad(("zone",) if "zone" in data else (), "give a `zone:` with `name` and "
                         "`A` (the IPv4-only name to resolve)", key="zone" not in data)
    for key in zone:
        if key not in ZONE_KEYS:
            raise _bad(("zone", key), f"unknown setting '{key}' (known: "
                             f"{', '.join(ZONE_KEYS)})", key=True)
    name = zone.get("name")
    labels = str(name).rstrip(".").split(".") if isinstance(name, str) else []
    if not labels or not all(lbl and len(lbl) < 64 and lbl.replace("-", "").isalnum()
                             for lbl in labels):
        raise _bad(("zone", "name"), f"'{name}' is not a domain name")
    records = zone.get("A")
    records = [records] if isinstance(records, str) else records
    if not isinstance(records, list) or not records:
        raise _bad(("zone", "A") if "A" in zone else ("zone",),
                         "give the name's IPv4 address(es) as `A`", key="A" not in zone)
    for i, r in enumerate(records):
        try:
            IPv4Address(str(r))
        except ValueError:
            where = ("zone", "A") if isinstance(zone["A"], str) else ("zone", "A", i)
            raise _bad(where, f"'{r}' is not an IPv4 address") from None
    owner = [n.name for n in topo.nodes.values()
             if any(str(a.ip) == records[0] for a in n.addresses(4))]
    zone_node = zone.get("node", owner[0] if owner else None)
    if zone_node is None:
        raise _bad(("zone",), f"no node has {records[0]}: say which node serves the "
                                    "zone (`node:`)", key=True)
    if zone_node not in topo.nodes:
        raise _bad(("zone", "node"), f"no node '{zone_node}'")
    if zone_node == node:
        raise _bad(("zone", "node"), "the zone needs a server of its own, apart from "
                         "the resolver (unbound answers its own local data without DNS64)")
    v4 = [str(a.ip) for a in topo.nodes[zone_node].addresses(4)]
    if not v4:
        raise _bad(("zone", "node"), f"node '{zone_node}' has no IPv4 address: the "
                         "zone is the IPv4-only world's")
    zone_address = records[0] if records[0] in v4 else v4[0]
    return Dns64Config(node=node, listen=listen, clients=tuple(clients), prefix=prefix,
                       zone=".".join(labels), records=tuple(str(r) for r in records),
                       zone_node=zone_node, zone_address=zone_address)


# --- unbound configurations -------------------------------------------------------------------

def _common(directory: Path, address: str) -> list[str]:
    return ["server:",
            f"  interface: {address}",
            f"  port: {PORT}",
            "  do-daemonize: no",
            '  chroot: ""',
            '  username: ""',
            '  pidfile: ""',
            f'  directory: "{directory}"',
            '  logfile: ""',
            "  use-syslog: no",
            "  verbosity: 1",
            "  num-threads: 1",
            "  so-reuseport: no",
            "  access-control: 0.0.0.0/0 allow",
            "  access-control: ::/0 allow"]


def zone_conf(cfg: Dns64Config, directory: Path) -> str:
    """The authoritative server of the IPv4-only zone: A records only."""
    z = cfg.zone + "."
    lines = _common(directory, cfg.zone_address) + [
        "  module-config: \"iterator\"",
        f'  local-zone: "{z}" static',
        f'  local-data: "{z} 60 IN SOA ns.{z} hostmaster.{z} 1 3600 600 86400 60"',
        f'  local-data: "{z} 60 IN NS ns.{z}"',
        f'  local-data: "ns.{z} 60 IN A {cfg.zone_address}"',
    ] + [f'  local-data: "{z} 60 IN A {a}"' for a in cfg.records]
    return "\n".join(lines + ["remote-control:", "  control-enable: no", ""])


def resolver_conf(cfg: Dns64Config, directory: Path) -> str:
    """The DNS64 resolver: iterator with the dns64 module in front, the zone as a stub."""
    lines = _common(directory, cfg.listen) + [
        '  module-config: "dns64 iterator"',
        f"  dns64-prefix: {cfg.prefix}",
        "  do-not-query-localhost: no",
        "  qname-minimisation: no",
        "stub-zone:",
        f'  name: "{cfg.zone}."',
        f"  stub-addr: {cfg.zone_address}",
        "remote-control:",
        "  control-enable: no",
        ""]
    return "\n".join(lines)


# --- running ----------------------------------------------------------------------------------

def _unbound() -> str:
    path = shutil.which("unbound")
    if path is None:
        raise UsageError("DNS64 needs unbound (Debian package `unbound`; `make deps` installs "
                         "it)")
    return path


def start(lab: Lab, cfg: Dns64Config) -> None:
    """Start the zone's server and the resolver in LAB, point the clients at the resolver,
    and wait until the resolver answers with a synthesized address."""
    binary = _unbound()
    directory = lab.record.dir / "dns64"
    directory.mkdir(mode=0o700, exist_ok=True)
    for role, node, text in (("zone", cfg.zone_node, zone_conf(cfg, directory)),
                             ("resolver", cfg.node, resolver_conf(cfg, directory))):
        conf = directory / f"unbound-{role}.conf"
        conf.write_text(text)
        check = lab.node(node).run([binary + "-checkconf", str(conf)], check=False)
        if check.returncode != 0:
            raise LabError(f"unbound refuses {conf}: {(check.stdout + check.stderr).strip()}")
        log = open(directory / f"unbound-{role}.log", "wb")
        try:
            lab.node(node).popen([binary, "-d", "-c", str(conf)], stdout=log,
                                 stderr=subprocess.STDOUT)
        finally:
            log.close()
    for client in cfg.clients:
        lab.node(client).write_etc("resolv.conf", f"nameserver {cfg.listen}\n"
                                                  "options timeout:2 attempts:3\n")
    deadline = time.monotonic() + READY_TIMEOUT
    want = set(cfg.synthesized())
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if set(query(lab.node(cfg.node).netns, cfg.listen, cfg.zone, "AAAA")) == want:
                return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise LabError(f"the DNS64 resolver on {cfg.node} did not answer {cfg.zone} AAAA with "
                   f"{', '.join(sorted(want))} within {READY_TIMEOUT:.0f} s"
                   + (f" ({last})" if last else "") + f"; logs in {directory}")


_QTYPES = {"A": 1, "AAAA": 28}


def query(ns: str, server: str, name: str, qtype: str = "AAAA",
          timeout: float = 1.0) -> list[str]:
    """Ask SERVER (from inside namespace NS) for NAME's QTYPE records over UDP; the
    addresses of the answer (empty for NODATA)."""
    qid = random.randrange(1 << 16)
    question = b"".join(bytes([len(lbl)]) + lbl.encode() for lbl in name.rstrip(".").split("."))
    question += b"\0" + struct.pack("!HH", _QTYPES[qtype], 1)
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    family = socket.AF_INET6 if ip_address(server).version == 6 else socket.AF_INET
    from lab import netns
    s = netns.socket_in(ns, family, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(msg, (server, PORT))
        while True:
            data = s.recv(4096)
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                break
    finally:
        s.close()
    return _answers(data, len(msg), _QTYPES[qtype])


def _skip_name(data: bytes, off: int) -> int:
    while True:
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def _answers(data: bytes, question_end: int, qtype: int) -> list[str]:
    flags, _, ancount = struct.unpack("!HHH", data[2:8])
    if flags & 0xF:
        raise OSError(f"DNS error rcode {flags & 0xF}")
    off, out = question_end, []
    for _ in range(ancount):
        off = _skip_name(data, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[off:off + 10])
        off += 10
        rdata = data[off:off + rdlen]
        off += rdlen
        if rtype == qtype == 1:
            out.append(str(IPv4Address(rdata)))
        elif rtype == qtype == 28:
            out.append(str(IPv6Address(rdata)))
    return out
