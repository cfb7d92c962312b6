"""How fast a lab is built: `lab bench build --pods N`.

Side by side in one run, for a node with N pods on veth: the lab's own up + down (batched
netlink, no fork per object) and the same topology built by a generated shell script of `ip`
commands, one process per object, as most network labs do it. Reported as medians of repeats
and their ratio; never asserted against a wall-clock threshold.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from ipaddress import ip_network

from lab.build import BASE_SYSCTLS, netns_name
from lab.journal import NamespacePlanned
from lab.lab import Lab
from lab.state import LabRecord
from lab.topology import Topology, parse


def pods_topology(pods: int, name: str) -> Topology:
    text = f"""
name: {name}
nodes:
  node:
    role: node
    pods: {{count: {pods}, ipv6: "fd00:10:244::10", device: veth}}
"""
    return parse(text, file="<bench build>")


def ip_script(topo: Topology) -> tuple[str, str]:
    """Shell scripts that build and remove TOPO with one `ip`/`sysctl` process per object."""
    up, down = ["set -e"], []
    for node in topo.nodes.values():
        ns = netns_name(topo.name, node.name)
        up.append(f"ip netns add {ns}")
        sysctls = {**BASE_SYSCTLS, **node.sysctls}
        up.append(f"ip netns exec {ns} sysctl -qw "
                  + " ".join(f"{k}='{v}'" for k, v in sysctls.items()))
        down.append(f"ip netns del {ns}")
    for link in topo.links:
        a, b = link.a, link.b
        na, nb = netns_name(topo.name, a.node), netns_name(topo.name, b.node)
        up.append(f"ip -n {na} link add {a.ifname} type veth peer name {b.ifname} netns {nb}")
    for node in topo.nodes.values():
        ns = netns_name(topo.name, node.name)
        up.append(f"ip -n {ns} link set lo up")
        for iface in node.interfaces.values():
            for addr in iface.addresses:
                up.append(f"ip -n {ns} addr add {addr} dev {iface.ifname} nodad")
            up.append(f"ip -n {ns} link set {iface.ifname} up")
        for r in node.routes:
            dst = ip_network(r.dst)
            via = f" via {r.via}" if r.via else ""
            dev = f" dev {r.dev}" if r.dev else ""
            up.append(f"ip -n {ns} -{dst.version} route add {dst}{via}{dev}")
    return "\n".join(up) + "\n", "\n".join(down) + "\n"


@dataclass
class BuildBench:
    pods: int
    repeats: int
    lab_seconds: list[float]
    ip_seconds: list[float]

    @property
    def lab_median(self) -> float:
        return statistics.median(self.lab_seconds)

    @property
    def ip_median(self) -> float:
        return statistics.median(self.ip_seconds)

    @property
    def speedup(self) -> float:
        return self.ip_median / self.lab_median

    def as_dict(self) -> dict:
        return {**asdict(self), "lab_median_s": self.lab_median, "ip_median_s": self.ip_median,
                "speedup": self.speedup, "unit": "s (up + down)"}


def time_lab(pods: int, name: str) -> float:
    lab = Lab(pods_topology(pods, name))
    start = time.perf_counter()
    lab.up()
    lab.down()
    return time.perf_counter() - start


def time_ip_script(pods: int, name: str) -> float:
    topo = pods_topology(pods, name)
    up, down = ip_script(topo)
    # The script's namespaces go into a record first, so `lab down --all` removes them even if
    # this process dies while the script runs.
    record = LabRecord(name)
    with record.locked():
        record.create(topology="<bench build: ip script>")
        record.append(*(NamespacePlanned(netns_name(name, n)) for n in topo.nodes))
        with tempfile.TemporaryDirectory() as tmp:
            up_path, down_path = os.path.join(tmp, "up.sh"), os.path.join(tmp, "down.sh")
            with open(up_path, "w") as f:
                f.write(up)
            with open(down_path, "w") as f:
                f.write(down)
            try:
                start = time.perf_counter()
                subprocess.run(["sh", up_path], check=True, capture_output=True, text=True)
                subprocess.run(["sh", down_path], check=True, capture_output=True, text=True)
                return time.perf_counter() - start
            except subprocess.CalledProcessError as e:
                raise RuntimeError(f"ip script failed: {e.stderr.strip()[-300:]}") from None
            finally:
                record.teardown()


def run(pods: int, repeats: int = 3) -> BuildBench:
    """Alternate the two builders REPEATS times each (so drift hits both alike)."""
    base = f"bench{os.getpid() % 100000}"
    lab_s, ip_s = [], []
    for i in range(repeats):
        lab_s.append(time_lab(pods, f"{base}l{i}"))
        ip_s.append(time_ip_script(pods, f"{base}i{i}"))
    return BuildBench(pods, repeats, lab_s, ip_s)
