"""vxlan: each end a VXLAN device in its node, the tunnel's underlay in its host's namespace.

The device is made by one request on the host's own socket with the node's namespace as its
place (IFLA_NET_NS_FD): the kernel keeps its UDP socket in the namespace the request came from
(the host's, where the underlay address is) and registers the device straight in the node's,
so it never appears on the host. An end's MTU is the underlay device's minus the encapsulation
(outer Ethernet + IP + UDP + VXLAN: 50 bytes over IPv4, 70 over IPv6) unless the file sets
one, which must fit in it. BIG TCP sizes and offloads are set on it like on a veth.

The device is journaled (VxlanCreated) so `lab down` deletes it before its namespace: the
kernel tears namespaces down asynchronously, and until it does the VNI stays bound on the
host, which would refuse the next `lab up` of the same link.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab import netns
from lab.errors import InputError
from lab.journal import VxlanCreated
from lab.netlink import rtnl
from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket, request

if TYPE_CHECKING:
    from lab.links import LinkBuild
    from lab.links.host import HostView
    from lab.topology import Interface, Link

log = logging.getLogger("lab")
IPV6_MIN_MTU = 1280


def mtu_origin(link: Link, end: Interface) -> tuple:
    """Where END's MTU was set in the file (the end, else the link): for error positions."""
    return link.end_origin(end) + ("mtu",)


class Vxlan:
    name = "vxlan"
    mtu_at_creation = True

    def check(self, link: Link, ends: Sequence[Interface], host: HostView) -> None:
        for end in ends:
            self._check_end(link, end, host)

    def _check_end(self, link: Link, end: Interface, host: HostView) -> None:
        v = end.vxlan
        where = link.end_origin(end)
        owner = host.owner_of(v.local)
        if owner is None:
            mine = sorted({a["address"] for d in host.devices.values() for a in d.addresses
                           if d.name != "lo" and not a["address"].startswith("fe80")})
            raise InputError(f"{v.local} is not an address of this host, so no VXLAN tunnel "
                             f"can leave from it (its addresses: {', '.join(mine) or 'none'})",
                             path=where + ("underlay", "address"))
        if v.dev is not None:
            dev = host.devices.get(v.dev)
            if dev is None:
                raise InputError(f"this host has no device {v.dev}",
                                 path=where + ("underlay", "dev"))
        else:
            dev = host.route_device(v.remote)
            if dev is None:
                raise InputError(f"this host has no route to the remote underlay {v.remote}",
                                 path=where + ("underlay", "address"))
        room = dev.mtu - v.overhead
        family = "IPv4" if ":" not in v.local else "IPv6"
        if end.mtu is None:
            end.mtu = room
        elif end.mtu > room:
            raise InputError(
                f"MTU {end.mtu} cannot be carried over VXLAN: the underlay device {dev.name} "
                f"has MTU {dev.mtu}, and {v.overhead} bytes of {family} encapsulation leave at "
                f"most {room} (raise {dev.name}'s MTU to {end.mtu + v.overhead}, or set this "
                f"end's mtu to {room} or less)", path=mtu_origin(link, end))
        if end.mtu < IPV6_MIN_MTU and any(a.version == 6 for a in end.addresses):
            raise InputError(
                f"the VXLAN end's MTU would be {end.mtu} (underlay {dev.name}: {dev.mtu} - "
                f"{v.overhead}), below IPv6's minimum of {IPV6_MIN_MTU}: raise {dev.name}'s MTU "
                f"to at least {IPV6_MIN_MTU + v.overhead}", path=where)
        if end.mtu < 68:
            raise InputError(f"the VXLAN end's MTU would be {end.mtu}, below IPv4's minimum "
                             "of 68", path=where)
        v.dev = dev.name  # the device the MTU was derived from, pinned as the underlay

    def create(self, link: Link, ends: Sequence[Interface], build: LinkBuild) -> None:
        for end in ends:
            v = end.vxlan
            build.journal(VxlanCreated(build.ns(end.node), end.ifname))
            build.host_batch().add(
                rtnl.RTM_NEWLINK,
                rtnl.new_vxlan(end.ifname, build.free_ifindex(end), build.ns_fd(end.node),
                               v.vni, v.local,
                               v.remote, v.port, underlay_ifindex=_ifindex(v.dev), ttl=v.ttl,
                               learning=v.learning, mtu=end.mtu, mac=end.mac),
                f"create vxlan {end.label} (VNI {v.vni}, {v.local} -> {v.remote} port "
                f"{v.port}{' via ' + v.dev if v.dev else ''})", create=True)


def _ifindex(name: str | None) -> int | None:
    return socket.if_nametoindex(name) if name else None


def remove(record: VxlanCreated) -> bool:
    """Delete the recorded device now, if its namespace still holds one of that name."""
    if not netns.exists(record.namespace):
        return False
    with contextlib.suppress(OSError), netns.entered(record.namespace):
        try:
            index = socket.if_nametoindex(record.ifname)
        except OSError:
            return False
        sock = open_socket()
        try:
            (msg,) = request(sock, rtnl.RTM_GETLINK, rtnl.get_link(index), rtnl.LinkMessage)
            info = msg.get_attr("IFLA_LINKINFO")
            if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
                return False  # not the device the lab made
            batch = RtnlBatch(sock, record.namespace)
            batch.add(rtnl.RTM_DELLINK, rtnl.del_link(index), f"delete vxlan {record.ifname}")
            try:
                batch.flush()
            except NetlinkError as e:
                log.warning("%s: %s", record.namespace, e)
                return False
            return True
        finally:
            sock.close()
    return False


KIND = Vxlan()
