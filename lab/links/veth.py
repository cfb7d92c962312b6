"""veth: a pair made by one request on the first end's namespace, the peer placed straight
into the other's, so nothing ever lives in the host's namespace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.netlink import rtnl

if TYPE_CHECKING:
    from lab.links import LinkBuild
    from lab.links.host import HostView
    from lab.topology import Interface, Link


class Veth:
    name = "veth"
    mtu_at_creation = True

    def check(self, link: Link, ends: Sequence[Interface], host: HostView) -> None:
        pass  # nothing of the host is used

    def create(self, link: Link, ends: Sequence[Interface], build: LinkBuild) -> None:
        a, b = link.a, link.b
        build.batch(a.node).add(
            rtnl.RTM_NEWLINK,
            rtnl.new_veth(a.ifname, a.ifindex, b.ifname, b.ifindex, build.ns_fd(b.node), a.mtu,
                          b.mtu, up=True),
            f"create veth {a.label} <-> {b.label}", create=True)


KIND = Veth()
