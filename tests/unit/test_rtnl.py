"""Our extensions of pyroute2's rtnetlink messages encode at the kernel's UAPI numbers."""

from __future__ import annotations

import struct

from lab.netlink import rtnl


def attrs_of(data: bytes, offset: int) -> dict[int, bytes]:
    out = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        out[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


IFINFO = 16 + 16  # nlmsghdr + ifinfomsg


def encoded(msg) -> bytes:
    msg["header"]["type"] = rtnl.RTM_NEWLINK
    msg.encode()
    return bytes(msg.data)


def test_ipv4_big_tcp_sizes_are_attributes_63_and_64():
    data = encoded(rtnl.set_link(7, gso_max_size=185000, gso_ipv4_max_size=185000,
                                 gro_ipv4_max_size=131072))
    assert struct.unpack_from("=i", data, 16 + 4)[0] == 7  # ifi_index
    attrs = attrs_of(data, IFINFO)
    assert struct.unpack("=I", attrs[41])[0] == 185000  # IFLA_GSO_MAX_SIZE
    assert struct.unpack("=I", attrs[63])[0] == 185000  # IFLA_GSO_IPV4_MAX_SIZE
    assert struct.unpack("=I", attrs[64])[0] == 131072  # IFLA_GRO_IPV4_MAX_SIZE


def test_link_message_decodes_the_new_attributes():
    data = encoded(rtnl.set_link(3, gso_ipv4_max_size=65536, gro_ipv4_max_size=185000))
    msg = rtnl.LinkMessage(data)
    msg.decode()
    assert msg.get_attr("IFLA_GSO_IPV4_MAX_SIZE") == 65536
    assert msg.get_attr("IFLA_GRO_IPV4_MAX_SIZE") == 185000


def test_up_at_creation_sets_the_flag_on_this_end_only():
    data = encoded(rtnl.new_veth("lxc0", 5, "eth0", 2, 9, up=True))
    flags, change = struct.unpack_from("=II", data, 16 + 8)
    assert flags & rtnl.IFF_UP and change & rtnl.IFF_UP


def test_netkit_request_layout():
    data = encoded(rtnl.new_netkit("nk0", 4, "eth0", 2, 11, mode="l3", policy="forward",
                                   peer_policy="blackhole", scrub="none"))
    attrs = attrs_of(data, IFINFO)
    linkinfo = attrs_of(attrs[18], 0)  # IFLA_LINKINFO
    assert linkinfo[1].rstrip(b"\0") == b"netkit"  # IFLA_INFO_KIND
    nk = attrs_of(linkinfo[2], 0)  # IFLA_INFO_DATA
    assert struct.unpack("=I", nk[5])[0] == 1  # IFLA_NETKIT_MODE = NETKIT_L3
    assert struct.unpack("=I", nk[3])[0] == 0  # IFLA_NETKIT_POLICY = NETKIT_PASS
    assert struct.unpack("=I", nk[4])[0] == 2  # IFLA_NETKIT_PEER_POLICY = NETKIT_DROP
    assert struct.unpack("=I", nk[6])[0] == 0  # IFLA_NETKIT_SCRUB = NONE
    assert 7 not in nk  # peer scrub only when asked (kernels before 6.9 lack it)
    peer = nk[1]  # IFLA_NETKIT_PEER_INFO: ifinfomsg + attributes
    assert struct.unpack_from("=i", peer, 4)[0] == 2
    peer_attrs = attrs_of(peer, 16)
    assert peer_attrs[3].rstrip(b"\0") == b"eth0"  # IFLA_IFNAME
    assert struct.unpack("=I", peer_attrs[28])[0] == 11  # IFLA_NET_NS_FD


def test_netkit_decodes_back():
    msg = rtnl.LinkMessage(encoded(rtnl.new_netkit("nk0", 4, "eth0", 2, 11, mode="l2")))
    msg.decode()
    data = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    assert data.get_attr("IFLA_NETKIT_MODE") == 0
    assert data.get_attr("IFLA_NETKIT_PEER_INFO").get_attr("IFLA_IFNAME") == "eth0"


def test_ipv4_route_via_ipv6_next_hop_uses_rta_via():
    msg = rtnl.new_route("0.0.0.0", 0, 4, gateway="fe80::1", oif=2)
    msg["header"]["type"] = rtnl.RTM_NEWROUTE
    msg.encode()
    attrs = attrs_of(bytes(msg.data), 16 + 12)
    assert 18 in attrs and 5 not in attrs  # RTA_VIA, not RTA_GATEWAY
    assert struct.unpack_from("=H", attrs[18])[0] == 10  # AF_INET6
