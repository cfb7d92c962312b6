"""Topology model -> kernel objects, in a few batched netlink round trips per namespace.

A builder makes one host's part of a topology (all of it on one machine): the nodes on that
host and the link ends in them. Order of work, each step recorded in the lab's journal before
it acts:
  0. preflight, nothing made yet: namespace names free, BPF objects sound, and what each link
     kind needs of the host (lab/links/: the NIC a phys end takes, a VXLAN end's underlay
     address and the MTU it can carry);
  1. namespaces (unshare + bind mount, no fork), their namespace-wide sysctls;
  2. links, each by its kind (lab/links/): each veth/netkit pair by ONE request on the first
     end's namespace socket with the peer placed straight into the other namespace, VXLAN
     devices and moved NICs by requests on the host's socket that place them in their node, so
     nothing the lab makes ever lives in the host's namespace; ifindexes are chosen in
     advance, so later requests need no lookups;
  3. per namespace, one batch: device attributes (IPv6 GSO/GRO sizes before the IPv4 ones,
     since the kernel resets the IPv4 sizes whenever gso_max_size is set to 64 KB or less),
     addresses, links up, routes; then offloads and interface sysctls;
  4. read-back: every attribute set is read from the kernel and compared;
  5. BPF programs attached where the topology names them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path

from lab import netns, offloads, yamlfile
from lab.bpf import topology as bpf_topology
from lab.errors import InputError, LabError, UsageError
from lab.journal import NamespaceCreated, NamespaceNotOurs, NamespacePlanned, Record
from lab.links import kind_of
from lab.links.host import HostView
from lab.netlink import rtnl
from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket, request
from lab.state import LabRecord
from lab.topology import Interface, Link, Node, Topology
from lab.topology.model import HOST_LINK_KINDS, LINK_SETTINGS, LINK_SETTINGS_V4, LOCAL_HOST
from lab.topology.sysctls import path_of as sysctl_path

log = logging.getLogger("lab")

# Namespace-wide defaults, set before any device exists so new devices inherit them.
BASE_SYSCTLS = {
    # Lab addresses are unique by construction; DAD would leave link-local addresses (the
    # pods' next hop) tentative for a second or two after the lab is "up".
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}
# Pods have their route to the node written in: soliciting routers only costs two neighbour
# entries per pod (ff02::2 in the pod, the pod's link-local in the node), and the kernel's
# table is shared by every namespace (net.ipv6.neigh.default.gc_thresh3, see preflight).
POD_SYSCTLS = {
    "net.ipv6.conf.all.router_solicitations": "0",
    "net.ipv6.conf.default.router_solicitations": "0",
}
# IPv6 neighbour entries each device makes as it comes up, whatever traffic follows: one for
# the MLD report it sends to ff02::16 (measured: 2 per pod, both ends of its pair).
NEIGHBOURS_PER_DEVICE = 1
NEIGH_GC_THRESH3 = "/proc/sys/net/ipv6/neigh/default/gc_thresh3"   # the initial namespace's



def netns_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def write_sysctls(ns: str, sysctls: dict[str, str], label: str) -> None:
    with netns.entered(ns):
        for key, value in sysctls.items():
            try:
                with open(sysctl_path(key), "w") as f:
                    f.write(str(value))
            except FileNotFoundError:
                raise LabError(f"{label}: no sysctl '{key}' in this kernel") from None
            except OSError as e:
                raise LabError(f"{label}: cannot set {key}={value}: {e.strerror}") from None


class Builder:
    """Creates one host's part of a topology (HOST: a name of its `hosts:`; all of it on a
    one-machine lab); the caller tears down through the record on failure. Implements the
    `LinkBuild` the link kinds see (lab/links/)."""

    def __init__(self, topo: Topology, record: LabRecord, pin_dir: Path,
                 setups: Mapping[str, bpf_topology.ObjectSetup] | None = None,
                 host: str = LOCAL_HOST):
        self.topo, self.record, self.pin_dir, self.host = topo, record, pin_dir, host
        self.setups = setups or {}  # per BPF object: how the feature owning it prepares it
        self.nodes = {n: node for n, node in topo.nodes.items() if node.host == host}
        # Each link with its ends on this host (a link between hosts has one here).
        self.links: list[tuple[Link, list[Interface]]] = [
            (link, ends) for link in topo.links
            if (ends := [e for e in (link.a, link.b) if e.node in self.nodes])]
        self.peer_ends = {link.b.label: link.b for link, _ in self.links}
        self.kinds = {e.label: kind_of(link) for link, ends in self.links for e in ends}
        self.has_bpf = any(i.bpf for n in self.nodes.values() for i in n.interfaces.values())
        self.sockets: dict[str, socket.socket] = {}
        self.ns_fds: dict[str, int] = {}
        self.batches: dict[str, RtnlBatch] = {}
        self._host_batch: RtnlBatch | None = None
        self._host_socket: socket.socket | None = None
        self._host_indexes: set[int] | None = None

    def ns(self, node: str) -> str:
        return netns_name(self.topo.name, node)

    # -- LinkBuild: what the link kinds get ----------------------------------------------------

    def ns_fd(self, node: str) -> int:
        return self.ns_fds[node]

    def batch(self, node: str) -> RtnlBatch:
        if node not in self.batches:
            self.batches[node] = RtnlBatch(self.sockets[node], self.ns(node))
        return self.batches[node]

    def host_batch(self) -> RtnlBatch:
        if self._host_batch is None:
            self._host_socket = open_socket()
            self._host_batch = RtnlBatch(self._host_socket, "host")
        return self._host_batch

    def free_ifindex(self, end: Interface) -> int:
        if self._host_indexes is None:
            self._host_indexes = {d.index for d in HostView().devices.values()}
        taken = self._host_indexes | {1} | {
            i.ifindex for i in self.nodes[end.node].interfaces.values() if i is not end}
        while end.ifindex in taken:
            end.ifindex += 1
        return end.ifindex

    def journal(self, *records: Record) -> None:
        self.record.append(*records)

    # -- preflight --------------------------------------------------------------------------

    def preflight(self) -> None:
        """Everything that can be refused before anything is made (on this host)."""
        taken = [self.ns(n) for n in self.nodes if netns.exists(self.ns(n))]
        if taken:
            raise UsageError(f"network namespace{'s' if len(taken) > 1 else ''} "
                             f"{', '.join(taken[:5])} already exist{'s' if len(taken) == 1 else ''}"
                             f" and {'were' if len(taken) > 1 else 'was'} not made by this lab: "
                             "pick another lab name with --name")
        self.check_neighbour_table()
        if self.has_bpf:
            bpf_topology.check(self.topo)  # objects opened, not loaded: no kernel involved
        host = HostView() if any(link.kind in HOST_LINK_KINDS for link, _ in self.links) \
            else None
        for link, ends in self.links:
            try:
                self.kinds[ends[0].label].check(link, ends, host)
            except InputError as e:
                raise place(e, self.topo) from None

    def check_neighbour_table(self) -> None:
        """Refuse a lab whose devices alone would overflow the kernel's IPv6 neighbour table.
        Its size limit (gc_thresh3) is one for all namespaces and only the initial one can
        change it: not the lab's to raise, so the lab says what to do instead."""
        devices = sum(1 for n in self.nodes.values() for i in n.interfaces.values()
                      if n.role in ("node", "pod") or any(a.version == 6 for a in i.addresses))
        need = devices * NEIGHBOURS_PER_DEVICE
        try:
            limit = int(Path(NEIGH_GC_THRESH3).read_text())
        except (OSError, ValueError):
            return
        if need > limit:
            pods = sum(1 for n in self.nodes.values() if n.role == "pod")
            raise UsageError(
                f"this lab's {devices} IPv6 devices{f' ({pods} pods)' if pods else ''} make "
                f"about {need} IPv6 neighbour entries as they come up, and the kernel's "
                f"table holds {limit} for all namespaces together "
                f"(net.ipv6.neigh.default.gc_thresh3): raise it, e.g. `sysctl -w "
                f"net.ipv6.neigh.default.gc_thresh3={_round_up(2 * need)} "
                f"net.ipv6.neigh.default.gc_thresh2={_round_up(need)}`, or use fewer pods")

    # -- steps ------------------------------------------------------------------------------

    def create_namespaces(self) -> None:
        names = [self.ns(n) for n in self.nodes]
        self.record.append(*(NamespacePlanned(n) for n in names))
        for node in self.nodes.values():
            name = self.ns(node.name)
            try:
                ino = netns.create(name)
            except FileExistsError:
                self.record.append(NamespaceNotOurs(name))
                raise UsageError(f"network namespace {name} appeared while the lab was being "
                                 "built; it is not the lab's and was left alone") from None
            self.record.append(NamespaceCreated(name, ino))
            log.info("created netns %s", name)
            with netns.entered(name):
                self.sockets[node.name] = open_socket()
            self.ns_fds[node.name] = os.open(netns.path_of(name), os.O_RDONLY | os.O_CLOEXEC)
            write_sysctls(name, {**BASE_SYSCTLS, **(POD_SYSCTLS if node.role == "pod" else {})},
                          node.name)

    def create_links(self) -> None:
        for link, ends in self.links:
            self.kinds[ends[0].label].create(link, ends, self)
        # The host's requests first: a NIC moved into a node takes its planned index before
        # anything else of the node could.
        if self._host_batch is not None:
            self._host_batch.flush()
        for batch in self.batches.values():
            batch.flush()
        self.batches.clear()
        log.info("created %d links", len(self.links))

    def configure(self) -> None:
        for node in self.nodes.values():
            batch = RtnlBatch(self.sockets[node.name], self.ns(node.name))
            batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(1, up=True), f"{node.name}:lo: up")
            for iface in node.interfaces.values():
                self._configure_interface(batch, iface)
            for addr in node.loopback:
                batch.add(rtnl.RTM_NEWADDR, rtnl.new_addr(1, str(addr.ip), addr.network.prefixlen,
                                                          addr.version),
                          f"{node.name}:lo: add address {addr}", create=True)
            for neigh in node.neighbours:
                batch.add(rtnl.RTM_NEWNEIGH,
                          rtnl.new_neigh(node.interfaces[neigh.dev].ifindex, neigh.address,
                                         neigh.lladdr, neigh.family),
                          f"{node.name}:{neigh.dev}: add permanent neighbour {neigh.address} "
                          f"lladdr {neigh.lladdr}", create=True)
            for route in node.routes:
                self._add_route(batch, node, route)
            batch.flush()
            if node.sysctls:  # after the devices exist: keys may name an interface
                write_sysctls(self.ns(node.name), node.sysctls, node.name)
            for iface in node.interfaces.values():
                if iface.offloads:
                    with netns.entered(self.ns(node.name)):
                        offloads.apply(iface.ifname, iface.offloads, iface.label)

    def _configure_interface(self, batch: RtnlBatch, iface: Interface) -> None:
        made_by = self.kinds[iface.label]
        settings = {k: getattr(iface, k) for k in LINK_SETTINGS if getattr(iface, k) is not None
                    and not (k == "mtu" and made_by.mtu_at_creation)}
        if iface.mac and made_by.name != "vxlan":  # a VXLAN end gets its MAC at creation
            settings["address"] = iface.mac
        add_link_settings(batch, iface.ifindex, iface.label, settings)
        for addr in iface.addresses:
            batch.add(rtnl.RTM_NEWADDR,
                      rtnl.new_addr(iface.ifindex, str(addr.ip), addr.network.prefixlen,
                                    addr.version),
                      f"{iface.label}: add address {addr}", create=True)
        # First ends of pairs came up at creation; the peers, VXLAN ends and NICs come up now.
        if iface is self.peer_ends.get(iface.label) or made_by.name in HOST_LINK_KINDS:
            batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(iface.ifindex, up=True),
                      f"{iface.label}: up")

    def _add_route(self, batch: RtnlBatch, node: Node, route) -> None:
        dst = ip_network(route.dst)
        oif = None
        if route.dev == "lo":
            oif = 1
        elif route.dev:
            oif = node.interfaces[route.dev].ifindex
        msg = rtnl.new_route(str(dst.network_address), dst.prefixlen, dst.version,
                             gateway=route.via, oif=oif, prefsrc=route.src, mtu=route.mtu,
                             priority=route.metric, onlink=route.onlink)
        via = f" via {route.via}" if route.via else ""
        dev = f" dev {route.dev}" if route.dev else ""
        dev += " onlink" if route.onlink else ""
        batch.add(rtnl.RTM_NEWROUTE, msg, f"{node.name}: add route {route.dst}{via}{dev}",
                  create=True)

    def verify(self) -> None:
        """Read back every device attribute the topology sets: the kernel may ignore some
        (an older kernel skips attributes it does not know, e.g. the IPv4 GSO sizes)."""
        problems = []
        for node in self.nodes.values():
            sock = self.sockets[node.name]
            for iface in node.interfaces.values():
                wanted = {k: getattr(iface, k) for k in LINK_SETTINGS
                          if getattr(iface, k) is not None}
                if not wanted:
                    continue
                msg = read_link(sock, iface.ifindex)
                for key, want in wanted.items():
                    have = msg.get_attr(rtnl.ifla(key))
                    if have != want:
                        problems.append(f"{iface.label}: {key} is {have}, not {want}")
        if problems:
            raise LabError("the kernel did not apply: " + "; ".join(problems[:8]))

    def build(self, preflight: bool = True) -> None:
        """Make this host's part; PREFLIGHT: check first (skip it only if the caller did)."""
        if preflight:
            self.preflight()
        try:
            self.create_namespaces()
            self.create_links()
            self.configure()
            self.verify()
            if self.has_bpf:
                bpf_topology.attach_programs(self.topo, self.record, Path(self.pin_dir),
                                             self.ns, self.setups, nodes=set(self.nodes))
        except NetlinkError as e:
            raise LabError(f"building lab '{self.topo.name}' failed: {e}") from None
        finally:
            self.close()

    def close(self) -> None:
        for s in [*self.sockets.values(), *([self._host_socket] if self._host_socket else [])]:
            s.close()
        self._host_socket = self._host_batch = None
        for fd in self.ns_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.sockets.clear()
        self.ns_fds.clear()


def _round_up(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


def place(err: InputError, topo: Topology) -> InputError:
    """ERR (a key path in TOPO's file, found on the host) at its position in the file."""
    if err.path and topo.file and os.path.exists(topo.file):
        try:
            return yamlfile.load(topo.file).place(err)
        except InputError:
            pass  # the file changed or is unreadable now: keep the key path
    if err.path and topo.file:
        return InputError(err.message, path=err.path, at_key=err.at_key, subject=topo.file)
    return err


def add_link_settings(batch: RtnlBatch, ifindex: int, label: str, settings: dict) -> None:
    """Queue device attribute changes in the order the kernel needs: everything else (with
    the IPv6 GSO/GRO sizes) first, then the IPv4 sizes, which setting gso_max_size <= 64 KB
    would otherwise reset."""
    first = {k: v for k, v in settings.items() if k not in LINK_SETTINGS_V4}
    second = {k: v for k, v in settings.items() if k in LINK_SETTINGS_V4}
    for attrs in (first, second):
        if attrs:
            batch.add(rtnl.RTM_NEWLINK, rtnl.set_link(ifindex, **attrs),
                      f"{label}: set {_fmt(attrs)}")


def read_link(sock: socket.socket, ifindex: int) -> rtnl.LinkMessage:
    (msg,) = request(sock, rtnl.RTM_GETLINK, rtnl.get_link(ifindex), rtnl.LinkMessage)
    return msg


def _fmt(attrs: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in attrs.items())
