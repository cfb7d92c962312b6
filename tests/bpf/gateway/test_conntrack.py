"""Connection tracking: TCP state and the timeouts it selects, expiry, a new SYN on a closed
connection, replies of forgotten connections, SNAT source ports, and the backend states
(new connections avoid non-active backends, open ones finish)."""

import time

import pytest
from scapy.layers.inet import IP, TCP, UDP

from lab.datapath.gateway import Timeouts
from lab.errors import UsageError

from gw_helpers import COMBOS, ETH, ip_layer, service, settings

pytestmark = pytest.mark.root

# Each timeout its own value, none of which a test outlives: under emulation (tests/vm) a test
# of 80 connections took 85 s and a SYN timeout of 30 s expired its connections mid-test.
TIMEOUTS = Timeouts(syn=3000, tcp=5000, close=700, other=4000)
CLIENT, VIP, BACKENDS, SNAT = COMBOS["46"]


@pytest.fixture
def gw(gut):
    gut.gw.configure(settings(timeouts=TIMEOUTS))
    return gut


def syn(sport=40000, client=CLIENT):
    return ETH / ip_layer(client, VIP) / TCP(sport=sport, dport=80, flags="S")


def from_backend(out, flags):
    """The backend's answer to the rewritten packet OUT."""
    l3 = out.l3
    return ETH / ip_layer(l3.dst, l3.src) / TCP(sport=l3[TCP].dport, dport=l3[TCP].sport,
                                                flags=flags)


def only_connection(gw):
    conns = gw.gw.connections()
    assert len(conns) == 1, conns
    return conns[0]


def assert_expires(c, timeout, since):
    """C expires TIMEOUT seconds after its last packet, sent after SINCE (time.monotonic()):
    however slowly the test ran, no earlier than the time since then allows."""
    elapsed = time.monotonic() - since
    assert timeout - elapsed - 0.001 <= c.expires_in <= timeout, (c.expires_in, timeout, elapsed)


def expire_all(gw):
    """Move every connection's deadline into the past, as time would."""
    ct = gw.gw.maps["gw_ct"]
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    for k, v in list(ct.items()):
        if v.expires:
            v.expires = now - 1
            ct.update(k, v)


def test_tcp_states_choose_the_timeouts(gw):
    gw.add(service(VIP, BACKENDS[:1]))
    t = time.monotonic()
    out = gw(syn())
    c = only_connection(gw)
    assert c.state == "syn-sent"
    assert_expires(c, TIMEOUTS.syn, t)
    t = time.monotonic()
    assert gw(from_backend(out, "SA")).outcome == "reply"
    c = only_connection(gw)
    assert c.state == "established"
    assert_expires(c, TIMEOUTS.tcp, t)
    assert gw(ETH / ip_layer(CLIENT, VIP) / TCP(sport=40000, dport=80, flags="FA")).outcome \
        == "forward"
    assert only_connection(gw).state == "established"   # half closed
    t = time.monotonic()
    assert gw(from_backend(out, "FA")).outcome == "reply"
    c = only_connection(gw)
    assert c.state == "closing"
    assert_expires(c, TIMEOUTS.close, t)


def test_rst_closes(gw):
    gw.add(service(VIP, BACKENDS[:1]))
    out = gw(syn())
    gw(from_backend(out, "SA"))
    t = time.monotonic()
    gw(from_backend(out, "R"))
    c = only_connection(gw)
    assert c.state == "closing"
    assert_expires(c, TIMEOUTS.close, t)


def test_udp_lifetime(gw):
    gw.add(service(VIP, BACKENDS[:1], proto="udp"))
    t = time.monotonic()
    gw(ETH / IP(src=CLIENT, dst=VIP) / UDP(sport=5000, dport=80))
    c = only_connection(gw)
    assert c.state == "open"
    assert_expires(c, TIMEOUTS.other, t)


def test_syn_on_a_closed_connection_starts_a_new_one(gw):
    svc = gw.add(service(VIP, BACKENDS[:2]))
    out = gw(syn())
    first = out.l3.dst
    gw(from_backend(out, "SA"))
    gw(from_backend(out, "R"))
    # the backend it used stops taking new connections: the new SYN must go elsewhere
    used = next(b for b in svc.backends if str(b.address) == first)
    gw.gw.update_backend(svc.id, used.id, state="terminating")
    again = gw(syn())
    assert again.outcome == "new" and again.l3.dst != first
    assert only_connection(gw).state == "syn-sent"


def test_syn_on_an_open_connection_stays_with_it(gw):
    """A retransmitted SYN is not a new connection."""
    gw.add(service(VIP, BACKENDS))
    first = gw(syn())
    again = gw(syn())
    assert again.outcome == "forward" and again.l3.dst == first.l3.dst


def test_expired_connection_is_replaced_and_its_replies_left_alone(gw):
    gw.add(service(VIP, BACKENDS[:1]))
    out = gw(syn())
    gw(from_backend(out, "SA"))
    expire_all(gw)
    assert gw.gw.connections() == []
    late = from_backend(out, "A")
    res = gw(late)
    assert res.outcome == "pass_stale" and res.raw == bytes(late)
    assert gw(ETH / ip_layer(CLIENT, VIP) / TCP(sport=40000, dport=80, flags="A")).outcome \
        == "new"


def test_same_client_port_from_two_clients(gw):
    gw.add(service(VIP, BACKENDS[:1]))
    a = gw(syn(sport=40000, client="192.0.2.10"))
    b = gw(syn(sport=40000, client="192.0.2.11"))
    pa, pb = a.l3[TCP].sport, b.l3[TCP].sport
    assert pa == 40000 and pb != pa     # the first keeps its port, the second cannot
    assert 1024 <= pb <= 65535
    for out, client in ((a, "192.0.2.10"), (b, "192.0.2.11")):
        back = gw(from_backend(out, "SA"))
        assert back.outcome == "reply"
        assert (back.l3.dst, back.l3[TCP].dport) == (client, 40000)


def test_snat_ports_run_out_and_come_back(gw):
    gw.gw.configure(settings(timeouts=TIMEOUTS, port_min=20000, port_max=20009))
    gw.add(service(VIP, BACKENDS[:1]))
    outcomes, ports = [], []
    for i in range(14):
        out = gw(syn(client=f"192.0.2.{20 + i}"))
        outcomes.append(out.outcome)
        if out.outcome == "new":
            ports.append(out.l3[TCP].sport)
            assert out.l3.src == SNAT
    assert set(outcomes) == {"new", "drop_no_port"}
    assert len(ports) == len(set(ports)) <= 10
    assert all(20000 <= p <= 20009 for p in ports)
    assert len(ports) >= 6     # 32 random tries per connection find most free ports
    # ended connections give their ports back
    expire_all(gw)
    assert gw(syn(client="192.0.2.99")).outcome == "new"


@pytest.mark.parametrize("state", ["terminating", "quarantined"])
def test_non_active_backends_get_no_new_connections_but_keep_theirs(gw, state):
    svc = gw.add(service(VIP, BACKENDS[:2]))
    conns = {}
    for port in range(41000, 41040):
        out = gw(syn(sport=port))
        conns[port] = out
    used = {o.l3.dst for o in conns.values()}
    assert used == set(BACKENDS[:2])    # 40 connections reach both
    leaving = svc.backends[0]
    gw.gw.update_backend(svc.id, leaving.id, state=state)
    for port in range(42000, 42040):
        assert gw(syn(sport=port)).l3.dst == str(BACKENDS[1])
    for port, out in conns.items():      # open connections carry on, both ways
        more = gw(ETH / ip_layer(CLIENT, VIP) / TCP(sport=port, dport=80, flags="A"))
        assert more.outcome == "forward" and more.l3.dst == out.l3.dst
        assert gw(from_backend(out, "A")).outcome == "reply"


def test_removed_backend_and_service_keep_open_connections(gw):
    svc = gw.add(service(VIP, BACKENDS[:2]))
    out = gw(syn())
    backend = next(b for b in svc.backends if str(b.address) == out.l3.dst)
    gw.gw.delete_backend(svc.id, backend.id)
    assert gw(ETH / ip_layer(CLIENT, VIP) / TCP(sport=40000, dport=80, flags="A")).l3.dst \
        == out.l3.dst
    assert gw(syn(sport=40001)).l3.dst != out.l3.dst
    gw.gw.delete_service(svc.id)
    assert gw(from_backend(out, "A")).outcome == "reply"
    assert gw(ETH / ip_layer(CLIENT, VIP) / TCP(sport=40000, dport=80, flags="A")).outcome \
        == "forward"
    assert gw(syn(sport=40002)).outcome == "pass"     # no service: not the gateway's


def test_service_without_active_backends_drops_new_connections(gw):
    gw.add(service(VIP, BACKENDS[:2], states=["quarantined", "terminating"]))
    out = gw(syn())
    assert out.outcome == "drop_no_backend" and out.verdict == "dropped"
    empty = gw.add(service(VIP, [], port=81))
    assert empty.backends == ()
    assert gw(ETH / IP(src=CLIENT, dst=VIP) / TCP(dport=81, flags="S")).outcome == \
        "drop_no_backend"


def test_a_reset_gateway_is_as_loaded(gw, gateway_object, load_bpf):
    """What the session's one gateway object relies on between tests: after reset_maps(),
    every map is as a fresh load leaves it (no settings, services, tables, backends,
    connections, counts)."""
    gw.add(service(VIP, BACKENDS[:2]))
    gw(from_backend(gw(syn()), "SA"))
    assert gw.gw.connections() and gw.gw.statistics()["outcomes"]["reply"] == 1
    gateway_object.reset_maps()
    fresh = load_bpf("gateway")
    def contents(m):
        raw = lambda v: [raw(x) for x in v] if isinstance(v, list) else \
            v if isinstance(v, int) else bytes(v)
        return [(raw(k), raw(v)) for k, v in m.items()]

    for name, m in gateway_object.maps.items():
        assert contents(m) == contents(fresh.map(name)), name
    assert gw.gw.settings() is None and gw.gw.services() == []
    assert not any(gw.gw.statistics()["outcomes"].values())


def test_objects_that_load_fills_are_not_reset(load_bpf):
    obj = load_bpf("tests/verdict")           # tables[0] = &table_a, an initialiser
    with pytest.raises(UsageError, match=r"\.rel\.maps"):
        obj.reset_maps()
