"""What the link kinds that leave the machine refuse on their host (no root): each check runs
against a host described here (lab/links/host.py's HostView, filled by hand), so every
refusal is an InputError at the end's key path in the file, before anything is made."""

from __future__ import annotations

import textwrap

import pytest

from lab import topology
from lab.errors import InputError
from lab.links import kind_of
from lab.links.host import HostDevice, HostView

TOPO = """\
hosts:
  b: {}
nodes:
  client: {role: client}
  gw: {role: gateway, host: b}
links:
  - kind: vxlan
    vxlan: {vni: 10}
    ends:
      - {node: client, ifname: eth0, addresses: [192.0.2.10/24, "2001:db8::a/64"],
         underlay: {address: 10.0.0.1}}
      - {node: gw, ifname: eth0, addresses: [192.0.2.1/24], underlay: {address: 10.0.0.2}}
  - kind: phys
    gso_max_size: 131072
    ends:
      - {node: client, ifname: eth1, phys: enp2s0}
      - {node: gw, ifname: eth1, phys: "0000:41:00.0"}
"""


def device(name: str, index: int, mtu: int = 1500, pci: str | None = None,
           addresses: tuple[str, ...] = (), tso_max_size: int = 524280) -> HostDevice:
    return HostDevice(name=name, index=index, mtu=mtu, up=True, mac="52:54:00:00:00:01",
                      kind=None, pci=pci, perm_mac=None, min_mtu=68, max_mtu=9216,
                      tso_max_size=tso_max_size,
                      addresses=[{"address": a, "prefixlen": 24, "family": 2,
                                  "broadcast": None, "label": None, "scope": 0}
                                 for a in addresses])


class Host(HostView):
    """A host as the checks see it, without a netlink socket."""

    def __init__(self, *devices: HostDevice, routes: tuple[dict, ...] = (),
                 route_to: str | None = "eth0"):
        self.devices = {d.name: d for d in devices}
        self.routes = list(routes)
        self._route_to = route_to

    def route_device(self, address: str) -> HostDevice | None:
        return self.devices.get(self._route_to) if self._route_to else None


def host_a(**kw) -> Host:
    return Host(device("lo", 1, 65536, addresses=("127.0.0.1",)),
                device("eth0", 2, kw.pop("mtu", 1500), addresses=("10.0.0.1",)),
                device("enp2s0", 3, pci="0000:02:00.0", tso_max_size=kw.pop("tso", 524280)),
                **kw)


def check(host: Host, link_index: int, end: str = "a", text: str = TOPO):
    topo = topology.parse(textwrap.dedent(text), file="t.yaml")
    link = next(li for li in topo.links if li.origin == ["links", link_index])
    ends = [getattr(link, end)]
    kind_of(link).check(link, ends, host)
    return ends[0]


def refused(host: Host, link_index: int, text: str = TOPO) -> InputError:
    with pytest.raises(InputError) as info:
        check(host, link_index, text=text)
    return info.value


# -- vxlan ---------------------------------------------------------------------------------------

def test_a_vxlan_end_takes_its_mtu_from_the_underlay():
    end = check(host_a(mtu=9000), 0)
    assert end.mtu == 9000 - 50 and end.vxlan.dev == "eth0"


def test_an_ipv6_underlay_costs_20_bytes_more():
    text = TOPO.replace("10.0.0.1", "2001:db8:1::1").replace("10.0.0.2", "2001:db8:1::2")
    host = host_a()
    host.devices["eth0"].addresses[0]["address"] = "2001:db8:1::1"
    assert check(host, 0, text=text).mtu == 1430


def test_an_mtu_the_underlay_cannot_carry():
    err = refused(host_a(), 0, TOPO.replace("vxlan: {vni: 10}", "vxlan: {vni: 10}\n    mtu: 1500"))
    assert err.path == ("links", 0, "ends", 0, "mtu")
    assert "MTU 1500 cannot be carried over VXLAN: the underlay device eth0 has MTU 1500, " \
           "and 50 bytes of IPv4 encapsulation leave at most 1450 (raise eth0's MTU to 1550, " \
           "or set this end's mtu to 1450 or less)" == err.message


def test_an_underlay_too_small_for_ipv6():
    err = refused(host_a(mtu=1300), 0)
    assert err.path == ("links", 0, "ends", 0)
    assert "below IPv6's minimum of 1280: raise eth0's MTU to at least 1330" in err.message


def test_an_underlay_address_the_host_does_not_have():
    err = refused(host_a(), 0, TOPO.replace("10.0.0.1", "10.0.0.9"))
    assert err.path == ("links", 0, "ends", 0, "underlay", "address")
    assert err.message == "10.0.0.9 is not an address of this host, so no VXLAN tunnel can " \
                          "leave from it (its addresses: 10.0.0.1)"


def test_no_route_to_the_remote_underlay():
    err = refused(host_a(route_to=None), 0)
    assert err.path == ("links", 0, "ends", 0, "underlay", "address")
    assert "no route to the remote underlay 10.0.0.2" in err.message


def test_an_underlay_device_the_host_does_not_have():
    err = refused(host_a(), 0, TOPO.replace("underlay: {address: 10.0.0.1}",
                                            "underlay: {address: 10.0.0.1, dev: eth7}"))
    assert err.path == ("links", 0, "ends", 0, "underlay", "dev")
    assert err.message == "this host has no device eth7"


# -- phys ----------------------------------------------------------------------------------------

def test_a_nic_by_name_and_by_pci_address():
    check(host_a(), 1)
    host_b = Host(device("eth0", 2, addresses=("10.0.0.2",)),
                  device("enp65s0f0np0", 4, pci="0000:41:00.0"))
    check(host_b, 1, end="b")


def test_a_nic_the_host_does_not_have():
    err = refused(host_a(), 1, TOPO.replace("phys: enp2s0", "phys: enp9s0"))
    assert err.path == ("links", 1, "ends", 0, "phys")
    assert err.message == "this host has no NIC named enp9s0 (its devices: enp2s0 (0000:02:00.0))"
    err = refused(host_a(), 1, TOPO.replace("phys: enp2s0", 'phys: "0000:09:00.0"'))
    assert err.message.startswith("this host has no NIC at PCI address 0000:09:00.0")


def test_loopback_is_no_nic():
    err = refused(host_a(), 1, TOPO.replace("phys: enp2s0", "phys: lo"))
    assert "no NIC named lo" in err.message


def test_the_nic_of_the_hosts_default_route_is_refused():
    host = host_a(routes=({"family": 2, "dst": None, "dst_len": 0, "via": "10.0.0.254",
                           "oif": 3, "proto": 3, "onlink": False, "priority": None},))
    err = refused(host, 1)
    assert err.path == ("links", 1, "ends", 0, "phys")
    assert "enp2s0 carries this host's default route: moving it into the lab would cut the " \
           "host off" in err.message


def test_a_gso_size_above_what_the_nic_can_send():
    err = refused(host_a(tso=65536), 1)
    assert err.path == ("links", 1, "ends", 0, "gso_max_size")
    assert err.message == "gso_max_size 131072 is above what enp2s0 can send in one go (its " \
                          "tso_max_size is 65536)"


def test_an_mtu_the_nic_does_not_take():
    err = refused(host_a(), 1, TOPO.replace("gso_max_size: 131072", "mtu: 9600"))
    assert err.path == ("links", 1, "ends", 0, "mtu")
    assert err.message == "enp2s0 takes an MTU of 68 to 9216, not 9600"
