"""A topology file's `datapath.translator` section: the stateless translator (bpf/xlate.c)
on a gateway node, from one mapping.

    datapath:
      translator:
        node: gw                  # default: the one node of role gateway
        hook: tc                  # tc | tcx | xdp (ingress); egress is always tc/tcx
        forward: kernel           # kernel | fib: who forwards what the translator translated
        engine: bpf               # bpf | tayga (userspace, lab/datapath/tayga.py) | none
                                  # (none: plain routing; with hook xdp, an empty XDP
                                  # program and its offloads: the hook's own cost)
        dev4: [eth-client, eth-server]   # IPv4-side devices (default: those with IPv4)
        dev6: eth-node            # IPv6-side devices (default: those with IPv6 only)
        prefix: "64:ff9b:1::/96"  # and every other TranslatorConfig setting
        eam: [{ipv4: 203.0.113.16/28, ipv6: "fd00:10:244:1::10/124"}]
        own: [{ipv4: 192.0.2.1, ipv6: "fd00:0:0:1::1"}]

The section is checked when the file loads (the translator feature's check, feature.py),
errors at their line and column. `derive()` then writes into the topology model what
docs/translator.md describes and tests/bpf/xlate/test_xlate_namespaces.py once built by hand,
so the builder creates it like anything else in the file:

  - the ingress translator on every dev4 and dev6 at the chosen hook, the two egress
    programs (xlate64_egress on the first dev4, xlate46_egress on the first dev6);
  - routes that lead the gateway's own packets to the other family into those egress
    programs: the RFC 6052 prefix and the EAM IPv6 ranges of IPv4 hosts via the first dev4,
    the EAM IPv4 ranges of IPv6 hosts via the first dev6, each through a next hop with a
    permanent neighbour entry (never resolved; the egress program routes the translated
    packet anew), with the first own pair's address as the source the kernel picks;
  - with `dns64:`, at `lab up`, unbound as a DNS64 resolver and the IPv4-only zone's
    server, and the pods' resolv.conf (lab/datapath/dns64.py);
  - at XDP: tx checksumming off on the devices that feed the XDP program (XDP cannot tell a
    partial checksum, docs/translator.md), and, with icmp_errors, the packet counter's XDP
    program on those peers (veth delivers XDP_TX frames promptly only to a peer with XDP);
    GRO on the gateway's own dev4/dev6, so that what XDP passes to the stack is coalesced
    again before the kernel forwards it (veth gives an XDP program MTU-sized packets only);
  - `forward: fib`: the program forwards translated packets itself (FIB lookup, hop limit
    or TTL lowered, redirect; bpf/include/xlat/forward.h) between the dev4 and dev6
    devices, and leaves the rest to the kernel; at XDP, GRO on the peers of those devices
    too (veth takes redirected frames only into a peer with NAPI). The devices are named
    to the program when the lab is up (`start`). Default `kernel`: the kernel forwards.
  - accept_local on the IPv6-side devices: a translated error from an IPv6 router without
    an IPv4 address carries the gateway's own IPv4 address (no RFC 6791 pool).

Which side of an EAM entry is real (hosts with those addresses) and which is made up by the
translator is read from the topology: the side where a node has an address, or where the
gateway has a route or connected network.

The configuration written into the maps (`effective_config`) adds, to what the file says:
the gateway's IPv4 addresses outside the own pairs to `exclude` (packets to them are the
gateway's, not translated through the prefix), the own IPv4 addresses to `allow` when there
is an allow-list (the kernel's ICMP errors come from them), and the first own pair as the
source of the translator's ICMP errors when `icmp_errors` is on and no source is given (the
last also in `config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from lab.bpf.object import BpfObject
from lab.datapath.translator import dns64, tayga
from lab.datapath.translator.addrmap import EamEntry
from lab.datapath.translator.config import (EGRESS_46, EGRESS_64, INGRESS_TC, INGRESS_XDP,
                                            OBJECT, SETTINGS, XDP_PASS, TranslatorConfig,
                                            forward_counts, outcome_names,
                                            set_fib_forwarding)
from lab.errors import InputError
from lab.lab import Lab
from lab.topology.model import BpfAttach, Neighbour, Route, Topology
from lab.yamlfile import Document

SECTION = "translator"
HOOKS = ("tc", "tcx", "xdp")
ENGINES = ("bpf", "tayga", "none")
# Keys of the section that place the translator; the rest are TranslatorConfig settings.
PLACEMENT_KEYS = ("node", "hook", "engine", "forward", "dev4", "dev6", "dns64")
FORWARDS = ("kernel", "fib")

# hook -> (ingress hook, ingress program, egress hook)
ATTACH = {"tc": ("tc-ingress", INGRESS_TC, "tc-egress"),
          "tcx": ("tcx-ingress", INGRESS_TC, "tcx-egress"),
          "xdp": ("xdp", INGRESS_XDP, "tc-egress")}

# Next hops that are never resolved (permanent neighbour entries, any MAC): routes through
# them hand the kernel's own packets to the egress translators.
NEXT_HOP6 = "fe80::ff"
NEXT_HOP4 = "169.254.255.1"
NEXT_HOP_MAC = "02:00:00:00:00:ff"
# An IPv4 fragment grows by this much in translation: IPv6 header and Fragment header
# against the IPv4 header.
FRAG_OVERHEAD = 40 + 8 - 20


def _bad(path: tuple, message: str, key: bool = False) -> InputError:
    """A bad value at PATH (relative to the section)."""
    return InputError(message, path=path, at_key=key)


@dataclass
class Placement:
    """Where and how the translator runs, resolved against the topology."""
    node: str
    hook: str
    engine: str
    forward: str
    dev4: list[str]
    dev6: list[str]
    settings: dict[str, Any]                   # the TranslatorConfig part of the section
    config: TranslatorConfig                   # as the file says it
    routes: list[Route] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    dns64: dns64.Dns64Config | None = None
    ipv4_hosts: list[IPv4Network] = field(default_factory=list)   # EAM entries, IPv4 side real


def section(topo: Topology) -> Mapping[str, Any] | None:
    return topo.datapath.get(SECTION)


# --- checking ---------------------------------------------------------------------------------

def _names(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _bad((key,), "expected a device name or a non-empty list of them")


def _gateway_node(topo: Topology, data: Mapping[str, Any]) -> str:
    if "node" in data:
        name = data["node"]
        if not isinstance(name, str) or name not in topo.nodes:
            raise _bad(("node",), f"no node '{name}' (nodes: "
                                          f"{', '.join(sorted(topo.nodes))})")
        node = topo.nodes[name]
        if 4 not in {a.version for a in node.addresses()} or \
                6 not in {a.version for a in node.addresses()}:
            raise _bad(("node",), f"node '{name}' translates between IPv4 and IPv6 "
                                          "but does not have addresses of both families")
        return name
    gateways = [n.name for n in topo.nodes.values() if n.role == "gateway"]
    if len(gateways) != 1:
        raise _bad((), "say which node translates (`node:`): the topology has "
                               f"{len(gateways) or 'no'} nodes of role gateway", key=True)
    return gateways[0]


def _devices(topo: Topology, node: str, data: Mapping[str, Any], key: str) -> list[str]:
    ifaces = topo.nodes[node].interfaces
    if key in data:
        names = _names(data[key], key)
        for i, n in enumerate(names):
            if n not in ifaces:
                where = (key,) if isinstance(data[key], str) else (key, i)
                raise _bad(where, f"node '{node}' has no interface '{n}' (it has: "
                                          f"{', '.join(ifaces)})")
        return names
    if key == "dev4":
        names = [i.ifname for i in ifaces.values() if any(a.version == 4 for a in i.addresses)]
    else:
        names = [i.ifname for i in ifaces.values()
                 if any(a.version == 6 and not a.ip.is_link_local for a in i.addresses)
                 and not any(a.version == 4 for a in i.addresses)]
    if not names:
        family = "IPv4" if key == "dev4" else "IPv6 (and no IPv4)"
        raise _bad((), f"node '{node}' has no interface with {family} addresses: "
                               f"name the {key} device(s)", key=True)
    return names


def _node_has(topo: Topology, net: IPv4Network | IPv6Network) -> bool:
    return any(a.ip in net for n in topo.nodes.values() for a in n.addresses())


def _gateway_reaches(topo: Topology, node: str, net: IPv4Network | IPv6Network) -> bool:
    """Whether the gateway routes NET (or a part of it) somewhere, or has it connected
    (routes into the egress translators, which derive() adds, do not count)."""
    n = topo.nodes[node]
    nets = [ip_network(r.dst) for r in n.routes
            if ip_network(r.dst).prefixlen > 0 and r.via not in (NEXT_HOP4, NEXT_HOP6)]
    nets += [a.network for a in n.addresses() if not a.ip.is_link_local]
    return any(x.version == net.version and (x.overlaps(net)) for x in nets)


def eam_real_side(topo: Topology, node: str, entry: EamEntry) -> int | None:
    """4 if the entry's IPv4 range holds real hosts (its IPv6 range is the translator's), 6
    if the IPv6 range does; None when the topology does not tell."""
    sides = {v for v, net in ((4, entry.v4), (6, entry.v6))
             if _node_has(topo, net) or _gateway_reaches(topo, node, net)}
    return sides.pop() if len(sides) == 1 else None


def placement(topo: Topology) -> Placement:
    """The section resolved against TOPO; InputError at the bad value (a path in the
    section)."""
    data = section(topo)
    if not isinstance(data, Mapping):
        raise _bad((), "expected a mapping")
    known = PLACEMENT_KEYS + SETTINGS
    for key in data:
        if key not in known:
            raise _bad((key,), f"unknown setting '{key}' (known: {', '.join(known)})",
                               key=True)
    node = _gateway_node(topo, data)
    hook = data.get("hook", "tc")
    if hook not in HOOKS:
        raise _bad(("hook",), f"unknown hook '{hook}' (one of: {', '.join(HOOKS)})")
    engine = data.get("engine", "bpf")
    if engine not in ENGINES:
        raise _bad(("engine",), f"unknown engine '{engine}' (one of: "
                                        f"{', '.join(ENGINES)})")
    forward = data.get("forward", "kernel")
    if forward not in FORWARDS:
        raise _bad(("forward",), f"unknown forwarding '{forward}' (one of: "
                                         f"{', '.join(FORWARDS)})")
    if forward != "kernel" and engine != "bpf":
        raise _bad(("forward",), f"forward: {forward} is the bpf engine's; "
                                         f"engine {engine} leaves forwarding to the kernel")
    dev4, dev6 = _devices(topo, node, data, "dev4"), _devices(topo, node, data, "dev6")
    both = set(dev4) & set(dev6)
    if both:
        raise _bad(("dev6",), f"{', '.join(sorted(both))} cannot be on both sides")
    settings = {k: v for k, v in data.items() if k not in PLACEMENT_KEYS}
    own = settings.get("own")
    if isinstance(own, list) and own and isinstance(own[0], Mapping):
        # the translator's own ICMP errors come from the gateway's first own pair, and so
        # do translated errors from IPv6 routers without an IPv4 address when there is no
        # RFC 6791 pool
        settings.setdefault("icmp_source4", own[0].get("ipv4"))
        settings.setdefault("icmp_source6", own[0].get("ipv6"))
    config = TranslatorConfig.from_dict(settings)
    if engine == "tayga":
        for key in tayga.UNSUPPORTED:
            if key in settings:
                raise _bad((key,), f"engine tayga has no '{key}' (TAYGA lacks it): "
                                           "leave it out, or use engine bpf", key=True)
        why = tayga.check_prefix(config.prefix) if config.prefix is not None else None
        if why:
            raise _bad(("prefix",), why)
    p = Placement(node=node, hook=hook, engine=engine, forward=forward, dev4=dev4, dev6=dev6,
                  settings=settings, config=config)
    gw = topo.nodes[node]
    own_addrs = {a.ip for a in gw.addresses()}
    owns = [e for e in config.eam if e.own]
    for i, e in enumerate(owns):
        for addr in (e.v4.network_address, e.v6.network_address):
            if addr not in own_addrs:
                raise _bad(("own", i), f"{addr} is not an address of node '{node}'")
    src4 = str(owns[0].v4.network_address) if owns else None
    src6 = str(owns[0].v6.network_address) if owns else None
    if config.prefix is not None:
        p.routes.append(Route(dst=str(config.prefix.network), via=NEXT_HOP6, dev=dev4[0],
                              src=src6))
    for i, e in enumerate(e for e in config.eam if not e.own):
        side = eam_real_side(topo, node, e)
        if side is None:
            raise _bad(("eam", i), f"cannot tell which side of {e.v6} <-> {e.v4} "
                               "has the hosts: no node has addresses in exactly one of the "
                               "two ranges, nor does the gateway route exactly one")
        if side == 4:
            p.routes.append(Route(dst=str(e.v6), via=NEXT_HOP6, dev=dev4[0], src=src6))
            p.ipv4_hosts.append(e.v4)
        else:
            # The MTU makes the kernel fragment the DF-clear IPv4 packets the ingress
            # translator leaves it (XLAT_FRAG_KERNEL) so that each translated fragment,
            # 28 bytes longer with its Fragment header, fits lowest_ipv6_mtu (RFC 7915 4.1).
            p.routes.append(Route(dst=str(e.v4), via=NEXT_HOP4, dev=dev6[0], src=src4,
                                  onlink=True, mtu=config.lowest_ipv6_mtu - FRAG_OVERHEAD))
    if p.routes:
        if any(r.family == 6 for r in p.routes):
            p.neighbours.append(Neighbour(NEXT_HOP6, NEXT_HOP_MAC, dev4[0]))
        if any(r.family == 4 for r in p.routes):
            p.neighbours.append(Neighbour(NEXT_HOP4, NEXT_HOP_MAC, dev6[0]))
    effective_config(topo, p)   # the derived additions must make a valid configuration
    if "dns64" in data:
        try:
            p.dns64 = dns64.parse(data["dns64"], topo, node,
                                  str(config.prefix) if config.prefix else None, src6)
        except InputError as e:
            raise e.within("dns64") from None
    return p


def effective_config(topo: Topology, p: Placement | None = None) -> TranslatorConfig:
    """What goes into the maps: the file's settings and the additions the topology implies
    (see the module's docstring)."""
    p = p or placement(topo)
    settings = dict(p.settings)
    cfg = p.config
    owns = [e for e in cfg.eam if e.own]
    own4 = {e.v4.network_address for e in owns}
    if cfg.prefix is not None:
        others = sorted({a.ip for a in topo.nodes[p.node].addresses(4)} - own4)
        listed = [ip_network(str(n)) for n in settings.get("exclude", [])]
        settings["exclude"] = [str(n) for n in listed] + [
            f"{a}/32" for a in others if not any(a in n for n in listed)]
    if cfg.allow:
        settings["allow"] = [str(n) for n in cfg.allow] + [
            f"{a}/32" for a in sorted(own4) if not any(a in n for n in cfg.allow)]
    return replace(TranslatorConfig.from_dict(settings), eam_ipv4_hosts=tuple(p.ipv4_hosts))


def _check_programs(topo: Topology, p: Placement) -> None:
    """What the file attaches itself must leave the translator its hooks (before derive())."""
    for iface in topo.nodes[p.node].interfaces.values():
        if any(b.object == OBJECT for b in iface.bpf):
            raise _bad((), f"{p.node}:{iface.ifname} attaches the '{OBJECT}' "
                                   "object itself: the translator section attaches it; "
                                   "remove one of the two", key=True)
    if p.engine in ("bpf", "none") and p.hook == "xdp":
        for dev in p.dev4 + p.dev6:
            iface = topo.nodes[p.node].interfaces[dev]
            peer = topo.nodes[iface.peer_node].interfaces[iface.peer_ifname]
            if any(b.hook.startswith("xdp") for b in iface.bpf + peer.bpf):
                raise _bad(("hook",), f"{iface.label} or its peer has an XDP program "
                                              "already; the translator needs that hook")


def check_section(doc: Document, path: tuple, topo: Topology) -> None:
    """Refuse a bad section at the position of the bad value."""
    try:
        _check_programs(topo, placement(topo))
    except InputError as e:
        raise doc.place(e, path) from None


# --- what the builder creates -----------------------------------------------------------------

def derive(topo: Topology) -> None:
    """Write the translator's programs, routes, neighbours and offloads into TOPO's model
    (called once, after check_section, when the file loads)."""
    p = placement(topo)
    gw = topo.nodes[p.node]
    if p.engine == "none" and p.hook == "xdp":
        # no translation, but the XDP hook's own cost (an empty program, the offloads it
        # needs): what the translator at XDP is measured against
        for dev in p.dev4 + p.dev6:
            gw.interfaces[dev].bpf.append(BpfAttach(OBJECT, XDP_PASS, "xdp"))
        _xdp_offloads(topo, p)
        return
    if p.engine != "bpf":
        return
    ingress_hook, ingress_prog, egress_hook = ATTACH[p.hook]
    for dev in p.dev4 + p.dev6:
        gw.interfaces[dev].bpf.append(BpfAttach(OBJECT, ingress_prog, ingress_hook))
    gw.interfaces[p.dev4[0]].bpf.append(BpfAttach(OBJECT, EGRESS_64, egress_hook))
    gw.interfaces[p.dev6[0]].bpf.append(BpfAttach(OBJECT, EGRESS_46, egress_hook))
    gw.neighbours.extend(p.neighbours)
    gw.routes.extend(p.routes)
    for dev in p.dev6:
        # Translated errors from IPv6 routers without an IPv4 address and without an RFC 6791
        # pool come from the gateway's own IPv4 address (RFC 7915 5.1): the kernel forwards
        # them only if it accepts its own address as a source on the device they come in on.
        gw.sysctls.setdefault(f"net.ipv4.conf.{dev}.accept_local", "1")
    if p.hook == "xdp":
        _xdp_offloads(topo, p)
        for dev in p.dev4 + p.dev6:
            iface = gw.interfaces[dev]
            peer = topo.nodes[iface.peer_node].interfaces[iface.peer_ifname]
            if p.config.icmp_errors:
                peer.bpf.append(BpfAttach("pktcount", "pktcount_xdp", "xdp"))


def _xdp_offloads(topo: Topology, p: Placement) -> None:
    for dev in p.dev4 + p.dev6:
        iface = topo.nodes[p.node].interfaces[dev]
        peer = topo.nodes[iface.peer_node].interfaces[iface.peer_ifname]
        peer.offloads = {**peer.offloads, "tx": False}
        iface.offloads = {"gro": True, **iface.offloads}
        if p.forward == "fib":
            peer.offloads = {"gro": True, **peer.offloads}


def after_load(obj: BpfObject, topo: Topology, node: str) -> None:
    """`lab up` loaded the translator's object on NODE: on the translating node, write the
    effective configuration into its maps."""
    if section(topo) is None:
        return
    p = placement(topo)
    if node == p.node:
        effective_config(topo, p).apply(obj)


def started_on(topo: Topology) -> set[str]:
    """The nodes start() acts on: the translating node, and DNS64's servers and clients."""
    p = placement(topo)
    nodes = {p.node}
    if p.dns64 is not None:
        nodes |= {p.dns64.node, p.dns64.zone_node, *p.dns64.clients}
    return nodes


def start(lab: Lab) -> None:
    """What runs beside the datapath once the lab is built (Lab.up): TAYGA (engine tayga)
    and the DNS64 servers."""
    p = placement(lab.topology)
    if p.engine == "bpf" and p.forward == "fib":
        _name_forwarding_devices(lab, p)
    if p.engine == "tayga":
        tayga.start(lab, p.node, p.config, [r.dst for r in p.routes])
    if p.dns64 is not None:
        dns64.start(lab, p.dns64)


def _name_forwarding_devices(lab: Lab, p: Placement) -> None:
    """`forward: fib`: the translator's devices, by ifindex in the gateway's namespace."""
    from lab.bpf.maps import open_pinned

    gw = lab.node(p.node)
    pins = _pins(lab, p)
    with open_pinned(str(pins / "xlat_cfg")) as cfg, \
            open_pinned(str(pins / "xlat_fwd_devs")) as devs:
        set_fib_forwarding(cfg, devs, [gw.interfaces[d].ifindex
                                             for d in p.dev4 + p.dev6])


def _pins(lab: Lab, p: Placement) -> Any:
    from lab.bpf import topology as bpf_topology

    return bpf_topology.maps_pin_dir(lab.pin_dir, p.node, OBJECT)


# --- a running lab ----------------------------------------------------------------------------

def statistics(lab: Lab) -> dict[str, int]:
    """The translator's outcome counters in a running lab (its pinned xlat_stats map)."""
    from lab.bpf import topology as bpf_topology
    from lab.bpf.maps import open_pinned

    p = placement(lab.topology)
    pins = bpf_topology.maps_pin_dir(lab.pin_dir, p.node, OBJECT)
    m = open_pinned(str(pins / "xlat_stats"))
    try:
        names = outcome_names(m)
        return {name: int(m.lookup_sum(i) or 0) for i, name in enumerate(names)}
    finally:
        m.close()


def forward_statistics(lab: Lab) -> dict[str, int]:
    """How the translated packets of a running lab were forwarded: `redirected` by the
    program itself (`forward: fib`), or handed to the `kernel` although it was on."""
    from lab.bpf.maps import open_pinned

    with open_pinned(str(_pins(lab, placement(lab.topology)) / "xlat_fwd_stats")) as m:
        return forward_counts(m)


def address_of(topo: Topology, addr: str) -> str:
    """ADDR of one family as the other family sees it through the translator."""
    mapper = effective_config(topo).mapper()
    a = ip_address(addr)
    return str(mapper.to6(a) if a.version == 4 else mapper.to4(a))
