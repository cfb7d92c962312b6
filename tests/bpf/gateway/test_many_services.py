"""Many services at once (Gateway.add_services, what a service sweep programs), through
BPF_PROG_TEST_RUN: every VIP goes to its own backend, a refused batch writes nothing, and
delete_services takes them all away, change_backends works from the caller's record."""

from ipaddress import IPv6Address, ip_address

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.inet import TCP

from lab.bpf.object import BpfObject
from lab.datapath.gateway.model import ConflictError, NotFoundError
from lab.errors import InputError

from gw_helpers import ETH, GatewayUnderTest, service, settings

pytestmark = pytest.mark.root

CLIENT = "2001:db8:c::10"
N = 300


def vip(i):
    return str(ip_address("fd00:10:96::") + i + 1)


def backend(i):
    return str(ip_address("2001:db8:2::") + i + 1)


@pytest.fixture
def gw(bpf_build):
    """The gateway sized for N services, with small selection tables (one backend each)."""
    obj = BpfObject(bpf_build / "gateway.o")
    obj.set_max_entries("gw_services", N + 8)
    obj.set_max_entries("gw_tables", N + 8)
    obj.load()
    yield GatewayUnderTest(obj, "tc", settings(table_size=251))
    obj.close()


def to(gut, address):
    pkt = ETH / IPv6(src=CLIENT, dst=address) / TCP(sport=40000, dport=80, flags="S")
    r = gut(pkt)
    assert r.outcome == "new", r.outcome
    return r.l3[IPv6].dst


def test_every_vip_reaches_its_own_backend(gw):
    added = gw.gw.add_services([service(vip(i), [backend(i)]) for i in range(N)])
    assert len({s.id for s in added}) == N
    assert len({b.id for s in added for b in s.backends}) == N
    assert len(gw.gw.services()) == N
    for i in (0, 1, N // 2, N - 1):
        assert to(gw, vip(i)) == backend(i)


def test_a_refused_batch_writes_nothing(gw):
    gw.gw.add_service(service(vip(5), [backend(5)]))
    batch = [service(vip(i), [backend(i)]) for i in range(10)]
    with pytest.raises(ConflictError, match="exists already") as e:
        gw.gw.add_services(batch)
    assert e.value.path == (5, "frontend")
    assert [str(s.frontend.address) for s in gw.gw.services()] == [vip(5)]
    with pytest.raises(InputError, match="no room"):
        gw.gw.add_services([service(vip(i), [backend(i)]) for i in range(10, 10 + N + 8)])
    assert len(gw.gw.services()) == 1


def test_delete_services_takes_them_away(gw):
    added = gw.gw.add_services([service(vip(i), [backend(i)]) for i in range(20)])
    gw.gw.delete_services(added[:15])
    left = gw.gw.services()
    assert [str(s.frontend.address) for s in left] == [vip(i) for i in range(15, 20)]
    assert {int(k) for k in gw.gw.maps["gw_backends"].keys()} == \
        {b.id for s in left for b in s.backends}
    assert IPv6Address(to(gw, vip(17))) == IPv6Address(backend(17))
    with pytest.raises(NotFoundError, match="not at"):
        gw.gw.delete_services(added[:1])  # gone already


def test_change_backends_from_the_callers_record(gw):
    added = gw.gw.add_services([service(vip(i), [backend(i)]) for i in range(50)])
    svc = added[20]
    kept = svc.backends[0]
    fresh = service(vip(20), [backend(1000)]).backends[0]
    new = gw.gw.change_backends(svc, [kept, fresh])
    assert new.id == svc.id and new.backends[0].id == kept.id
    assert new.backends[1].id not in {b.id for s in added for b in s.backends}
    assert set(gw.gw.table(svc.id)) == {kept.id, new.backends[1].id}
    assert gw.gw.service(svc.id).backends == new.backends
    gone = gw.gw.change_backends(new, [fresh])
    assert {int(k) for k in gw.gw.maps["gw_backends"].keys()} >= {gone.backends[0].id}
    assert kept.id not in {int(k) for k in gw.gw.maps["gw_backends"].keys()}
    with pytest.raises(NotFoundError, match="not at"):
        gw.gw.change_backends(added[3].with_ids(999, [1]), [fresh])
