"""Link kinds: how each kind of link in a topology becomes kernel devices, one small module per
kind, as containerlab's links/ package has it.

  veth, netkit   a pair made by one request, both ends on one host (veth.py, netkit.py)
  vxlan          each end a VXLAN device in its node, its underlay the host's (vxlan.py)
  phys           each end a host NIC moved into its node and given back at `lab down` (phys.py)

The builder (lab/build.py) finds a link's kind with `kind_of()` and calls its hooks; a kind
sees the builder only through `LinkBuild`, the narrow interface declared here, and the host it
is built on through `HostView` (host.py). Nothing here imports the builder.

A kind's hooks:
  check(link, ends, host)    before anything is made, on the host that makes ENDS (this link's
                             ends on that host): what the host must have (the NIC, the underlay
                             address and its MTU), as InputErrors at the file's key path; it
                             completes what the host decides (a VXLAN end's MTU)
  create(link, ends, build)  make ENDS, journaled first where the journal must know more than
                             the namespaces (a NIC to give back, a device to close early)
  mtu_at_creation            whether create() sets the MTU (the builder sets the rest)
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lab.errors import LabError

if TYPE_CHECKING:
    from lab.journal import Record
    from lab.links.host import HostView
    from lab.netlink.batch import RtnlBatch
    from lab.topology import Interface, Link


class LinkBuild(Protocol):
    """What a link kind needs of the builder."""

    def ns(self, node: str) -> str:
        """The network namespace of NODE."""

    def ns_fd(self, node: str) -> int:
        """An open fd of NODE's namespace (to place a device there)."""

    def batch(self, node: str) -> RtnlBatch:
        """Requests on NODE's namespace socket, sent after every link is queued."""

    def host_batch(self) -> RtnlBatch:
        """Requests on the host's own namespace socket, sent before the nodes' batches."""

    def free_ifindex(self, end: Interface) -> int:
        """END's index, moved if need be to one free both in its node and on the host: a
        request on the host's socket that names an index finds the host's device of that
        index first (and NLM_F_EXCL refuses it). The model is updated."""

    def journal(self, *records: Record) -> None:
        """Write RECORDS to the lab's journal (before acting on them)."""


class LinkKind(Protocol):
    name: str
    mtu_at_creation: bool

    def check(self, link: Link, ends: Sequence[Interface], host: HostView) -> None: ...

    def create(self, link: Link, ends: Sequence[Interface], build: LinkBuild) -> None: ...


def kind_of(link: Link) -> LinkKind:
    """The kind of LINK (its `kind:` in the file)."""
    from lab.links import netkit, phys, veth, vxlan

    kinds: dict[str, LinkKind] = {"veth": veth.KIND, "netkit": netkit.KIND,
                                  "netkit-l2": netkit.KIND, "vxlan": vxlan.KIND,
                                  "phys": phys.KIND}
    try:
        return kinds[link.kind]
    except KeyError:
        raise LabError(f"unknown link kind '{link.kind}'") from None

