"""Bad input through the `lab` command: exit 2, one line saying file:line:col and what is
wrong, and nothing created (no namespace, no record); and every command run without the
privilege it needs says so in one sentence, exit 2, with a lab up (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import netns, state
from lab.lab import Lab

from unprivileged import run_as_nobody

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]

GOOD = (ROOT / "topologies/nat46.yaml").read_text()
POD_TEMPLATE = GOOD.replace("      count: 4\n", "      count: 4\n      name: 'x/../../y{i}'\n")
LAUGHS = ("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    ).encode()

BAD_FILES = {
    # name: (file content, position, words)
    "name-newline": (GOOD.replace("name: nat46", 'name: "x\\n"').encode(), ":16:7:",
                     "is not a valid name here"),
    "pod-template": (POD_TEMPLATE.encode(), ":", "makes 'x/../../y0' for pod 0"),
    "deep": (b"nodes: " + b"[" * 5000 + b"]" * 5000, ":1:", "nested more than 64 deep"),
    "not-utf8": (GOOD.replace("role: client", "role: cli\udcffent").encode(
        "utf-8", "surrogateescape"), ":24:14:", "not UTF-8"),
    "merge-key": (GOOD.replace("  gw:\n", "  gw:\n    <<: {forwarding: true}\n").encode(),
                  ":28:5:", "merge keys"),
    "metric": (GOOD.replace("via: 192.0.2.1}", "via: 192.0.2.1, metric: 4294967296}").encode(),
               ":", "greater than the maximum of 4294967295"),
    "sysctl": (GOOD.replace("    forwarding: true\n    routes:\n      - {dst: \"fd00",
                            "    forwarding: true\n    sysctls: {net.ipv4.no_such: 1}\n"
                            "    routes:\n      - {dst: \"fd00", 1).encode(), ":",
               "no sysctl 'net.ipv4.no_such'"),
    "mtu": (GOOD.replace("ifname: eth0, addresses: [\"fd00:0:0:1::2/64\"]",
                         "ifname: eth0, mtu: 1200, addresses: [\"fd00:0:0:1::2/64\"]").encode(),
            ":", "below IPv6's minimum of 1280"),
    "multicast-mac": (GOOD.replace("ifname: eth0, addresses: [192.0.2.10/24",
                                   "ifname: eth0, mac: '01:00:5e:01:02:03', addresses: "
                                   "[192.0.2.10/24").encode(), ":", "multicast (group)"),
    "off-link": (GOOD.replace("via: 192.0.2.1}", "via: 192.0.3.1}").encode(), ":",
                 "next hop 192.0.3.1 is on none of node 'client''s subnets"),
    "billion-laughs": (LAUGHS, "", "expands to more than 100000 values"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_lab_up_refuses_bad_files_with_a_position_and_creates_nothing(tmp_path, lab_name,
                                                                      case):
    content, position, words = BAD_FILES[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    out = subprocess.run(LAB + ["up", str(path), "--name", lab_name], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"lab: {path}{position}") and words in out.stderr, out.stderr
    assert [n for n in netns.list_names() if n.startswith(f"{lab_name}-")] == []
    assert not state.LabRecord(lab_name).dir.exists()


def test_lab_run_check_refuses_a_huge_matrix_with_its_size(tmp_path):
    dims = "\n".join(f"  d{i}: [{', '.join(str(v) for v in range(10))}]" for i in range(12))
    (tmp_path / "s.yaml").write_text(f"topology: {ROOT / 'topologies/bigtcp.yaml'}\n"
                                     f"matrix:\n{dims}\nsteps:\n  - {{name: r, kind: reach}}\n")
    out = subprocess.run(LAB + ["run", "--check", str(tmp_path / "s.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "the matrix has 1,000,000,000,000 points" in out.stderr
    assert f"{tmp_path / 's.yaml'}:2:1:" in out.stderr


@pytest.fixture(scope="module")
def lab_up():
    """A lab, up, for commands that nobody tries on it."""
    name = f"nr{os.getpid() % 100000}"
    with Lab.from_file(ROOT / "topologies/bigtcp.yaml", name) as lab:
        yield lab


@pytest.fixture(scope="module")
def pcap(tmp_path_factory) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.utils import wrpcap
    path = tmp_path_factory.mktemp("pcap") / "in.pcap"
    wrpcap(str(path), [IP(src="192.0.2.10", dst="198.51.100.5") / TCP()])
    return path.read_bytes()


@pytest.mark.parametrize("args", [["status"], ["status", "{lab}"], ["down", "{lab}"],
                                  ["down", "--all"], ["exec", "--lab", "{lab}", "client", "--",
                                                      "true"],
                                  ["reach", "{lab}"], ["agent", "--lab", "{lab}"],
                                  ["service", "list", "--lab", "{lab}"],
                                  ["up", "topo.yaml"], ["bigtcp", "{lab}", "--count", "1"],
                                  ["xlate", "--prefix", "64:ff9b:1::/48", "--in", "in.pcap",
                                   "--out", "out.pcap"]],
                         ids=lambda a: " ".join(a[:2]))
def test_without_root_every_command_says_so_in_one_sentence(lab_up, pcap, args):
    files = {"topo.yaml": (ROOT / "topologies/bigtcp.yaml").read_bytes(), "in.pcap": pcap}
    out = run_as_nobody([a.format(lab=lab_up.name) for a in args], files=files)
    assert out.returncode == 2, out.stdout + out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, out.stderr
    assert line.startswith("lab: ") and "needs root" in line, line
    assert netns.exists(f"{lab_up.name}-client")           # and nothing was touched


def test_vm_list_without_root_is_one_sentence_or_a_list():
    out = run_as_nobody(["vm", "--list"])
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0 or (out.returncode == 2 and out.stderr.count("\n") == 1 and
                                   "needs root" in out.stderr), out.stderr
