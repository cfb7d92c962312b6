"""BIG TCP on the client -- router -- server lab: the four GSO/GRO sizes set and read back up to
each device's limit, per family without disturbing the other, and the big packet counter on
the router and server links seeing packets above 64 KiB with BIG TCP on and none with it off,
over a real TCP transfer (no speed thresholds)."""

import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab import features, netns
from lab.bpf import pktcount
from lab.datapath import bigtcp
from lab.datapath.registry import DATAPATHS
from lab.errors import UsageError
from lab.lab import Lab

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies/bigtcp.yaml"
TRANSFER = 16 << 20
ALL_SIZES = ("gso_max_size", "gro_max_size", "gso_ipv4_max_size", "gro_ipv4_max_size")


@pytest.fixture(scope="module")
def big_tcp_caps():
    return features.big_tcp()


def _require(caps, family):
    cap = caps["ipv6" if family == 6 else "ipv4"]
    if not cap.ok:
        pytest.skip(cap.detail)


@pytest.fixture
def lab(lab_name, bpf_build):
    with Lab.from_file(TOPOLOGY, lab_name, datapaths=DATAPATHS) as running:
        yield running


def transfer(lab, family, nbytes=TRANSFER):
    """Send NBYTES from client to server on a fresh connection; check they all arrived."""
    client, server = lab.node("client"), lab.node("server")
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    port = 20000 + os.getpid() % 20000
    listener = netns.socket_in(server.netns, af, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server.address(family), port))
    listener.listen(1)
    listener.settimeout(30)
    received = []

    def sink():
        conn, _ = listener.accept()
        with conn:
            n = 0
            while chunk := conn.recv(1 << 20):
                n += len(chunk)
            received.append(n)

    t = threading.Thread(target=sink)
    t.start()
    try:
        with netns.socket_in(client.netns, af, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect((server.address(family), port))
            c.sendall(bytes(nbytes))
    finally:
        t.join(timeout=30)
        listener.close()
    assert received == [nbytes]


# -- sizes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", [6, 4])
def test_sizes_up_to_the_device_limit_read_back_and_above_it_refused(lab, family,
                                                                     big_tcp_caps):
    _require(big_tcp_caps, family)
    path = bigtcp.path(lab, "client", "router", "server")
    gso, gro = bigtcp.FAMILY_ATTRS[family]
    tso_max = lab.node("router").link_settings("eth-server")["tso_max_size"]
    for size in (131072, tso_max):
        got = bigtcp.enable(path, family, size)
        assert set(got) == {e.label for e in path.ends}
        assert all((s[gso], s[gro]) == (size, size) for s in got.values()), got
    # "max" is each device's own tso_max_size.
    got = bigtcp.enable(path, family, bigtcp.DEVICE_MAX)
    assert all(s[gso] == s["tso_max_size"] for s in got.values()), got
    before = {e.label: lab.node(e.node).link_settings(e.ifname) for e in path.ends}
    with pytest.raises(UsageError) as e:
        bigtcp.set_sizes(lab, path.ends, family, tso_max + 8)
    assert f"size {tso_max + 8} is above the device's tso_max_size {tso_max}" in str(e.value)
    assert "client:eth0" in str(e.value)  # the first device checked
    after = {e.label: lab.node(e.node).link_settings(e.ifname) for e in path.ends}
    assert after == before  # refused before anything changed
    assert all(s.big_tcp(family) for s in bigtcp.state(path))


def test_turning_ipv6_off_keeps_ipv4_big_tcp(lab, big_tcp_caps):
    """The kernel copies an IPv6 size of 64 KiB or less into the IPv4 size; the module puts
    the IPv4 sizes back, so the families are independent."""
    _require(big_tcp_caps, 4)
    path = bigtcp.path(lab, "client", "router", "server")
    bigtcp.enable(path, 4, 262144)
    got = bigtcp.disable(path, 6)
    for settings in got.values():
        assert (settings["gso_max_size"], settings["gro_max_size"]) == (65536, 65536)
        assert (settings["gso_ipv4_max_size"], settings["gro_ipv4_max_size"]) == (262144, 262144)
    states = bigtcp.state(path)
    assert not any(s.big_tcp(6) for s in states) and all(s.big_tcp(4) for s in states)
    # What the module works around: lowering the IPv6 size alone resets the IPv4 one.
    router = lab.node("router")
    router.set_link("eth-server", gso_max_size=185000)
    router.set_link("eth-server", gso_max_size=65536)
    assert router.link_settings("eth-server")["gso_ipv4_max_size"] == 65536


@pytest.mark.parametrize("bad", [0, -5, "huge", 1.5, True])
def test_bad_sizes_are_refused_with_the_device(lab, bad):
    path = bigtcp.path(lab, "client", "router", "server")
    with pytest.raises(UsageError, match="client:eth0: a GSO/GRO size is a positive number"):
        bigtcp.set_sizes(lab, path.ends, 6, bad)


def test_paths_and_families_are_checked(lab):
    with pytest.raises(UsageError, match="no link joins client and server"):
        bigtcp.path(lab, "client", "server")
    path = bigtcp.path(lab, "client", "router", "server")
    assert [e.label for e in path.ends_on("router", "server")] == [
        "router:eth-client", "router:eth-server", "server:eth0"]
    with pytest.raises(UsageError, match="BIG TCP is per address family 4 or 6"):
        bigtcp.enable(path, 5, 185000)


# -- the proof ------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", [6, 4])
def test_counter_sees_big_packets_with_big_tcp_on_and_none_off(lab, family, big_tcp_caps):
    _require(big_tcp_caps, family)
    path = bigtcp.path(lab, "client", "router", "server")
    data_path = [("router:eth-client", "ingress"), ("router:eth-server", "egress"),
                 ("server:eth0", "ingress")]
    with bigtcp.BigPacketCounter(lab, path.ends_on("router", "server")) as counter:
        bigtcp.enable(path, family, 185000)
        transfer(lab, family)
        on = counter.read()
        for end, direction in data_path:
            assert on.big_packets(family=family, end=end, direction=direction) > 0, on.table()
            # Nothing beyond the limit: 185000 bytes of IP packet plus the Ethernet header.
            assert 65536 < on.largest(family=family, end=end, direction=direction) <= 185014
        assert on.packets(family=family, end="server:eth0", direction="egress") > 0  # ACKs
        assert on.big_packets(family=family, end="server:eth0", direction="egress") == 0

        bigtcp.disable(path, family)
        counter.reset()
        transfer(lab, family)  # a fresh connection: the new limit applies to it
        off = counter.read()
        assert off.big_packets() == 0, off.table()
        assert off.packets(family=family, end="server:eth0", direction="ingress") > 0
        assert off.largest(family=family) < 65536 + 14
    assert not (lab.pin_dir / "router" / pktcount.DIR_OBJECT).exists()  # close() unpinned


def test_counter_records_how_this_kernel_marks_packets_above_64k(lab, big_tcp_caps, capsys):
    """IPv4: tot_len 0. IPv6: a hop-by-hop jumbo option (kernels up to 2025) or payload
    length 0 alone (2026 on); whichever it is, every big packet on the path is marked alike."""
    path = bigtcp.path(lab, "client", "router", "server")
    families = [f for f in (6, 4) if big_tcp_caps["ipv6" if f == 6 else "ipv4"].ok]
    if not families:
        pytest.skip(big_tcp_caps["ipv6"].detail)
    with bigtcp.BigPacketCounter(lab, path.ends_on("router", "server")) as counter:
        for family in families:
            transfer(lab, family)  # the topology has BIG TCP on at 185000
        reading = counter.read()
    for family in families:
        assert reading.big_packets(family=family) > 0, reading.table()
    if 4 in families:
        assert reading.lenfields(4) == [pktcount.LEN_ZERO]
    if 6 in families:
        assert reading.lenfields(6) in ([pktcount.LEN_JUMBO_HBH], [pktcount.LEN_ZERO])
        with capsys.disabled():
            print(f"\nkernel {platform.release()}: IPv6 packets above 64 KiB are marked "
                  f"{reading.lenfields(6)[0]}")


def test_counter_left_attached_is_removed_with_the_lab(lab_name, bpf_build):
    lab = Lab.from_file(TOPOLOGY, lab_name, datapaths=DATAPATHS).up()
    try:
        path = bigtcp.path(lab, "client", "router", "server")
        counter = bigtcp.BigPacketCounter(lab, path.ends_on("router", "server")).attach()
        pins = sorted(p.name for p in (lab.pin_dir / "router").iterdir())
        assert pins == ["eth-client:egress:pktcount_egress", "eth-client:ingress:pktcount_ingress",
                        "eth-server:egress:pktcount_egress", "eth-server:ingress:pktcount_ingress",
                        pktcount.DIR_OBJECT]
    finally:
        lab.down()  # without counter.close(), as after a crash
    assert not lab.pin_dir.exists()
    counter.close()  # late, and harmless


def _snmp6(node, counter):
    with node.entered(), open("/proc/net/snmp6") as f:
        return next(int(line.split()[1]) for line in f if line.split()[0] == counter)


def test_topology_mtu_headroom_is_what_hop_by_hop_jumbograms_need(lab, big_tcp_caps):
    """Why the end hosts' MTU is 8 bytes below the router's: with equal MTUs, a kernel that
    marks IPv6 super-packets with a hop-by-hop jumbo header counts it in the router's MTU check
    of every segment and answers with Packet Too Big; one that does not, forwards them."""
    _require(big_tcp_caps, 6)
    path = bigtcp.path(lab, "client", "router", "server")
    router = lab.node("router")
    with bigtcp.BigPacketCounter(lab, path.ends_on("router")) as counter:
        too_big = _snmp6(router, "Ip6InTooBigErrors")
        transfer(lab, 6, 1 << 20)
        assert _snmp6(router, "Ip6InTooBigErrors") == too_big  # the topology as it is
        marked = counter.read().lenfields(6)
        assert marked, "no IPv6 packet above 64 KiB crossed the router"
        for end in ("client", "server"):
            lab.node(end).set_link("eth0", mtu=1500)
        transfer(lab, 6, 1 << 20)  # slow where super-packets bounce, but it gets there
    refused = _snmp6(router, "Ip6InTooBigErrors") - too_big
    if marked == [pktcount.LEN_JUMBO_HBH]:
        assert refused > 0
    else:
        assert refused == 0


def test_cli_sets_shows_and_counts(lab, big_tcp_caps):
    _require(big_tcp_caps, 6)
    cmd = [sys.executable, "-m", "lab", "bigtcp", lab.name]
    out = subprocess.run([*cmd, "--ipv6", "max", "--ipv4", "off", "--json"],
                         capture_output=True, text=True, check=True)
    ends = json.loads(out.stdout)["ends"]
    assert [e["end"] for e in ends] == ["client:eth0", "router:eth-client",
                                        "router:eth-server", "server:eth0"]
    assert all(e["gso"]["6"] == e["tso_max_size"] and e["gso"]["4"] == 65536 for e in ends)
    counting = subprocess.Popen([*cmd, "--count", "5"], stdout=subprocess.PIPE, text=True)
    try:
        last_pin = lab.pin_dir / "server" / "eth0:egress:pktcount_egress"
        deadline = time.monotonic() + 5
        while not last_pin.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last_pin.exists(), "the counter was not attached"
        transfer(lab, 6)
    finally:
        text, _ = counting.communicate(timeout=30)
    assert counting.returncode == 0
    server_in = next(ln for ln in text.splitlines()
                     if ln.startswith("server:eth0") and ln.split()[1:3] == ["ingress", "6"])
    assert int(server_in.split()[4]) > 0, text   # the >64KiB column
    bad = subprocess.run([*cmd, "--ipv4", "lots"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--ipv4: 'lots' is not a size" in bad.stderr
