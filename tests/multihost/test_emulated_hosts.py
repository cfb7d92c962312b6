"""A lab across two hosts, emulated on this machine (conftest.py): the nat46 topology split,
the client on one host and the gateway with the pods on the other, joined by vxlan or by a
NIC of each host (phys); brought up from one host, which has the other make its part over
`ssh` (here tests/multihost/nsssh); traffic through the translator; torn down on both, NICs
given back as they were; refusals before anything is made on either host; a host lost
half-way (its agent SIGKILLed, then unreachable) and the driving `lab up` SIGKILLed, both
recovered by `lab down`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

from lab import netns
from lab.scenarios import results as results_mod
from multihost.split import ROOT, split_nat46, write

pytestmark = pytest.mark.root

POD0 = "203.0.113.16"  # node1-pod0 as the IPv4 client reaches it (EAM)
CLIENT_AS_SEEN = "64:ff9b:1::c000:20a"  # 192.0.2.10 in the translator's prefix (RFC 6052)


def topology(hosts, tmp_path: Path, kind: str, here: str = "client", name: str = "nat46",
             pods: int | None = None, **link) -> Path:
    doc = split_nat46(kind, here=here, there="b", ssh=hosts.b.ns if here == "client"
                      else hosts.a.ns, lab=f"{sys.executable} -m lab", name=name)
    if pods is not None:
        doc["nodes"]["node1"]["pods"]["count"] = pods
    next(li for li in doc["links"] if li.get("kind") == kind).update(link)
    return write(doc, tmp_path / f"{name}-{kind}.yaml")


def namespaces(lab: str) -> list[str]:
    return [n for n in netns.list_names() if n.startswith(f"{lab}-")]


def nothing_left(hosts, lab: str) -> None:
    assert namespaces(lab) == []
    assert hosts.a.labs() == [] and hosts.b.labs() == []
    assert not Path(f"/sys/fs/bpf/lab/{lab}").exists()
    assert not any(Path("/etc/netns").glob(f"{lab}-*"))


def nics_as_they_were(hosts) -> None:
    a, b = hosts.a.devices()["eth1"], hosts.b.devices()["eth1"]
    assert (a.mtu, a.up, [x["address"] for x in a.addresses if x["family"] == 2]) == \
        (1400, True, ["10.98.0.1"])
    with netns.entered(hosts.a.ns):
        from lab.links.host import HostView
        routes = HostView().routes
    assert any(r["dst"] == "10.97.0.0" and r["via"] == "10.98.0.254" and r["oif"] == a.index
               for r in routes)
    assert (b.up, [x for x in b.addresses if x["family"] == 2]) == (False, [])


def translated_connection(lab: str) -> str:
    """A TCP connection from the client to pod 0 through the translator: the source the pod
    sees."""
    srv = netns.socket_in(f"{lab}-node1-pod0", socket.AF_INET6, socket.SOCK_STREAM)
    cli = netns.socket_in(f"{lab}-client", socket.AF_INET, socket.SOCK_STREAM)
    with srv, cli:
        srv.bind(("::", 0))
        srv.listen(1)
        cli.settimeout(10)
        cli.connect((POD0, srv.getsockname()[1]))
        srv.settimeout(10)
        conn, peer = srv.accept()
        conn.close()
    return peer[0]


def ping(lab: str, node: str, address: str, count: int = 3) -> str:
    out = netns.run(f"{lab}-{node}", ["ping", "-c", str(count), "-i", "0.2", "-W", "2",
                                      address], check=False)
    return out.stdout


@pytest.mark.parametrize("kind", ["vxlan", "phys"])
def test_split_nat46_up_reach_down(hosts, tmp_path, lab_name, kind):
    # BIG TCP sizes and offloads apply to these ends as to a veth's
    path = topology(hosts, tmp_path, kind, gso_max_size=131072, gso_ipv4_max_size=131072,
                    offloads={"tso": "off"})
    up = hosts.a.lab("up", str(path), "--name", lab_name)
    assert up.returncode == 0, up.stderr
    try:
        assert hosts.a.labs() == [lab_name] and hosts.b.labs() == [lab_name]
        assert f"client       client   on local" in up.stdout
        assert f"gw           gateway  on b" in up.stdout
        client = netns.run(f"{lab_name}-client", ["ip", "-d", "-j", "link", "show", "eth0"])
        info = json.loads(client.stdout)[0]
        if kind == "vxlan":
            data = info["linkinfo"]["info_data"]
            assert (data["id"], data["remote"], data["local"], data["port"]) == \
                (4600, "10.99.0.2", "10.99.0.1", 4789)
            assert info["mtu"] == 1500 - 50  # the underlay's, less the encapsulation
        else:
            assert "eth1" not in hosts.a.devices()  # moved into the client, renamed eth0
            assert info["mtu"] == 1400 and info["operstate"] in ("UP", "UNKNOWN")
        with netns.entered(f"{lab_name}-client"):
            from lab.links.host import HostView
            settings = HostView().devices["eth0"].settings
        assert (settings["gso_max_size"], settings["gso_ipv4_max_size"]) == (131072, 131072)
        features = netns.run(f"{lab_name}-client", ["ethtool", "-k", "eth0"]).stdout
        tso = [line.strip() for line in features.splitlines() if "tcp-segmentation" in line]
        assert "tx-tcp-segmentation: off" in tso, tso
        assert " 0% packet loss" in ping(lab_name, "client", POD0)
        assert translated_connection(lab_name) == CLIENT_AS_SEEN
        status = hosts.a.lab("status", lab_name, "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert st["hosts"]["b"]["nodes"][:3] == ["gw", "node1", "server4"]
        assert st["nodes"]["gw"]["host"] == "b" and "eth-client" in \
            st["nodes"]["gw"]["interfaces"]
        where = hosts.a.lab("exec", "--lab", lab_name, "node1-pod0", "--", "ip", "-br", "addr")
        assert where.returncode == 0 and "fd00:10:244:1::10/128" in where.stdout
    finally:
        down = hosts.a.lab("down", lab_name)
    assert down.returncode == 0, down.stderr
    nothing_left(hosts, lab_name)
    nics_as_they_were(hosts)


def test_the_nat46_scenario_across_hosts(hosts, tmp_path, lab_name):
    """scenarios/nat46.yaml, its topology split over phys (the translator at XDP needs a NIC
    driver with native XDP: a VXLAN device has none), run from the gateway's host: every step
    where its nodes are, the configs one after the other (they would share the NICs), the
    results in the same schema, every assertion met."""
    split = topology(hosts, tmp_path, "phys", here="gateway")
    scenario = yaml.safe_load((ROOT / "scenarios" / "nat46.yaml").read_text())
    scenario["topology"] = str(split)
    path = tmp_path / "nat46-2hosts.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    out = tmp_path / "results"
    run = hosts.b.lab("run", str(path), "--quick", "--out", str(out), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = results_mod.load(out / "results.json")
    (sc,) = doc["scenarios"]
    assert sc["status"] == "passed", sc.get("reason")
    assert {c["name"] for c in sc["configs"]} == {"tc", "xdp"}
    metrics = {m["step"] + "." + m["metric"] for m in sc["metrics"]}
    assert {"ingress_tcp.throughput", "ingress_rr.p50", "ingress_ping.loss",
            "counters.translated"} <= metrics
    facts = [f for f in sc["facts"] if f["step"] == "ingress_source"]
    assert {f["value"] for f in facts if f["key"] == "seen_source"} == {CLIENT_AS_SEEN}
    for config in sc["configs"]:
        nothing_left(hosts, config["lab"])
    nics_as_they_were(hosts)


# -- bad input: refused before anything is made on either host -----------------------------------

def _refused(hosts, path: Path, lab: str) -> subprocess.CompletedProcess:
    r = hosts.a.lab("up", str(path), "--name", lab)
    assert r.returncode == 2, r.stdout + r.stderr
    assert namespaces(lab) == [] and hosts.a.labs() == [] and hosts.b.labs() == []
    return r


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_an_unreachable_host(hosts, tmp_path, lab_name):
    doc = split_nat46("vxlan", here="client", there="b", ssh="nosuchhost",
                      lab=f"{sys.executable} -m lab")
    path = write(doc, tmp_path / "t.yaml")
    r = _refused(hosts, path, lab_name)
    assert f"{path}:{_line_of(path, '  b:')}:3: host b (ssh nosuchhost) is unreachable or " \
           "runs no lab: ssh: Could not resolve hostname nosuchhost" in r.stderr


def test_a_host_without_the_lab(hosts, tmp_path, lab_name):
    doc = split_nat46("vxlan", here="client", there="b", ssh=hosts.b.ns, lab="/nonexistent/lab")
    path = write(doc, tmp_path / "t.yaml")
    r = _refused(hosts, path, lab_name)
    assert "`/nonexistent/lab` is not a command there" in r.stderr
    assert "install the lab on b, or set hosts.b.lab" in r.stderr


def test_a_host_running_another_version(hosts, tmp_path, lab_name):
    other = tmp_path / "other"
    shutil.copytree(ROOT / "lab", other / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "lab" / "version.py", "a") as f:
        f.write("# a later commit\n")
    # Without site (the checkout's editable install would win), its packages by hand.
    site = sysconfig.get_paths()["purelib"]
    doc = split_nat46("vxlan", here="client", there="b", ssh=hosts.b.ns,
                      lab=f"env -C {other} PYTHONPATH={other}:{site} {sys.executable} -S -m lab")
    path = write(doc, tmp_path / "t.yaml")
    r = _refused(hosts, path, lab_name)
    assert "host b (ssh " in r.stderr and "install the same version on every host" in r.stderr


def test_a_nic_missing_on_the_other_host(hosts, tmp_path, lab_name):
    doc = split_nat46("phys", here="client", there="b", ssh=hosts.b.ns,
                      lab=f"{sys.executable} -m lab", nics=("eth1", "enp9s0"))
    path = write(doc, tmp_path / "t.yaml")
    r = _refused(hosts, path, lab_name)
    line = _line_of(path, "phys: enp9s0")
    assert f"{path}:{line}:" in r.stderr and "this host has no NIC named enp9s0 (its " \
        "devices: " in r.stderr
    nics_as_they_were(hosts)


def test_an_mtu_the_other_hosts_underlay_cannot_carry(hosts, tmp_path, lab_name):
    doc = split_nat46("vxlan", here="client", there="b", ssh=hosts.b.ns,
                      lab=f"{sys.executable} -m lab")
    link = next(li for li in doc["links"] if li.get("kind") == "vxlan")
    link["ends"][1]["mtu"] = 1500
    path = write(doc, tmp_path / "t.yaml")
    r = _refused(hosts, path, lab_name)
    lines = path.read_text().splitlines()
    gw_end = next(i for i, li in enumerate(lines) if "ifname: eth-client" in li)
    line = next(i for i, li in enumerate(lines[gw_end:], gw_end + 1) if "mtu: 1500" in li)
    assert f"{path}:{line}:" in r.stderr
    assert "MTU 1500 cannot be carried over VXLAN: the underlay device ul0 has MTU 1500" \
        in r.stderr


# -- losing a host half-way, and the driving lab up killed --------------------------------------

def _agent_of(host) -> int | None:
    """The pid of the lab agent serving on HOST."""
    ino = netns.inode(host.ns)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != ino:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[-3:-1] == [b"lab", b"remote"]:
                    return int(pid)
        except OSError:
            continue
    return None


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_a_host_lost_half_way_leaves_the_others_clean_and_says_what_is_left(hosts, tmp_path,
                                                                            lab_name):
    path = topology(hosts, tmp_path, "phys", pods=64)
    up = subprocess.Popen(hosts.a.argv("up", str(path), "--name", lab_name), env=hosts.a.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: netns.exists(f"{lab_name}-gw"))
        agent = _agent_of(hosts.b)
        assert agent is not None
        os.kill(agent, signal.SIGKILL)  # host b's side of `lab up`, half-way
        (tmp_path / f"{hosts.b.ns}.unreachable").touch()  # and b stays out of reach
        out, err = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode != 0
    assert "host b (ssh " in err and f"its part of lab {lab_name} (nodes gw, node1, server4" \
        in err and "is still there" in err and f"run `lab down {lab_name}` again" in err
    # This host is clean (its NIC back), the journal keeps only host b's part.
    assert [n for n in namespaces(lab_name) if n == f"{lab_name}-client"] == []
    assert hosts.a.devices()["eth1"].mtu == 1400
    st = json.loads(hosts.a.lab("status", lab_name, "--json").stdout)
    assert list(st["hosts"]) == ["b"] and st["namespaces"] == 0
    assert namespaces(lab_name)  # what b made is still there
    # b is back: `lab down` here finishes the job there, from b's own journal.
    (tmp_path / f"{hosts.b.ns}.unreachable").unlink()
    down = hosts.a.lab("down", lab_name)
    assert down.returncode == 0, down.stderr
    nothing_left(hosts, lab_name)
    nics_as_they_were(hosts)


@pytest.mark.parametrize("kind", ["vxlan", "phys"])
def test_the_driving_lab_up_killed_half_way_is_recovered_by_lab_down(hosts, tmp_path,
                                                                    lab_name, kind):
    """SIGKILL of `lab up` here once host b has begun: the NIC here (phys) is already in the
    client; `lab down` gives it back, and has b tear its part down."""
    path = topology(hosts, tmp_path, kind, pods=64)
    up = subprocess.Popen(hosts.a.argv("up", str(path), "--name", lab_name), env=hosts.a.env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: netns.exists(f"{lab_name}-gw"))
    up.kill()
    up.wait()
    _wait_for(lambda: _agent_of(hosts.b) is None)  # b finishes what it was asked, then goes
    down = hosts.a.lab("down", lab_name)
    assert down.returncode == 0, down.stderr
    nothing_left(hosts, lab_name)
    nics_as_they_were(hosts)
