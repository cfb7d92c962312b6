"""The host's own namespace as the link kinds check it before anything is made: its devices,
their addresses, its routes (one dump each), and which route reaches an address.

"The host" is the network namespace of the process bringing the lab up: the root namespace of
a machine, or of a test's emulated host.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from lab.netlink import rtnl
from lab.netlink.batch import open_socket, request

IFF_UP = 0x1
RTPROT_KERNEL, RTPROT_RA = 2, 9  # routes the kernel makes again by itself


@dataclass
class HostDevice:
    name: str
    index: int
    mtu: int
    up: bool
    mac: str | None
    kind: str | None  # IFLA_INFO_KIND: veth, vxlan, bridge... None for a NIC
    pci: str | None  # the parent device's name on the PCI bus (0000:41:00.0)
    perm_mac: str | None
    min_mtu: int | None
    max_mtu: int | None
    tso_max_size: int | None
    settings: dict[str, int | None] = field(default_factory=dict)  # txqueuelen, GSO/GRO sizes
    addresses: list[dict] = field(default_factory=list)  # {address, prefixlen, family...}


def home_inode() -> int:
    """The identity of the host's namespace: where NICs are given back."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def _mac(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = ":".join(f"{b:02x}" for b in value)
    value = value.replace(":", "").lower()
    if not value or set(value) == {"0"}:
        return None
    return ":".join(value[i:i + 2] for i in range(0, len(value), 2))


class HostView:
    """One look at the host's namespace (the calling thread's)."""

    def __init__(self, sock: socket.socket | None = None):
        own = sock is None
        self.sock = sock or open_socket()
        try:
            self.devices = self._links()
            self._addresses()
            self.routes = self._routes()
        finally:
            if own:
                self.sock.close()
                self.sock = None

    def _links(self) -> dict[str, HostDevice]:
        out = {}
        for m in request(self.sock, rtnl.RTM_GETLINK, rtnl.LinkMessage(), rtnl.LinkMessage,
                         dump=True):
            info = m.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            bus = m.get_attr("IFLA_PARENT_DEV_BUS_NAME")
            name = m.get_attr("IFLA_IFNAME")
            out[name] = HostDevice(
                name=name, index=m["index"], mtu=m.get_attr("IFLA_MTU"),
                up=bool(m["flags"] & IFF_UP), mac=_mac(m.get_attr("IFLA_ADDRESS")), kind=kind,
                pci=(m.get_attr("IFLA_PARENT_DEV_NAME") or "").lower() or None
                if bus == "pci" else None,
                perm_mac=_mac(m.get_attr("IFLA_PERM_ADDRESS")),
                min_mtu=m.get_attr("IFLA_MIN_MTU"), max_mtu=m.get_attr("IFLA_MAX_MTU"),
                tso_max_size=m.get_attr("IFLA_TSO_MAX_SIZE"),
                settings={"txqueuelen": m.get_attr("IFLA_TXQLEN"),
                          **{k: m.get_attr(f"IFLA_{k.upper()}") for k in (
                              "gso_max_size", "gro_max_size", "gso_ipv4_max_size",
                              "gro_ipv4_max_size")}})
        return out

    def _addresses(self) -> None:
        by_index = {d.index: d for d in self.devices.values()}
        for a in request(self.sock, rtnl.RTM_GETADDR, rtnl.dump_of(kind=ifaddrmsg), ifaddrmsg,
                         dump=True):
            dev = by_index.get(a["index"])
            if dev is None:
                continue
            dev.addresses.append({
                "address": a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"),
                "prefixlen": a["prefixlen"], "family": a["family"],
                "broadcast": a.get_attr("IFA_BROADCAST"), "label": a.get_attr("IFA_LABEL"),
                "scope": a["scope"]})

    def _routes(self) -> list[dict]:
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for r in request(self.sock, rtnl.RTM_GETROUTE, rtnl.dump_of(family), rtmsg,
                             dump=True):
                if r.get_attr("RTA_TABLE") != rtnl.RT_TABLE_MAIN or r["type"] != rtnl.RTN_UNICAST:
                    continue
                out.append({"family": family, "dst": r.get_attr("RTA_DST"),
                            "dst_len": r["dst_len"], "via": r.get_attr("RTA_GATEWAY"),
                            "oif": r.get_attr("RTA_OIF"), "proto": r["proto"],
                            "onlink": bool(r["flags"] & rtnl.RTNH_F_ONLINK),
                            "priority": r.get_attr("RTA_PRIORITY")})
        return out

    # -- questions ---------------------------------------------------------------------------

    def find_nic(self, spec: str) -> HostDevice | None:
        """The device SPEC names: its name, or its PCI address."""
        if ":" in spec:
            return next((d for d in self.devices.values() if d.pci == spec.lower()), None)
        return self.devices.get(spec)

    def nics(self) -> list[str]:
        """Devices that could be given to a lab, for messages: those with a parent device,
        else every device but loopback."""
        named = [d.name + (f" ({d.pci})" if d.pci else "") for d in self.devices.values()
                 if d.pci and d.name != "lo"]
        return named or [d.name for d in self.devices.values() if d.name != "lo"]

    def owner_of(self, address: str) -> HostDevice | None:
        """The device ADDRESS is assigned to on this host."""
        for d in self.devices.values():
            if any(a["address"] == address for a in d.addresses):
                return d
        return None

    def static_routes(self, dev: HostDevice) -> list[dict]:
        """DEV's routes that vanish with it and nobody makes again (not the prefix routes
        of its addresses, nor router advertisements')."""
        return [r for r in self.routes if r["oif"] == dev.index
                and r["proto"] not in (RTPROT_KERNEL, RTPROT_RA)]

    def route_device(self, address: str) -> HostDevice | None:
        """The device the host sends to ADDRESS by (a route lookup, as `ip route get`)."""
        sock = open_socket()
        try:
            (r,) = request(sock, rtnl.RTM_GETROUTE, rtnl.route_to(address), rtmsg)
        except (OSError, ValueError):
            return None
        finally:
            sock.close()
        oif = r.get_attr("RTA_OIF")
        return next((d for d in self.devices.values() if d.index == oif), None)
