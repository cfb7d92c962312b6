"""rtnetlink messages: pyroute2's classes, extended with what pyroute2 0.9 does not know.

pyroute2's `ifinfmsg` stops at IFLA_ALLMULTI (61). The lab needs the IPv4 BIG TCP limits
(IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE, kernel 6.3) and netkit's link options
(IFLA_NETKIT_*, kernel 6.7+). Both are added here, once: `LinkMessage` is ifinfmsg with the
newer IFLA_* attributes appended at their UAPI numbers, and the `netkit` link kind is registered
through pyroute2's own link-kind plugin table so IFLA_INFO_DATA encodes and decodes.
"""

from __future__ import annotations

import socket

from pyroute2.netlink import nla
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfbase, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

# Attributes after IFLA_ALLMULTI, in UAPI order (include/uapi/linux/if_link.h).
_IFLA_AFTER_ALLMULTI = (
    ("IFLA_DEVLINK_PORT", "hex"),  # 62
    ("IFLA_GSO_IPV4_MAX_SIZE", "uint32"),  # 63
    ("IFLA_GRO_IPV4_MAX_SIZE", "uint32"),  # 64
    ("IFLA_DPLL_PIN", "hex"),  # 65
    ("IFLA_MAX_PACING_OFFLOAD_HORIZON", "uint32"),  # 66
    ("IFLA_NETNS_IMMUTABLE", "uint8"),  # 67
    ("IFLA_HEADROOM", "uint16"),  # 68
    ("IFLA_TAILROOM", "uint16"),  # 69
)
IFLA_ALLMULTI = 61


def _extended_map(base: tuple) -> tuple:
    names = [entry[0] for entry in base]
    if names.index("IFLA_ALLMULTI") != IFLA_ALLMULTI or names[-1] != "IFLA_ALLMULTI":
        # A newer pyroute2 may already know these; never renumber what it knows.
        known = set(names)
        return base + tuple(e for e in _IFLA_AFTER_ALLMULTI if e[0] not in known)
    return base + _IFLA_AFTER_ALLMULTI


class LinkMessage(ifinfmsg):
    """RTM_{NEW,GET,DEL}LINK with the IFLA_* attributes newer than pyroute2."""

    nla_map = _extended_map(ifinfmsg.nla_map)
    # pyroute2 caches the compiled table in class attributes that subclasses inherit: without
    # this, a process that used plain ifinfmsg first would decode with ifinfmsg's table.
    _nlmsg_base__compiled_nla = False


# netkit (drivers/net/netkit.c, include/uapi/linux/if_link.h)
NETKIT_MODES = {"l2": 0, "l3": 1}
NETKIT_POLICIES = {"forward": 0, "blackhole": 2}  # NETKIT_PASS, NETKIT_DROP
NETKIT_SCRUB = {"none": 0, "default": 1}


class _NetkitPeer(ifinfbase, nla):
    """The peer's ifinfomsg + attributes nested in IFLA_NETKIT_PEER_INFO (like VETH_INFO_PEER)."""

    nla_map = _extended_map(ifinfbase.nla_map)
    _nlmsg_base__compiled_nla = False  # see LinkMessage


class netkit_data(nla):
    nla_map = (
        ("IFLA_NETKIT_UNSPEC", "none"),
        ("IFLA_NETKIT_PEER_INFO", "peer_info"),
        ("IFLA_NETKIT_PRIMARY", "uint8"),
        ("IFLA_NETKIT_POLICY", "uint32"),
        ("IFLA_NETKIT_PEER_POLICY", "uint32"),
        ("IFLA_NETKIT_MODE", "uint32"),
        ("IFLA_NETKIT_SCRUB", "uint32"),
        ("IFLA_NETKIT_PEER_SCRUB", "uint32"),
        ("IFLA_NETKIT_HEADROOM", "uint16"),
        ("IFLA_NETKIT_TAILROOM", "uint16"),
    )

    @staticmethod
    def peer_info(self, *argv, **kwarg):
        return _NetkitPeer


ifinfmsg.ifinfo.register_link_kind(module={"netkit": netkit_data})


# -- message constructors ------------------------------------------------------------------------

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH = 28

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80


def _peer_attrs(ifname: str, netns_fd: int, mtu: int | None) -> list:
    attrs = [("IFLA_IFNAME", ifname), ("IFLA_NET_NS_FD", netns_fd)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    return attrs


def _up(up: bool) -> dict:
    return {"flags": IFF_UP, "change": IFF_UP} if up else {}


def new_veth(ifname: str, ifindex: int, peer_ifname: str, peer_ifindex: int, peer_netns_fd: int,
             mtu: int | None = None, peer_mtu: int | None = None,
             up: bool = False) -> LinkMessage:
    """A veth pair in one request: this end in the socket's namespace, the peer in another.

    UP brings this end up as it is created, saving a request. The peer cannot be: the kernel
    opens it before the pair is joined, and veth_open() refuses that (ENOTCONN).
    """
    msg = LinkMessage()
    msg["index"] = ifindex
    msg.update(_up(up))
    attrs = [("IFLA_IFNAME", ifname)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    peer = {"index": peer_ifindex, "attrs": _peer_attrs(peer_ifname, peer_netns_fd, peer_mtu)}
    attrs.append(("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "veth"),
        ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]}),
    ]}))
    msg["attrs"] = attrs
    return msg


def new_netkit(ifname: str, ifindex: int, peer_ifname: str, peer_ifindex: int,
               peer_netns_fd: int, mode: str = "l3", policy: str = "forward",
               peer_policy: str = "forward", scrub: str | None = None,
               peer_scrub: str | None = None, mtu: int | None = None,
               peer_mtu: int | None = None, up: bool = False) -> LinkMessage:
    """A netkit pair: the primary (this end) stays here, the peer goes to PEER_NETNS_FD."""
    msg = LinkMessage()
    msg["index"] = ifindex
    msg.update(_up(up))
    attrs = [("IFLA_IFNAME", ifname)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    data = [
        ("IFLA_NETKIT_MODE", NETKIT_MODES[mode]),
        ("IFLA_NETKIT_POLICY", NETKIT_POLICIES[policy]),
        ("IFLA_NETKIT_PEER_POLICY", NETKIT_POLICIES[peer_policy]),
    ]
    # Scrub attributes exist since 6.9; only send them when asked so 6.7/6.8 still work.
    if scrub is not None:
        data.append(("IFLA_NETKIT_SCRUB", NETKIT_SCRUB[scrub]))
    if peer_scrub is not None:
        data.append(("IFLA_NETKIT_PEER_SCRUB", NETKIT_SCRUB[peer_scrub]))
    data.append(("IFLA_NETKIT_PEER_INFO", {
        "index": peer_ifindex, "attrs": _peer_attrs(peer_ifname, peer_netns_fd, peer_mtu)}))
    attrs.append(("IFLA_LINKINFO", {"attrs": [
        ("IFLA_INFO_KIND", "netkit"),
        ("IFLA_INFO_DATA", {"attrs": data}),
    ]}))
    msg["attrs"] = attrs
    return msg


# Device settings whose name (a topology file's, `ip link`'s) is not their IFLA_* name.
_IFLA_NAMES = {"txqueuelen": "IFLA_TXQLEN"}


def ifla(setting: str) -> str:
    """The IFLA_* attribute of a device setting: mtu -> IFLA_MTU, txqueuelen -> IFLA_TXQLEN."""
    return _IFLA_NAMES.get(setting, f"IFLA_{setting.upper()}")


def set_link(ifindex: int, up: bool | None = None, **attrs) -> LinkMessage:
    """RTM_NEWLINK on an existing device: attributes by setting name (mtu=..., ifla())."""
    msg = LinkMessage()
    msg["index"] = ifindex
    if up is not None:
        msg["change"] = IFF_UP
        msg["flags"] = IFF_UP if up else 0
    msg["attrs"] = [(ifla(k), v) for k, v in attrs.items() if v is not None]
    return msg


def get_link(ifindex: int) -> LinkMessage:
    msg = LinkMessage()
    msg["index"] = ifindex
    return msg


def new_vxlan(ifname: str, ifindex: int, netns_fd: int, vni: int, local: str, remote: str,
              port: int, underlay_ifindex: int | None = None, ttl: int | None = None,
              learning: bool = False, mtu: int | None = None,
              mac: str | None = None) -> LinkMessage:
    """A VXLAN device sent on the host's socket but made straight in another namespace
    (NETNS_FD): its underlay (the UDP socket, LOCAL -> REMOTE:PORT) stays in the host's
    namespace, the device never lives there. IFINDEX is its index in the target namespace."""
    v6 = ":" in local
    data = [("IFLA_VXLAN_ID", vni),
            ("IFLA_VXLAN_LOCAL6" if v6 else "IFLA_VXLAN_LOCAL", local),
            ("IFLA_VXLAN_GROUP6" if v6 else "IFLA_VXLAN_GROUP", remote),
            ("IFLA_VXLAN_PORT", port),
            ("IFLA_VXLAN_LEARNING", int(learning))]
    if underlay_ifindex is not None:
        data.append(("IFLA_VXLAN_LINK", underlay_ifindex))
    if ttl is not None:
        data.append(("IFLA_VXLAN_TTL", ttl))
    if v6:  # UDP checksums over IPv6 (RFC 8200 allows zero only where the path is known)
        data += [("IFLA_VXLAN_UDP_ZERO_CSUM6_TX", 0), ("IFLA_VXLAN_UDP_ZERO_CSUM6_RX", 0)]
    msg = LinkMessage()
    msg["index"] = ifindex
    attrs = [("IFLA_IFNAME", ifname), ("IFLA_NET_NS_FD", netns_fd)]
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    attrs.append(("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "vxlan"),
                                              ("IFLA_INFO_DATA", {"attrs": data})]}))
    msg["attrs"] = attrs
    return msg


def move_link(ifindex: int, netns_fd: int, ifname: str,
              new_ifindex: int | None = None) -> LinkMessage:
    """Move device IFINDEX into the namespace NETNS_FD, named IFNAME there (and indexed
    NEW_IFINDEX: kernel 6.5+). The kernel takes it down on the way."""
    msg = LinkMessage()
    msg["index"] = ifindex
    attrs = [("IFLA_NET_NS_FD", netns_fd), ("IFLA_IFNAME", ifname)]
    if new_ifindex is not None:
        attrs.append(("IFLA_NEW_IFINDEX", new_ifindex))
    msg["attrs"] = attrs
    return msg


def del_link(ifindex: int) -> LinkMessage:
    msg = LinkMessage()
    msg["index"] = ifindex
    return msg


def new_addr(ifindex: int, address: str, prefixlen: int, version: int,
             broadcast: str | None = None, label: str | None = None,
             nodad: bool = True) -> ifaddrmsg:
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if version == 4 else socket.AF_INET6
    msg["prefixlen"] = prefixlen
    msg["index"] = ifindex
    # NODAD: lab addresses are unique by construction; DAD would only delay the lab by ~2 s.
    msg["flags"] = IFA_F_NODAD if version == 6 and nodad else 0
    attrs = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
    if broadcast is not None:
        attrs.append(("IFA_BROADCAST", broadcast))
    if label is not None:
        attrs.append(("IFA_LABEL", label))
    msg["attrs"] = attrs
    return msg


def route_to(address: str) -> rtmsg:
    """RTM_GETROUTE for ADDRESS: the kernel answers with the route it would take."""
    msg = rtmsg()
    v6 = ":" in address
    msg["family"] = socket.AF_INET6 if v6 else socket.AF_INET
    msg["dst_len"] = 128 if v6 else 32
    msg["attrs"] = [("RTA_DST", address)]
    return msg


def dump_of(family: int = socket.AF_UNSPEC, kind: type = rtmsg):
    """An empty message of KIND for a dump request (addresses, routes) of FAMILY."""
    msg = kind()
    msg["family"] = family
    return msg


def new_route(dst: str, dst_len: int, version: int, gateway: str | None = None,
              oif: int | None = None, prefsrc: str | None = None, mtu: int | None = None,
              priority: int | None = None, onlink: bool = False) -> rtmsg:
    msg = rtmsg()
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    msg["family"] = family
    msg["dst_len"] = dst_len
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_STATIC
    msg["scope"] = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    msg["type"] = RTN_UNICAST
    if onlink:
        msg["flags"] = RTNH_F_ONLINK
    attrs = [("RTA_TABLE", RT_TABLE_MAIN)]
    if dst_len:
        attrs.append(("RTA_DST", dst))
    if gateway is not None:
        gw_version = 6 if ":" in gateway else 4
        if gw_version == version:
            attrs.append(("RTA_GATEWAY", gateway))
        else:  # RFC 5549 style: an IPv4 route via an IPv6 next hop
            gw_family = socket.AF_INET6 if gw_version == 6 else socket.AF_INET
            attrs.append(("RTA_VIA", {"family": gw_family, "addr": gateway}))
    if oif is not None:
        attrs.append(("RTA_OIF", oif))
    if prefsrc is not None:
        attrs.append(("RTA_PREFSRC", prefsrc))
    if priority is not None:
        attrs.append(("RTA_PRIORITY", priority))
    if mtu is not None:
        attrs.append(("RTA_METRICS", {"attrs": [("RTAX_MTU", mtu)]}))
    msg["attrs"] = attrs
    return msg


def new_neigh(ifindex: int, address: str, lladdr: str, version: int) -> ndmsg:
    msg = ndmsg()
    msg["family"] = socket.AF_INET if version == 4 else socket.AF_INET6
    msg["ifindex"] = ifindex
    msg["state"] = NUD_PERMANENT
    msg["attrs"] = [("NDA_DST", address), ("NDA_LLADDR", lladdr)]
    return msg
