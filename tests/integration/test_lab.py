"""The lab core in real namespaces: build, reach, read back, tear down (also after SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab import netns, state, topology
from lab.datapath.registry import DATAPATHS
from lab.lab import INSTANCE_ENV, Lab
from lab.netlink import rtnl
from lab.netlink.batch import open_socket, request

from sigint import with_sigint
from unprivileged import run_as_nobody

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]


def leftovers(name: str) -> list[str]:
    found = [f"netns {n}" for n in netns.list_names() if n.startswith(f"{name}-")]
    if state.LabRecord(name).dir.exists():
        found.append(f"record {state.LabRecord(name).dir}")
    if (state.PIN_ROOT / name).exists():
        found.append(f"pins {state.PIN_ROOT / name}")
    return found


def ping(node, addr: str) -> None:
    out = node.run(["ping", "-c", "1", "-W", "2", addr])
    assert " 0% packet loss" in out.stdout


def link_attrs(node, ifname: str) -> rtnl.LinkMessage:
    with node.entered():
        sock = open_socket()
    try:
        (msg,) = request(sock, rtnl.RTM_GETLINK,
                         rtnl.get_link(node.interfaces[ifname].ifindex), rtnl.LinkMessage)
        return msg
    finally:
        sock.close()


def test_nat46_reference_topology_up_reach_down(lab_name):
    with Lab.from_file(ROOT / "topologies/nat46.yaml", lab_name, datapaths=DATAPATHS) as lab:
        assert f"{lab_name}-gw" in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout
        client, gw, server = lab.node("client"), lab.node("gw"), lab.node("server4")
        pods = lab.pods("node1")
        assert len(pods) == 4
        ping(client, server.address(4))  # IPv4 routed by the gateway
        ping(pods[0], gw.address(6))  # pod -> node -> gateway
        ping(gw, pods[3].address(6))  # gateway -> node -> pod
        ping(pods[1], pods[2].address(6))  # pod to pod on one node
        assert pods[0].addresses(4) == []  # IPv6-only
        fwd = gw.run(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"])
        assert fwd.stdout.split() == ["1", "1"]
    assert leftovers(lab_name) == []


def test_bigtcp_sizes_and_offloads_read_back_from_the_kernel(lab_name):
    with Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name, datapaths=DATAPATHS) as lab:
        for node, ifname in (("client", "eth0"), ("router", "eth-client"),
                             ("router", "eth-server"), ("server", "eth0")):
            msg = link_attrs(lab.node(node), ifname)
            for attr in ("GSO_MAX_SIZE", "GRO_MAX_SIZE", "GSO_IPV4_MAX_SIZE",
                         "GRO_IPV4_MAX_SIZE"):
                assert msg.get_attr(f"IFLA_{attr}") == 185000, (node, ifname, attr)
            # end hosts 8 bytes below the router (see the topology file)
            assert msg.get_attr("IFLA_MTU") == (1500 if node == "router" else 1492)
        gro = lab.node("server").run(["ethtool", "-k", "eth0"]).stdout
        assert "generic-receive-offload: on" in gro
        ping(lab.node("client"), lab.node("server").address(6))
        ping(lab.node("client"), lab.node("server").address(4))


def test_two_labs_with_different_names_coexist(lab_name):
    with Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name + "a",
                       datapaths=DATAPATHS) as one, \
            Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name + "b",
                          datapaths=DATAPATHS) as two:
        ping(one.node("client"), one.node("server").address(4))
        ping(two.node("client"), two.node("server").address(4))
        one.down()
        assert leftovers(lab_name + "a") == []
        ping(two.node("client"), two.node("server").address(6))
    assert leftovers(lab_name + "b") == []


def test_processes_started_by_the_lab_are_stopped_and_others_left_alone(lab_name):
    lab = Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name, datapaths=DATAPATHS).up()
    try:
        tracked = lab.node("server").popen(["sleep", "300"])
        # As if the lab died between starting a process and recording it: only the marker.
        unrecorded = netns.popen(lab.node("router").netns, ["sleep", "300"],
                                 env={**os.environ, INSTANCE_ENV: lab.instance})
        foreign = netns.popen(lab.node("client").netns, ["sleep", "300"])
        lab.down()
        # (the lab reaps its own children, so Popen cannot see their exit status)
        for p in (tracked, unrecorded):
            p.wait(5)
            assert state.process_start_time(p.pid) is None
        assert foreign.poll() is None  # not the lab's: still running
    finally:
        for p in (tracked, unrecorded, foreign):
            p.kill()
            p.wait()
        lab.down() if lab.record.exists() else None
    assert leftovers(lab_name) == []


def test_existing_namespace_is_never_adopted_or_deleted(lab_name):
    netns.create(f"{lab_name}-router")
    try:
        out = subprocess.run(LAB + ["up", str(ROOT / "topologies/bigtcp.yaml"), "--name",
                                    lab_name], capture_output=True, text=True)
        assert out.returncode == 2
        assert f"{lab_name}-router already exists and was not made by this lab" in out.stderr
        assert netns.exists(f"{lab_name}-router")
        assert leftovers(lab_name) == [f"netns {lab_name}-router"]
    finally:
        netns.remove(f"{lab_name}-router")


def test_bad_topology_exits_2_with_position_and_creates_nothing(lab_name, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        nodes:
          a: {role: client}
          b: {role: pod}
        links:
          - ends:
              - {node: a, ifname: eth0}
              - {node: b, ifname: eth0, addresses: [10.0.0.2/24]}
        """))
    out = subprocess.run(LAB + ["up", str(bad), "--name", lab_name], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert f"{bad}:7:45: node 'b' has role 'pod', which is IPv6-only" in out.stderr
    assert leftovers(lab_name) == []


def test_failure_in_the_kernel_tears_down_what_was_built(lab_name, tmp_path):
    topo = tmp_path / "t.yaml"
    topo.write_text(textwrap.dedent("""\
        nodes:
          a:
            role: client
            routes: [{dst: 198.51.100.0/24, dev: eth0, src: 203.0.113.99}]
          b: {role: server}
        links:
          - ends: [{node: a, ifname: eth0, addresses: [192.0.2.2/24]}, {node: b, ifname: eth0}]
        """))
    # (a source address the node does not have: only the kernel says so, at the route)
    out = subprocess.run(LAB + ["up", str(topo), "--name", lab_name], capture_output=True,
                         text=True)
    assert out.returncode == 1 and "add route 198.51.100.0/24 dev eth0" in out.stderr, \
        out.stderr
    assert leftovers(lab_name) == []


def test_cli_up_status_exec_down(lab_name):
    topo = str(ROOT / "topologies/bigtcp.yaml")
    subprocess.run(LAB + ["up", topo, "--name", lab_name], check=True, capture_output=True)
    try:
        status = json.loads(subprocess.run(LAB + ["status", lab_name, "--json"], check=True,
                                           capture_output=True, text=True).stdout)
        eth0 = status["nodes"]["server"]["interfaces"]["eth0"]
        assert eth0["state"] == "UP" and "203.0.113.2/24" in eth0["addresses"]
        ok = subprocess.run(LAB + ["exec", "--lab", lab_name, "client", "--", "ping", "-c1",
                                   "-W2", "2001:db8:2::2"], capture_output=True)
        assert ok.returncode == 0
        fail = subprocess.run(LAB + ["exec", "--lab", lab_name, "client", "--", "sh", "-c",
                                     "exit 7"])
        assert fail.returncode == 7
    finally:
        subprocess.run(LAB + ["down", lab_name], check=True, capture_output=True)
    assert leftovers(lab_name) == []


def test_sigkill_during_up_then_down_all_leaves_nothing(lab_name, tmp_path):
    topo = tmp_path / "big.yaml"
    topo.write_text(f"nodes:\n  n:\n    role: node\n    pods: {{count: 400, ipv6: 'fd00::10'}}\n")
    proc = subprocess.Popen(LAB + ["up", str(topo), "--name", lab_name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = state.LabRecord(lab_name).journal
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once namespaces exist but the build is not done
        if journal.exists() and journal.read_text().count("netns-created") > 20:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    entries = journal.read_text()
    assert '"t":"up"' not in entries, "the build finished before it could be killed"
    assert any(n.startswith(f"{lab_name}-") for n in netns.list_names())
    subprocess.run(LAB + ["down", "--all"], check=True, capture_output=True)
    assert leftovers(lab_name) == []


@pytest.mark.parametrize("cut", ["create", "remove"])
def test_a_namespace_cut_short_by_sigkill_is_removed(lab_name, cut):
    """SIGKILL between making a namespace's mount point and mounting on it (lab up), or
    between unmounting and unlinking it (lab down), leaves the empty file alone: the next
    `lab down` removes it (found by the soak test)."""
    lab = Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name).up()
    ns = lab.node("client").netns
    path = Path(netns.path_of(ns))
    assert netns.mounted(ns)
    netns.remove(ns)
    if cut == "create":
        path.touch(mode=0)             # made, not mounted yet
    else:
        path.touch(mode=0o444)         # unmounted, not unlinked yet: as nsfs showed it
    assert not netns.mounted(ns)
    subprocess.run(LAB + ["down", lab_name], check=True, capture_output=True)
    assert not path.exists() and leftovers(lab_name) == []


def test_not_root_is_refused_with_one_sentence():
    # As nobody, wherever the checkout lives (under /root, in a 0700 directory): unprivileged.py
    topo = (ROOT / "topologies/bigtcp.yaml").read_text()
    out = run_as_nobody(["up", "bigtcp.yaml"], files={"bigtcp.yaml": topo})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("lab: the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to "
                                  "create network namespaces: run it as root (e.g. with sudo)")


def test_bench_build_compares_with_an_ip_script():
    from lab.benchmarks import build
    result = build.run(pods=5, repeats=1)
    assert len(result.lab_seconds) == len(result.ip_seconds) == 1
    assert result.speedup > 0
    assert not [n for n in netns.list_names() if n.startswith("bench")]


def test_doctor_reports_each_capability_with_a_reason():
    out = subprocess.run(LAB + ["doctor", "--json"], capture_output=True, text=True)
    assert out.returncode == 0
    caps = {c["name"]: c for c in json.loads(out.stdout)["capabilities"]}
    assert caps["privileges"]["ok"] and caps["veth"]["ok"]
    from lab import features
    if features.config_option("CONFIG_NETKIT") in (None, "n"):
        assert not caps["netkit"]["ok"] and "CONFIG_NETKIT" in caps["netkit"]["detail"]
    ipv4 = caps["big_tcp_ipv4"]
    assert ipv4["ok"] == (features.big_tcp()["ipv4"].ok)
    assert all(c["detail"] for c in caps.values())


def test_runtime_link_changes_order_ipv4_sizes_after_ipv6(lab_name):
    with Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name, datapaths=DATAPATHS) as lab:
        router = lab.node("router")
        # One call that lowers the IPv6 size to 64 KB and raises the IPv4 one: the kernel
        # resets the IPv4 size when gso_max_size <= 64 KB, so the order matters.
        got = router.set_link("eth-server", gso_max_size=65536, gso_ipv4_max_size=262144)
        assert got == {"gso_max_size": 65536, "gso_ipv4_max_size": 262144}
        now = router.link_settings("eth-server")
        assert now["gso_ipv4_max_size"] == 262144 and now["tso_max_size"] >= 262144
        with pytest.raises(Exception, match="eth-server"):
            router.set_link("eth-server", gso_max_size=now["tso_max_size"] + 8)
        assert router.set_offloads("eth-server", {"tso": False}) == {
            "tx-tcp-segmentation": False, "tx-tcp-ecn-segmentation": False,
            "tx-tcp-mangleid-segmentation": False, "tx-tcp6-segmentation": False}


@pytest.mark.parametrize("qlen", [0, 5000, 4294967295])
def test_txqueuelen_is_applied_across_its_range(lab_name, qlen):
    text = (ROOT / "topologies/bigtcp.yaml").read_text().replace(
        "ifname: eth-server, addresses:", f"ifname: eth-server, txqueuelen: {qlen}, addresses:")
    assert f"txqueuelen: {qlen}" in text
    with Lab(topology.parse(text, lab_name)) as lab:       # read back by the builder
        router = lab.node("router")
        assert router.link_settings("eth-server")["txqueuelen"] == qlen
        assert router.set_link("eth-server", txqueuelen=1000) == {"txqueuelen": 1000}


def test_a_lab_the_neighbour_table_cannot_hold_is_refused_with_the_reason(lab_name, tmp_path):
    """Each IPv6 device makes a neighbour entry as it comes up (its MLD report) and the
    kernel's table is one for all namespaces (gc_thresh3): 4096 pods overflowed it."""
    limit = int(Path("/proc/sys/net/ipv6/neigh/default/gc_thresh3").read_text())
    if limit >= 2 * 4096:
        pytest.skip(f"this machine's neighbour table holds {limit}: 4096 pods fit")
    pods = min(4096, limit)                          # 2 devices each: twice the limit
    topo = tmp_path / "many.yaml"
    topo.write_text(f"nodes:\n  n:\n    role: node\n    pods: {{count: {pods}, "
                    "ipv6: 'fd00::10'}\n")
    out = subprocess.run(LAB + ["up", str(topo), "--name", lab_name], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert f"({pods} pods) make about {2 * pods} IPv6 neighbour entries" in out.stderr
    assert f"holds {limit} for all namespaces" in out.stderr and "gc_thresh3=" in out.stderr
    assert leftovers(lab_name) == []


def test_pods_make_one_neighbour_entry_each_side(lab_name):
    """Pods solicit no routers (their route is written in): one entry each side of a pod's
    pair, for its MLD report, instead of two."""
    text = "nodes:\n  n:\n    role: node\n    pods: {count: 8, ipv6: 'fd00::10'}\n"
    with Lab(topology.parse(text, lab_name)) as lab:
        time.sleep(3)                                # RS would have gone out by now
        node = lab.node("n")
        entries = node.run(["ip", "-6", "neigh", "show", "nud", "all"]).stdout.splitlines()
        assert not [e for e in entries if e.startswith("fe80:")], entries
        pod = lab.pods("n")[0]
        entries = pod.run(["ip", "-6", "neigh", "show", "nud", "all"]).stdout.splitlines()
        assert not [e for e in entries if e.startswith("ff02::2 ")], entries


def test_etc_files_are_seen_by_lab_processes_and_removed(lab_name):
    with Lab.from_file(ROOT / "topologies/bigtcp.yaml", lab_name, datapaths=DATAPATHS) as lab:
        client = lab.node("client")
        path = client.write_etc("resolv.conf", "nameserver 2001:db8:2::2\n")
        assert "2001:db8:2::2" in client.run(["cat", "/etc/resolv.conf"]).stdout
        assert "2001:db8:2::2" not in Path("/etc/resolv.conf").read_text()
    assert not path.exists() and not path.parent.exists()


def start_big_up(lab_name, tmp_path, sigint: str) -> subprocess.Popen:
    """`lab up` of 400 pods, returned once it has made a few namespaces (and is not done)."""
    topo = tmp_path / "big.yaml"
    topo.write_text(f"nodes:\n  n:\n    role: node\n    pods: {{count: 400, ipv6: 'fd00::10'}}\n")
    proc = subprocess.Popen(with_sigint(sigint, LAB + ["up", str(topo), "--name", lab_name]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = state.LabRecord(lab_name).journal
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count("netns-created") > 20:
            break
        time.sleep(0.005)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_up_tears_down_by_itself(lab_name, tmp_path, sig):
    # SIGINT at its default action, as from a terminal, whatever this test inherited.
    proc = start_big_up(lab_name, tmp_path, "default")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert leftovers(lab_name) == []


def test_inherited_ignored_sigint_is_honoured_and_sigterm_still_tears_down(lab_name, tmp_path):
    """Started with SIGINT ignored (a background job of a non-interactive shell), lab keeps
    ignoring it, as Unix tools do; SIGTERM is how to stop it, and tears the lab down."""
    proc = start_big_up(lab_name, tmp_path, "ignore")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    try:
        assert proc.returncode == 0, err
        assert len(Lab.running(lab_name).pods("n")) == 400      # it finished: the lab is up
    finally:
        subprocess.run(LAB + ["down", lab_name], check=True, capture_output=True)
    assert leftovers(lab_name) == []
    proc = start_big_up(lab_name, tmp_path, "ignore")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert leftovers(lab_name) == []
