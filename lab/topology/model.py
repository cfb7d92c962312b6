"""The topology model: nodes (network namespaces), links (veth/netkit pairs, or vxlan/phys ends
that leave the machine), addresses, routes, and the hosts the nodes run on.

`from_document()` turns a schema-valid YAML document into this model and performs the checks a
schema cannot express (unknown nodes, duplicate names and addresses, address families a role
allows, pods expanded from `pods:`), each reported at its position in the file. The model is
plain data: the builder (lab/build.py) turns it into kernel objects, and it round-trips through
JSON so a running lab can be re-attached from its state record.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import string
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_interface, ip_network
from typing import Any

from lab.yamlfile import Document

IPInterface = IPv4Interface | IPv6Interface

# Which address families each role may use. The cluster is IPv6-only: nodes and pods carry no
# IPv4; the gateway is the only dual-stack part of the data plane, clients and servers are free.
ROLE_FAMILIES: dict[str, frozenset[int]] = {
    "client": frozenset({4, 6}),
    "gateway": frozenset({4, 6}),
    "router": frozenset({4, 6}),
    "server": frozenset({4, 6}),
    "node": frozenset({6}),
    "pod": frozenset({6}),
}

# A link end's device settings, as the file and NodeHandle.set_link name them (the kernel's
# IFLA_<NAME>). The kernel resets the IPv4 GSO/GRO sizes whenever gso_max_size is set to
# 64 KiB or less, so the builder sets the IPv6 group first.
LINK_SETTINGS_V6 = ("mtu", "txqueuelen", "gso_max_size", "gro_max_size")
LINK_SETTINGS_V4 = ("gso_ipv4_max_size", "gro_ipv4_max_size")
LINK_SETTINGS = LINK_SETTINGS_V6 + LINK_SETTINGS_V4
# Link kinds whose ends are made one by one on their own hosts (lab/links/), as against the
# pairs made by one request; they may join nodes on different hosts.
HOST_LINK_KINDS = ("vxlan", "phys")
LOCAL_HOST = "local"  # the machine running `lab up`
VXLAN_PORT = 4789  # IANA's
POD_HOST_LINKLOCAL = ip_interface("fe80::1/64")  # the node side of every pod device
POD_HOST_IFNAME = "lxc{i}"
POD_IFNAME = "eth0"
IPV6_MIN_MTU = 1280


@dataclass
class BpfAttach:
    object: str
    program: str
    hook: str


@dataclass
class VxlanEnd:
    """One end of a vxlan link: the segment, and the underlay of the end's host."""
    vni: int
    port: int
    local: str  # this end's host's underlay address
    remote: str  # the other end's
    dev: str | None = None  # the underlay device (None: the route to `remote` says)
    ttl: int | None = None
    learning: bool = False

    @property
    def overhead(self) -> int:
        """Bytes the encapsulation adds to a frame: outer Ethernet, IP, UDP, VXLAN."""
        return 14 + (20 if ip_address(self.local).version == 4 else 40) + 8 + 8


@dataclass
class Interface:
    node: str
    ifname: str
    ifindex: int  # planned: set at creation so requests need no lookups
    peer_node: str
    peer_ifname: str
    addresses: list[IPInterface] = field(default_factory=list)
    mac: str | None = None
    mtu: int | None = None
    gso_max_size: int | None = None
    gro_max_size: int | None = None
    gso_ipv4_max_size: int | None = None
    gro_ipv4_max_size: int | None = None
    txqueuelen: int | None = None
    offloads: dict[str, bool] = field(default_factory=dict)
    bpf: list[BpfAttach] = field(default_factory=list)
    vxlan: VxlanEnd | None = None  # link kind vxlan
    phys: str | None = None  # link kind phys: the host NIC, by name or PCI address

    @property
    def label(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass
class Link:
    kind: str  # veth | netkit | netkit-l2 | vxlan | phys
    a: Interface  # for netkit: the primary
    b: Interface
    netkit: dict[str, str] = field(default_factory=dict)
    origin: list[str | int] | None = None  # key path in the file (pods' links have none)

    def end_origin(self, end: Interface) -> tuple:
        """The key path of END in the file (for errors found on its host), or ()."""
        if self.origin is None:
            return ()
        return (*self.origin, "ends", 0 if end is self.a else 1)


@dataclass
class Route:
    dst: str  # normalised network, e.g. "0.0.0.0/0"
    via: str | None = None
    dev: str | None = None
    src: str | None = None
    mtu: int | None = None
    metric: int | None = None
    onlink: bool = False  # the next hop is on `dev` even outside its addresses' subnets

    @property
    def family(self) -> int:
        return ip_network(self.dst).version


@dataclass
class Neighbour:
    """A permanent neighbour entry: ADDRESS is at LLADDR on device DEV, never resolved."""
    address: str
    lladdr: str
    dev: str

    @property
    def family(self) -> int:
        return ip_address(self.address).version


@dataclass
class Node:
    name: str
    role: str
    sysctls: dict[str, str] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    loopback: list[IPInterface] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # /etc/hosts of the node: name -> address
    interfaces: dict[str, Interface] = field(default_factory=dict)
    pod_of: str | None = None  # for pods: the node they run on
    host: str = LOCAL_HOST  # the host (Topology.hosts) the node's namespace is made on
    # for nodes with pods: how they attach and are routed, {device, routing, netkit}
    pods: dict[str, Any] = field(default_factory=dict)

    def addresses(self, version: int | None = None) -> list[IPInterface]:
        addrs = [a for i in self.interfaces.values() for a in i.addresses] + self.loopback
        return [a for a in addrs if version is None or a.version == version]

    def next_ifindex(self) -> int:
        return 2 + len(self.interfaces)  # 1 is lo


@dataclass
class Host:
    """A machine the lab spans: `local`, or one reached by `ssh DESTINATION LAB...`."""
    name: str
    ssh: str | None = None  # the SSH destination; None for the local host
    lab: str = "lab"  # the lab command there (split as a shell would)

    @property
    def local(self) -> bool:
        return self.ssh is None


@dataclass
class Topology:
    name: str
    nodes: dict[str, Node]
    links: list[Link]
    datapath: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    file: str | None = None
    # The file's `hosts:` (always with `local`); a one-machine lab has only `local`.
    hosts: dict[str, Host] = field(default_factory=lambda: {LOCAL_HOST: Host(LOCAL_HOST)})

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def host_of(self, node: str) -> Host:
        return self.hosts[self.nodes[node].host]

    def remote_hosts(self) -> list[Host]:
        """The hosts other than this one that have nodes, in the file's order."""
        used = {n.host for n in self.nodes.values()}
        return [h for h in self.hosts.values() if not h.local and h.name in used]

    def nodes_on(self, host: str) -> list[str]:
        return [n.name for n in self.nodes.values() if n.host == host]

    def interface(self, node: str, ifname: str) -> Interface:
        return self.nodes[node].interfaces[ifname]

    def pods(self, node: str | None = None) -> list[Node]:
        return [n for n in self.nodes.values()
                if n.role == "pod" and (node is None or n.pod_of == node)]

    # -- JSON round trip (the state record keeps the resolved model) --------------------------

    def to_json(self) -> dict[str, Any]:
        def conv(obj: Any) -> Any:
            if isinstance(obj, (IPv4Interface, IPv6Interface)):
                return str(obj)
            if isinstance(obj, dict):
                return {k: conv(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [conv(v) for v in obj]
            return obj
        return conv({
            "name": self.name, "description": self.description, "file": self.file,
            "datapath": self.datapath,
            "hosts": {h.name: asdict(h) for h in self.hosts.values()},
            "nodes": {n: {k: v for k, v in asdict(node).items() if k != "interfaces"}
                      for n, node in self.nodes.items()},
            "links": [asdict(link) for link in self.links],
        })

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Topology:
        nodes = {}
        for name, n in data["nodes"].items():
            nodes[name] = Node(name=n["name"], role=n["role"], sysctls=n["sysctls"],
                               routes=[Route(**r) for r in n["routes"]],
                               neighbours=[Neighbour(**e) for e in n.get("neighbours", [])],
                               hosts=dict(n.get("hosts", {})),
                               loopback=[ip_interface(a) for a in n["loopback"]],
                               pod_of=n["pod_of"], pods=n.get("pods", {}),
                               host=n.get("host", LOCAL_HOST))
        links = []
        for ld in data["links"]:
            ends = []
            for e in (ld["a"], ld["b"]):
                e = dict(e)
                e["addresses"] = [ip_interface(a) for a in e["addresses"]]
                e["bpf"] = [BpfAttach(**b) for b in e["bpf"]]
                if e.get("vxlan"):
                    e["vxlan"] = VxlanEnd(**e["vxlan"])
                iface = Interface(**e)
                nodes[iface.node].interfaces[iface.ifname] = iface
                ends.append(iface)
            links.append(Link(kind=ld["kind"], a=ends[0], b=ends[1], netkit=ld["netkit"],
                              origin=ld.get("origin")))
        topo = cls(name=data["name"], nodes=nodes, links=links, datapath=data["datapath"],
                   description=data["description"], file=data["file"])
        for name, h in data.get("hosts", {}).items():
            topo.hosts[name] = Host(**h)
        return topo


# -- building the model from a document ---------------------------------------------------------

def _onoff(value: Any) -> bool:
    return value in (True, "on")


class _Builder:
    def __init__(self, doc: Document):
        self.doc = doc
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self.addr_owner: dict[ipaddress._BaseAddress, tuple[str, tuple]] = {}
        self.hosts: dict[str, Host] = {LOCAL_HOST: Host(LOCAL_HOST)}
        self.host_ends: dict[tuple, tuple] = {}  # (host, what it takes) -> its path

    def err(self, path: tuple, message: str, key: bool = False):
        return self.doc.error(path, message, key)

    # addresses --------------------------------------------------------------------------------

    def parse_iface_addr(self, text: Any, path: tuple) -> IPInterface:
        try:
            addr = ip_interface(str(text).strip())
        except ValueError:
            raise self.err(path, f"'{text}' is not an IPv4 or IPv6 address with prefix length "
                                 f"(e.g. 192.0.2.1/24 or 2001:db8::1/64)") from None
        if "/" not in str(text):
            raise self.err(path, f"'{text}' needs a prefix length (e.g. {addr.ip}/"
                                 f"{24 if addr.version == 4 else 64})")
        if addr.ip.is_multicast or addr.ip.is_unspecified:
            raise self.err(path, f"'{text}' cannot be an interface address")
        return addr

    def check_family(self, node: Node, version: int, path: tuple, what: str) -> None:
        if version not in ROLE_FAMILIES[node.role]:
            raise self.err(path, f"node '{node.name}' has role '{node.role}', which is "
                                 f"IPv6-only, but is given an IPv4 {what}")

    def claim(self, addr: IPInterface, owner: str, path: tuple) -> None:
        if addr.ip.is_link_local:
            return  # link-local addresses only need to be unique per link
        if addr.ip in self.addr_owner:
            other, other_path = self.addr_owner[addr.ip]
            line = self.doc.position(other_path).line
            raise self.err(path, f"address {addr.ip} is already used by {other} (line {line})")
        self.addr_owner[addr.ip] = (owner, path)

    # hosts ------------------------------------------------------------------------------------

    def add_hosts(self, specs: dict) -> None:
        for name, spec in specs.items():
            path = ("hosts", name)
            if name == LOCAL_HOST:
                for key in spec:
                    raise self.err(path + (key,), f"host '{LOCAL_HOST}' is the machine running "
                                                  f"`lab up`: it takes no '{key}'", key=True)
                continue
            lab = spec.get("lab", "lab")
            try:
                ok = bool(shlex.split(lab))
            except ValueError as e:
                raise self.err(path + ("lab",), f"cannot split '{lab}' as a shell would: {e}"
                               ) from None
            if not ok:
                raise self.err(path + ("lab",), "an empty lab command")
            self.hosts[name] = Host(name, ssh=spec.get("ssh", name), lab=lab)

    def claim_on_host(self, host: str, what: tuple, path: tuple, message: str) -> None:
        """Refuse a second use of something a host has one of (a NIC, a VXLAN socket)."""
        if (host, what) in self.host_ends:
            line = self.doc.position(self.host_ends[(host, what)]).line
            raise self.err(path, f"{message} (line {line})")
        self.host_ends[(host, what)] = path

    # nodes ------------------------------------------------------------------------------------

    def add_node(self, name: str, spec: dict, path: tuple) -> Node:
        node = Node(name=name, role=spec["role"])
        node.host = spec.get("host", LOCAL_HOST)
        if node.host not in self.hosts:
            raise self.err(path + ("host",), f"no host '{node.host}' (hosts: "
                                             f"{', '.join(self.hosts)}); name it under `hosts:`")
        sysctls = {k: str(v) for k, v in spec.get("sysctls", {}).items()}
        if spec.get("forwarding"):
            if 4 in ROLE_FAMILIES[node.role]:
                sysctls.setdefault("net.ipv4.ip_forward", "1")
            sysctls.setdefault("net.ipv6.conf.all.forwarding", "1")
        for key in sysctls:
            if key.startswith("net.ipv4.") and 4 not in ROLE_FAMILIES[node.role] and \
                    key != "net.ipv4.ping_group_range":
                raise self.err(path + ("sysctls", key), f"node '{name}' has role "
                               f"'{node.role}', which is IPv6-only: IPv4 sysctl '{key}'",
                               key=True)
        node.sysctls = sysctls
        for host, addr in spec.get("hosts", {}).items():
            try:
                node.hosts[host] = str(ip_address(str(addr)))
            except ValueError:
                raise self.err(path + ("hosts", host), f"'{addr}' is not an address") from None
        for i, text in enumerate(spec.get("loopback", [])):
            addr = self.parse_iface_addr(text, path + ("loopback", i))
            self.check_family(node, addr.version, path + ("loopback", i), "address")
            self.claim(addr, f"{name}:lo", path + ("loopback", i))
            node.loopback.append(addr)
        self.nodes[name] = node
        return node

    def add_routes(self, node: Node, specs: list, path: tuple) -> None:
        for i, r in enumerate(specs):
            rpath = path + (i,)
            dst_text = str(r["dst"])
            try:
                if dst_text in ("default", "default4"):
                    dst = ip_network("0.0.0.0/0")
                elif dst_text == "default6":
                    dst = ip_network("::/0")
                else:
                    dst = ip_network(dst_text, strict=True)
            except ValueError as e:
                raise self.err(rpath + ("dst",), f"bad route destination '{dst_text}': {e}"
                               ) from None
            via = None
            if "via" in r:
                try:
                    via = ip_address(str(r["via"]))
                except ValueError:
                    raise self.err(rpath + ("via",), f"'{r['via']}' is not an address"
                                   ) from None
            if dst_text == "default" and via is not None and via.version == 6:
                dst = ip_network("::/0")  # `default via <IPv6>` means the IPv6 default route
            self.check_family(node, dst.version, rpath + ("dst",), "route")
            if via is not None and via.version == 4:
                self.check_family(node, 4, rpath + ("via",), "next hop")
            if via is None and "dev" not in r:
                raise self.err(rpath, "a route needs `via` (next hop) or `dev` (on-link)")
            src = None
            if "src" in r:
                try:
                    src = str(ip_address(str(r["src"])))
                except ValueError:
                    raise self.err(rpath + ("src",), f"'{r['src']}' is not an address"
                                   ) from None
            if r.get("onlink") and ("dev" not in r or via is None):
                raise self.err(rpath + ("onlink",), "an onlink route needs `via` and `dev`",
                               key=True)
            node.routes.append(Route(dst=str(dst), via=str(via) if via else None,
                                     dev=r.get("dev"), src=src, mtu=r.get("mtu"),
                                     metric=r.get("metric"), onlink=bool(r.get("onlink"))))

    def add_neighbours(self, node: Node, specs: list, path: tuple) -> None:
        for i, n in enumerate(specs):
            npath = path + (i,)
            try:
                addr = ip_address(str(n["address"]))
            except ValueError:
                raise self.err(npath + ("address",), f"'{n['address']}' is not an address"
                               ) from None
            if addr.is_multicast or addr.is_unspecified:
                raise self.err(npath + ("address",), f"{addr} cannot be a neighbour")
            if n["dev"] not in node.interfaces:
                raise self.err(npath + ("dev",), f"node '{node.name}' has no interface "
                                                 f"'{n['dev']}'")
            node.neighbours.append(Neighbour(address=str(addr), lladdr=n["lladdr"].lower(),
                                             dev=n["dev"]))

    # links ------------------------------------------------------------------------------------

    def make_end(self, spec: dict, peer: dict, link_spec: dict, path: tuple,
                 kind: str = "veth") -> Interface:
        name = spec["node"]
        if name not in self.nodes:
            known = ", ".join(sorted(self.nodes))
            raise self.err(path + ("node",), f"link to unknown node '{name}' (nodes: {known})")
        node = self.nodes[name]
        ifname = spec["ifname"]
        if ifname == "lo" or ifname in node.interfaces:
            raise self.err(path + ("ifname",), f"node '{name}' already has an interface "
                                               f"named '{ifname}'")
        iface = Interface(node=name, ifname=ifname, ifindex=node.next_ifindex(),
                          peer_node=peer["node"], peer_ifname=peer["ifname"])
        defaults = self.doc.data.get("defaults", {})
        for key in LINK_SETTINGS:
            # A vxlan end's MTU comes from its underlay, a phys end's from its NIC, unless
            # the link or the end says otherwise: `defaults` are for the pairs.
            sources = (spec, link_spec) if key == "mtu" and kind in HOST_LINK_KINDS else \
                (spec, link_spec, defaults)
            for source in sources:
                if key in source:
                    setattr(iface, key, source[key])
                    break
        offloads = {}
        for source in (defaults, link_spec, spec):
            offloads.update({k: _onoff(v) for k, v in source.get("offloads", {}).items()})
        iface.offloads = offloads
        iface.mac = spec.get("mac")
        for i, text in enumerate(spec.get("addresses", [])):
            apath = path + ("addresses", i)
            addr = self.parse_iface_addr(text, apath)
            self.check_family(node, addr.version, apath, "address")
            self.claim(addr, iface.label, apath)
            iface.addresses.append(addr)
        iface.bpf = [BpfAttach(**b) for b in spec.get("bpf", [])]
        self.check_device(iface, node, spec, link_spec, path)
        node.interfaces[ifname] = iface
        return iface

    def check_device(self, iface: Interface, node: Node, spec: dict, link_spec: dict,
                     path: tuple) -> None:
        """What the kernel would refuse half-way through `lab up`: an MTU IPv6 cannot use
        on a device that needs IPv6, a MAC address no device may have."""
        ipv6 = any(a.version == 6 for a in iface.addresses) or 4 not in ROLE_FAMILIES[node.role]
        if iface.mtu is not None and iface.mtu < IPV6_MIN_MTU and ipv6:
            where = (path + ("mtu",) if "mtu" in spec else path[:-2] + ("mtu",)
                     if "mtu" in link_spec else ("defaults", "mtu"))
            raise self.err(where, f"MTU {iface.mtu} is below IPv6's minimum of "
                                  f"{IPV6_MIN_MTU} (RFC 8200), and {iface.label} carries "
                                  "IPv6: the kernel turns IPv6 off on such a device")
        if iface.mac is not None:
            octets = bytes.fromhex(iface.mac.replace(":", ""))
            if octets[0] & 1:
                raise self.err(path + ("mac",), f"{iface.mac} is a multicast (group) address "
                                                "(the first octet is odd): a device needs a "
                                                "unicast one")
            if not any(octets):
                raise self.err(path + ("mac",), f"{iface.mac} is not a device address")

    def add_link(self, spec: dict, path: tuple) -> None:
        a_spec, b_spec = spec["ends"]
        if a_spec["node"] == b_spec["node"]:
            raise self.err(path + ("ends",), f"both ends of this link are on node "
                                             f"'{a_spec['node']}'")
        kind = spec.get("kind", "veth")
        a = self.make_end(a_spec, b_spec, spec, path + ("ends", 0), kind)
        b = self.make_end(b_spec, a_spec, spec, path + ("ends", 1), kind)
        if spec.get("netkit") and not kind.startswith("netkit"):
            raise self.err(path + ("netkit",), "netkit options on a link of kind "
                                               f"'{kind}'", key=True)
        self.check_host_link(spec, path, kind, a, b)
        for end, epath in ((a, ("ends", 0)), (b, ("ends", 1))):
            for j, prog in enumerate(end.bpf):
                if prog.hook.startswith("netkit") and (not kind.startswith("netkit")
                                                       or end is b):
                    raise self.err(path + epath + ("bpf", j, "hook"),
                                   f"hook {prog.hook} needs the primary (first) end of a "
                                   "netkit link")
        origin = list(path) if path and path[0] == "links" else None
        self.links.append(Link(kind=kind, a=a, b=b, netkit=dict(spec.get("netkit", {})),
                               origin=origin))

    def check_host_link(self, spec: dict, path: tuple, kind: str, a: Interface,
                        b: Interface) -> None:
        """Hosts a link may join, and the options of the kinds that leave the machine."""
        hosts = (self.nodes[a.node].host, self.nodes[b.node].host)
        if hosts[0] != hosts[1] and kind not in HOST_LINK_KINDS:
            raise self.err(path + ("kind",) if "kind" in spec else path,
                           f"this link joins {a.node} (host {hosts[0]}) and {b.node} (host "
                           f"{hosts[1]}): a link between hosts is of kind vxlan or phys",
                           key="kind" not in spec)
        if "vxlan" in spec and kind != "vxlan":
            raise self.err(path + ("vxlan",), f"vxlan options on a link of kind '{kind}'",
                           key=True)
        for j, end in enumerate(spec["ends"]):
            for key, owner in (("underlay", "vxlan"), ("phys", "phys")):
                if key in end and kind != owner:
                    raise self.err(path + ("ends", j, key), f"'{key}' is for an end of a "
                                   f"{owner} link; this link is of kind '{kind}'", key=True)
        if kind == "vxlan":
            self.add_vxlan(spec, path, (a, b), hosts)
        elif kind == "phys":
            for j, (end, host) in enumerate(zip((a, b), hosts)):
                epath = path + ("ends", j)
                if "phys" not in spec["ends"][j]:
                    raise self.err(epath, "an end of a phys link names its host NIC: "
                                          "`phys: NAME` or `phys: PCI-ADDRESS`", key=True)
                end.phys = spec["ends"][j]["phys"]
                nic = end.phys.lower() if ":" in end.phys else end.phys
                self.claim_on_host(host, ("nic", nic), epath + ("phys",),
                                   f"NIC {end.phys} of host {host} is already in this lab")

    def add_vxlan(self, spec: dict, path: tuple, ends: tuple[Interface, Interface],
                  hosts: tuple[str, str]) -> None:
        if "vxlan" not in spec:
            raise self.err(path, "a vxlan link needs `vxlan: {vni: N}`", key=True)
        opts = spec["vxlan"]
        underlays = []
        for j in (0, 1):
            epath = path + ("ends", j)
            if "underlay" not in spec["ends"][j]:
                raise self.err(epath, "an end of a vxlan link needs `underlay: {address: "
                                      "...}`, its host's address the tunnel leaves from",
                               key=True)
            u = spec["ends"][j]["underlay"]
            try:
                addr = ip_address(str(u["address"]))
            except ValueError:
                raise self.err(epath + ("underlay", "address"), f"'{u['address']}' is not an "
                                                                "address") from None
            if addr.is_multicast or addr.is_unspecified or addr.is_loopback:
                raise self.err(epath + ("underlay", "address"), f"{addr} cannot be a VXLAN "
                               "underlay address (a host's unicast address, not loopback)")
            if addr.is_link_local and "dev" not in u:
                raise self.err(epath + ("underlay", "address"), f"a link-local underlay "
                               f"({addr}) needs `dev`, the device it is on")
            underlays.append((addr, u.get("dev")))
        if hosts[0] == hosts[1]:
            raise self.err(path + ("kind",), f"both ends of this vxlan link are on host "
                           f"{hosts[0]}: a vxlan link joins two hosts (on one, use a veth "
                           "link)")
        (la, _), (lb, _) = underlays
        if la.version != lb.version:
            raise self.err(path + ("ends", 1, "underlay", "address"),
                           f"the ends' underlays are IPv{la.version} and IPv{lb.version}: one "
                           "family for both")
        if la == lb:
            raise self.err(path + ("ends", 1, "underlay", "address"),
                           f"both ends use the underlay address {la}")
        for j, end in enumerate(ends):
            (local, dev), (remote, _) = underlays[j], underlays[1 - j]
            end.vxlan = VxlanEnd(vni=opts["vni"], port=opts.get("port", VXLAN_PORT),
                                 local=str(local), remote=str(remote), dev=dev,
                                 ttl=opts.get("ttl"), learning=bool(opts.get("learning")))
            # The kernel allows one device per VNI, port and underlay device on a host.
            self.claim_on_host(hosts[j], ("vxlan", end.vxlan.vni, end.vxlan.port, dev),
                               path + ("vxlan", "vni"),
                               f"VNI {end.vxlan.vni} on port {end.vxlan.port} is already a "
                               f"link of host {hosts[j]}"
                               + (f" over {dev}" if dev else " (give each its `underlay.dev`"
                                  " if they leave by different devices)"))

    def add_pods(self, node: Node, spec: dict, path: tuple) -> None:
        if node.role != "node":
            raise self.err(path, f"only nodes of role 'node' run pods; '{node.name}' has "
                                 f"role '{node.role}'", key=True)
        try:
            first = ip_address(str(spec["ipv6"]))
        except ValueError:
            first = None
        if first is None or first.version != 6:
            raise self.err(path + ("ipv6",), f"pods are IPv6-only: '{spec['ipv6']}' is not "
                                             "an IPv6 address")
        template = spec.get("name", "{node}-pod{i}")
        device = spec.get("device", "veth")
        routing = spec.get("routing", "host")
        netkit = dict(spec.get("netkit", {}))
        host_bpf = [dict(b) for b in spec.get("bpf", {}).get("host", [])]
        self.check_pod_mode(path, device, routing, netkit, host_bpf)
        if "kube_proxy" in spec and routing != "legacy":
            raise self.err(path + ("kube_proxy",), "kube_proxy runs on legacy nodes: set "
                                                   "`routing: legacy`", key=True)
        node.pods = {"device": device, "routing": routing, "netkit": netkit}
        if routing == "legacy":
            node.pods["kube_proxy"] = dict(spec.get("kube_proxy", {}))
        node.sysctls.setdefault("net.ipv6.conf.all.forwarding", "1")
        self.check_pod_template(template, path + ("name",))
        for i in range(spec["count"]):
            name = self.pod_name(template, node.name, i, path + ("name",))
            if name in self.nodes:
                raise self.err(path + ("name",), f"pod name '{name}' is already a node")
            try:
                addr = ip_interface(f"{first + i}/128")
            except ipaddress.AddressValueError:
                raise self.err(path + ("count",), "pod addresses run past the end of the "
                                                  "IPv6 address space") from None
            pod = Node(name=name, role="pod", pod_of=node.name, host=node.host,
                       sysctls={k: str(v) for k, v in spec.get("sysctls", {}).items()})
            self.nodes[name] = pod
            host_if = POD_HOST_IFNAME.format(i=i)
            host_spec = {"node": node.name, "ifname": host_if,
                         "addresses": [str(POD_HOST_LINKLOCAL)], "bpf": list(host_bpf)}
            pod_spec = {"node": name, "ifname": POD_IFNAME, "addresses": [str(addr)],
                        "bpf": spec.get("bpf", {}).get("pod", [])}
            settings = {k: spec[k] for k in ("mtu", "gso_max_size", "gro_max_size")
                        if k in spec}
            if netkit:
                settings["netkit"] = netkit
            self.add_link({"kind": device, "ends": [host_spec, pod_spec], **settings}, path)
            pod.routes.append(Route(dst="::/0", via=str(POD_HOST_LINKLOCAL.ip), dev=POD_IFNAME))
            node.routes.append(Route(dst=str(addr.network), dev=host_if))

    def check_pod_template(self, template: str, path: tuple) -> None:
        """Only {node} and {i}, {i} with a width at most (pod{i:03}): no attribute, index,
        conversion or other format, which would reach into Python objects or make names (and
        memory) of any size."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template)]
            for _, f, spec, conv in string.Formatter().parse(template):
                if f is None:
                    continue
                if f not in ("node", "i") or conv or \
                        (spec and not (f == "i" and re.fullmatch(r"0?[0-9]{1,2}d?", spec))):
                    raise ValueError(f"'{{{f}{'!' + conv if conv else ''}"
                                     f"{':' + spec if spec else ''}}}' (use {{node}} and "
                                     "{i}, e.g. {node}-pod{i})")
        except ValueError as e:
            raise self.err(path, f"bad pod name template '{template}': {e}") from None
        if "i" not in {f for f in fields}:
            raise self.err(path, f"pod name template '{template}' has no {{i}}: every pod "
                                 "would get the same name")

    def pod_name(self, template: str, node: str, i: int, path: tuple) -> str:
        """Pod I's name, which must be a node name (it names a namespace and files)."""
        from lab.topology import schema
        try:
            name = template.format(node=node, i=i)
        except (ValueError, TypeError) as e:
            raise self.err(path, f"bad pod name template '{template}': {e}") from None
        if not re.fullmatch(schema()["$defs"]["nodename"]["pattern"], name):
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise self.err(path, f"pod name template '{template}' makes {shown!r} for pod "
                                 f"{i}: a node name is 1-32 lowercase letters, digits and "
                                 "'-', starting with a letter")
        return name

    def check_pod_mode(self, path: tuple, device: str, routing: str,
                       netkit: dict, host_bpf: list[dict]) -> None:
        """Combinations of device, routing and netkit policies that cannot carry traffic."""
        hooks = {b["hook"] for b in host_bpf}
        if netkit and not device.startswith("netkit"):
            raise self.err(path + ("netkit",), f"netkit options for pods on device "
                                               f"'{device}' (use device: netkit or netkit-l2)",
                           key=True)
        peer_program = routing == "bpf" or "netkit-peer" in hooks
        if netkit.get("peer_policy") == "blackhole" and not peer_program:
            raise self.err(path + ("netkit", "peer_policy"),
                           "with peer_policy blackhole and no program at the netkit peer "
                           "hook, the pods could send nothing: use routing: bpf, or a "
                           "bpf.host program at hook netkit-peer")
        if netkit.get("policy") == "blackhole" and "netkit-primary" not in hooks:
            raise self.err(path + ("netkit", "policy"),
                           "with policy blackhole and no program at the netkit primary "
                           "hook, the node could send nothing to its pods (nor could other "
                           "pods, whose packets go out the primary): add a bpf.host program "
                           "at hook netkit-primary")
        if routing == "bpf" and device == "veth" and "tc-ingress" in hooks:
            i = next(j for j, b in enumerate(host_bpf) if b["hook"] == "tc-ingress")
            raise self.err(path + ("bpf", "host", i, "hook"),
                           "routing: bpf puts the host routing program at the pod devices' "
                           "ingress; a tc-ingress program there would take its tc priority "
                           "(use hook ingress or tcx-ingress, which chain)")

    def check_sysctls(self) -> None:
        """The file's sysctls, as the kernel takes them (lab/topology/sysctls.py)."""
        from lab.topology import sysctls
        found: dict[sysctls.Setting, tuple] = {}
        for name, spec in self.doc.data["nodes"].items():
            for key, value in spec.get("sysctls", {}).items():
                found[sysctls.Setting(name, key, str(value))] = ("nodes", name, "sysctls", key)
            pods = self.nodes[name].pods and [p for p in self.nodes.values()
                                               if p.pod_of == name]
            for key, value in spec.get("pods", {}).get("sysctls", {}).items():
                if pods:        # the same for every pod: tried on the first
                    found[sysctls.Setting(pods[0].name, key, str(value))] = \
                        ("nodes", name, "pods", "sysctls", key)
        if not found:
            return
        interfaces = {n.name: set(n.interfaces) for n in self.nodes.values()}
        for setting, message in sysctls.problems(found, interfaces)[:1]:
            raise self.err(found[setting], message)

    def check_route_devices(self) -> None:
        for name, spec in self.doc.data["nodes"].items():
            node = self.nodes[name]
            for i, r in enumerate(spec.get("routes", [])):
                dev = r.get("dev")
                if dev is not None and dev != "lo" and dev not in node.interfaces:
                    raise self.err(("nodes", name, "routes", i, "dev"),
                                   f"node '{name}' has no interface '{dev}'")
                if "via" in r and not r.get("onlink"):
                    self.check_on_link(node, r, ("nodes", name, "routes", i, "via"))

    def check_on_link(self, node: Node, route: dict, path: tuple) -> None:
        """A next hop must be on a subnet of the node's (or of `dev`'s) addresses, as the
        kernel requires without `onlink`; a link-local one needs its device named."""
        try:
            via = ip_address(str(route["via"]))
        except ValueError:
            return                      # add_routes says so
        dev = route.get("dev")
        if via.version == 6 and via.is_link_local:
            if dev is None:
                raise self.err(path, f"next hop {via} is link-local: name its device with "
                                     "`dev`")
            return
        ifaces = [node.interfaces[dev]] if dev in node.interfaces else \
            list(node.interfaces.values())
        if not any(via in a.network for i in ifaces for a in i.addresses):
            on = f" on {dev}" if dev else ""
            raise self.err(path, f"next hop {via} is on none of node '{node.name}''s "
                                 f"subnets{on}, so the kernel would refuse the route: give "
                                 "`dev` and `onlink: true` if it is reachable there anyway")


def from_document(doc: Document, name: str | None = None, default_name: str = "lab"
                  ) -> Topology:
    """Build the model from a schema-valid document (see lab/topology/__init__.py)."""
    data = doc.data
    b = _Builder(doc)
    b.add_hosts(data.get("hosts", {}))
    for node_name, spec in data["nodes"].items():
        b.add_node(node_name, spec, ("nodes", node_name))
    # Pods first: links in the file may then refer to pods by their generated names.
    for node_name, spec in data["nodes"].items():
        if "pods" in spec:
            b.add_pods(b.nodes[node_name], spec["pods"], ("nodes", node_name, "pods"))
    for i, link in enumerate(data.get("links", [])):
        b.add_link(link, ("links", i))
    b.check_route_devices()
    b.check_sysctls()
    for node_name, spec in data["nodes"].items():
        b.add_routes(b.nodes[node_name], spec.get("routes", []), ("nodes", node_name, "routes"))
        b.add_neighbours(b.nodes[node_name], spec.get("neighbours", []),
                         ("nodes", node_name, "neighbours"))
    if len(b.nodes) > 1:
        linked = {i.node for link in b.links for i in (link.a, link.b)}
        for node_name in data["nodes"]:
            if node_name not in linked:
                raise doc.error(("nodes", node_name), f"node '{node_name}' has no links",
                                key=True)
    lab_name = name or data.get("name") or default_name
    return Topology(name=lab_name, nodes=b.nodes, links=b.links,
                    datapath=data.get("datapath", {}), description=data.get("description", ""),
                    file=doc.file, hosts=b.hosts)
