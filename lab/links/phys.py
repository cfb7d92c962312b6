"""phys: each end a NIC of its host, moved into its node for the lab's life and given back.

Before a NIC moves, everything needed to give it back is journaled (PhysMoved): its name,
index, MTU, MAC, state, queue length and GSO/GRO sizes, its addresses and static routes, its
changeable offloads, and what identifies it (PCI address, permanent MAC). It is then moved by
one request on the host's socket, renamed to the end's `ifname` and given the node's planned
index on the way (IFLA_NEW_IFINDEX, kernel 6.5+). In the node it is configured like any end
(MTU, BIG TCP sizes, offloads, addresses).

`lab down` (and, after a crash, `lab down` from the journal) moves it back into the host's
namespace under its own name and restores what the journal holds. It does so before the
node's namespace is removed; had the namespace gone first (someone's `ip netns del`), the
kernel has already moved the NIC back to the initial namespace, where it is found by its PCI
address or permanent MAC.

A NIC that carries the host's default route is refused: moving it would cut the host (and the
SSH session driving it) off.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyroute2.ethtool.ioctl import IoctlEthtool

from lab import netns, offloads
from lab.errors import InputError, LabError
from lab.journal import PhysMoved
from lab.links.host import HostDevice, HostView, home_inode
from lab.netlink import rtnl
from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket

if TYPE_CHECKING:
    from lab.links import LinkBuild
    from lab.topology import Interface, Link

log = logging.getLogger("lab")


class Phys:
    name = "phys"
    mtu_at_creation = False  # set in the node with the other settings

    def check(self, link: Link, ends: Sequence[Interface], host: HostView) -> None:
        for end in ends:
            where = link.end_origin(end)
            dev = host.find_nic(end.phys)
            if dev is None or dev.name == "lo":
                what = "at PCI address" if ":" in end.phys else "named"
                raise InputError(f"this host has no NIC {what} {end.phys} (its devices: "
                                 f"{', '.join(host.nics()) or 'none'})", path=where + ("phys",))
            default = [r for r in host.routes if r["oif"] == dev.index and r["dst_len"] == 0]
            if default:
                raise InputError(f"{dev.name} carries this host's default route: moving it "
                                 "into the lab would cut the host off; give the lab a NIC of "
                                 "its own", path=where + ("phys",))
            if end.mtu is not None and (dev.max_mtu and end.mtu > dev.max_mtu
                                        or dev.min_mtu and end.mtu < dev.min_mtu):
                raise InputError(f"{dev.name} takes an MTU of {dev.min_mtu} to {dev.max_mtu}, "
                                 f"not {end.mtu}", path=where + ("mtu",))
            for key in ("gso_max_size", "gso_ipv4_max_size"):
                size = getattr(end, key)
                if size is not None and dev.tso_max_size and size > dev.tso_max_size:
                    raise InputError(f"{key} {size} is above what {dev.name} can send in one "
                                     f"go (its tso_max_size is {dev.tso_max_size})",
                                     path=where + (key,))

    def create(self, link: Link, ends: Sequence[Interface], build: LinkBuild) -> None:
        host = HostView()  # as it is now, the moment before the NICs move
        for end in ends:
            dev = host.find_nic(end.phys)
            if dev is None:
                raise LabError(f"{end.label}: NIC {end.phys} is gone from the host")
            record = snapshot(dev, host.static_routes(dev), build.ns(end.node), end.ifname)
            build.journal(record)
            build.host_batch().add(
                rtnl.RTM_NEWLINK,
                rtnl.move_link(dev.index, build.ns_fd(end.node), end.ifname, end.ifindex),
                f"move NIC {dev.name}{' (' + dev.pci + ')' if dev.pci else ''} into "
                f"{end.node} as {end.ifname}")


def _features(ifname: str) -> dict[str, bool]:
    """The changeable offloads of IFNAME (in the calling thread's namespace)."""
    eth = IoctlEthtool(ifname)
    try:
        feats = eth.get_features()
        return {n: bool(feats.get_value(n)) for n in feats.keys() if feats.is_available(n)}
    except OSError:
        return {}
    finally:
        eth.close()


def snapshot(dev: HostDevice, routes: list[dict], namespace: str, ifname: str) -> PhysMoved:
    """What giving DEV back as it is now takes."""
    addrs = tuple({"address": a["address"], "prefixlen": a["prefixlen"],
                   "broadcast": a["broadcast"], "label": a["label"]}
                  for a in dev.addresses if not a["address"].lower().startswith("fe80:"))
    return PhysMoved(
        namespace=namespace, ifname=ifname, home=dev.name, home_netns=home_inode(),
        ifindex=dev.index, mtu=dev.mtu, up=dev.up, mac=dev.mac or "",
        addresses=addrs, routes=tuple(routes), offloads=_features(dev.name), pci=dev.pci,
        perm_mac=dev.perm_mac, **dev.settings)


# -- giving it back ------------------------------------------------------------------------------

def _matches(dev: HostDevice, record: PhysMoved) -> bool:
    if record.pci:
        return dev.pci == record.pci
    if record.perm_mac:
        return dev.perm_mac == record.perm_mac
    return True  # nothing better to tell it by: the name alone


def _locate_home(record: PhysMoved) -> HostDevice | None:
    """The NIC if it is already back on the host (moved back, or never moved)."""
    view = HostView()
    if record.pci or record.perm_mac:
        return next((d for d in view.devices.values() if _matches(d, record)), None)
    dev = view.devices.get(record.home)
    return dev if dev is not None and dev.kind != "vxlan" else None


def give_back(record: PhysMoved) -> bool:
    """Move the NIC of RECORD back to the host and restore its settings; True if done.

    Runs in the host's namespace (the one `lab up` ran in); refuses from another, where the
    NIC would land in the wrong place."""
    if home_inode() != record.home_netns:
        raise LabError(f"NIC {record.home} must go back to the namespace `lab up` ran in "
                       f"(inode {record.home_netns}), not this one: run `lab down` there")
    if netns.exists(record.namespace):
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with netns.entered(record.namespace):
                _move_home(record, home)
        finally:
            os.close(home)
    dev = _locate_home(record)
    if dev is None:
        log.warning("NIC %s (%s) is neither in %s nor on the host: not given back",
                    record.home, record.pci or record.perm_mac or record.ifname,
                    record.namespace)
        return False
    restore(dev, record)
    return True


def _move_home(record: PhysMoved, home: int) -> None:
    """In the node's namespace: move the NIC, if it is there, to HOME under its own name."""
    dev = HostView().devices.get(record.ifname)
    if dev is None or not _matches(dev, record):
        return
    sock = open_socket()
    try:
        batch = RtnlBatch(sock, record.namespace)
        batch.add(rtnl.RTM_NEWLINK, rtnl.move_link(dev.index, home, record.home),
                  f"give NIC {record.home} back to the host")
        try:
            batch.flush()
        except NetlinkError:
            # Its name was taken on the host meanwhile: back under a name the kernel picks.
            batch.add(rtnl.RTM_NEWLINK, rtnl.move_link(dev.index, home, "dev%d"),
                      f"give NIC {record.home} back to the host (renamed)")
            batch.flush()
    finally:
        sock.close()


def restore(dev: HostDevice, record: PhysMoved) -> None:
    """Put DEV (on the host) back as RECORD has it: down, name and settings, offloads,
    addresses, routes, then up if it was."""
    sock = open_socket()
    try:
        batch = RtnlBatch(sock, "host")
        batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(dev.index, up=False), f"{dev.name}: down")
        settings = {"ifname": record.home if dev.name != record.home else None,
                    "mtu": record.mtu, "address": record.mac or None,
                    "txqlen": record.txqueuelen}
        batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(dev.index, **settings),
                  f"{dev.name}: name {record.home}, mtu {record.mtu}")
        sizes = {k: getattr(record, k) for k in ("gso_max_size", "gro_max_size")
                 if getattr(record, k) is not None}
        sizes4 = {k: getattr(record, k) for k in ("gso_ipv4_max_size", "gro_ipv4_max_size")
                  if getattr(record, k) is not None}
        for group in (sizes, sizes4):  # the IPv6 group first (see lab/build.py)
            if group:
                batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(dev.index, **group),
                          f"{record.home}: GSO/GRO sizes")
        _flush(batch, record)
        if record.offloads:
            try:
                offloads.apply(record.home, record.offloads, f"host:{record.home}")
            except LabError as e:
                log.warning("NIC %s: offloads not all restored: %s", record.home, e)
        for a in record.addresses:
            version = 6 if ":" in a["address"] else 4
            batch.add(rtnl.RTM_NEWADDR,
                      rtnl.new_addr(dev.index, a["address"], a["prefixlen"], version,
                                    broadcast=a.get("broadcast"), label=a.get("label"),
                                    nodad=False),
                      f"{record.home}: address {a['address']}/{a['prefixlen']}", create=True)
        if record.up:
            batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(dev.index, up=True), f"{record.home}: up")
        _flush(batch, record)
        for r in record.routes:
            version = 6 if r["family"] == socket.AF_INET6 else 4
            batch.add(rtnl.RTM_NEWROUTE,
                      rtnl.new_route(r["dst"] or ("::" if version == 6 else "0.0.0.0"),
                                     r["dst_len"], version, gateway=r["via"], oif=dev.index,
                                     priority=r["priority"], onlink=r.get("onlink", False)),
                      f"{record.home}: route {r['dst']}/{r['dst_len']}", create=True)
        _flush(batch, record)
    finally:
        sock.close()
    log.info("gave NIC %s back to the host", record.home)


def _flush(batch: RtnlBatch, record: PhysMoved) -> None:
    try:
        batch.flush()
    except NetlinkError as e:
        log.warning("NIC %s: not all of its settings were restored: %s", record.home, e)


KIND = Phys()
