"""netkit (and netkit-l2): a pair whose first end is the primary, made like veth by one
request; the kernel must have netkit (6.7+, CONFIG_NETKIT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.errors import UsageError
from lab.netlink import rtnl

if TYPE_CHECKING:
    from lab.links import LinkBuild
    from lab.links.host import HostView
    from lab.topology import Interface, Link


class Netkit:
    name = "netkit"
    mtu_at_creation = True

    def __init__(self):
        self._probed: tuple[bool, str] | None = None  # one probe for all the lab's pairs

    def check(self, link: Link, ends: Sequence[Interface], host: HostView) -> None:
        from lab import features

        if self._probed is None:
            self._probed = features.netkit()
        ok, reason = self._probed
        if not ok:
            raise UsageError(f"the topology uses netkit links, but {reason}; run it in a "
                             "kernel VM with `lab vm -- lab up ...`")

    def create(self, link: Link, ends: Sequence[Interface], build: LinkBuild) -> None:
        a, b, opts = link.a, link.b, link.netkit
        msg = rtnl.new_netkit(a.ifname, a.ifindex, b.ifname, b.ifindex, build.ns_fd(b.node),
                              mode="l2" if link.kind == "netkit-l2" else "l3",
                              policy=opts.get("policy", "forward"),
                              peer_policy=opts.get("peer_policy", "forward"),
                              scrub=opts.get("scrub"), peer_scrub=opts.get("peer_scrub"),
                              mtu=a.mtu, peer_mtu=b.mtu, up=True)
        build.batch(a.node).add(rtnl.RTM_NEWLINK, msg,
                                f"create {link.kind} {a.label} <-> {b.label}", create=True)


KIND = Netkit()
