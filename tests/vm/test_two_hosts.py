"""A lab across two hosts, each a kernel VM (lab vm): guest a is the client's host, guest b the
gateway's and the pods', which drives the lab. Each guest has two virtio NICs wired to the
other's (qemu.Nic: Unix datagram sockets, nothing of this machine's network in between): eth0
carries SSH and the VXLAN underlay, eth1 is the NIC a phys link moves into a node.

SSH is the production transport, as it is: guest b runs OpenSSH's `ssh lab-host-a` with
root's ~/.ssh/config (a tmpfs over the read-only /root, with a key, a known host key checked
strictly), and guest a runs dropbear (Debian's dropbear-bin from this machine's /usr: the
guests see this machine's files) as its SSH server, on a host key made here.

tests/vm/two_hosts_driver.py runs in guest b, in one Python process (every Python start costs
tens of seconds under emulation): scenarios/nat46.yaml on the split over vxlan, the split
over phys, and host a's side of `lab up` SIGKILLed half-way. It writes what it checked and
measured; this test asserts every check and prints the figures and times."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from lab import vm
from lab.traffic import rr
from lab.vm.qemu import Nic

from multihost.split import ROOT, split_nat46, write

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root, pytest.mark.long]
DRIVER = Path(__file__).with_name("two_hosts_driver.py")
TIMEOUT = 1800.0  # both guests, every phase, under emulation on a busy machine

# The guest's /etc is this machine's, read-only: an overlay makes it the guest's own (the lab
# writes /etc/netns/NODE/ for DNS64's clients), and root's home moves to the guest's tmpfs,
# where both SSH ends look (/root holds this machine's Python: it stays visible).
GUEST_ETC = """\
guest_etc() {
    # Under emulation on a busy machine the TSC is calibrated wrong at boot and the guest's
    # clock runs fast (three times, seen here): timeouts would fire early. HPET is QEMU's
    # clock, read from this machine's.
    echo hpet > /sys/devices/system/clocksource/clocksource0/current_clocksource
    modprobe overlay
    mkdir -p /run/etc/up /run/etc/work
    mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/etc/up,workdir=/run/etc/work /etc
    sed -i 's#^\\(root:[^:]*:[^:]*:[^:]*:[^:]*\\):[^:]*:#\\1:/run/home-root:#' /etc/passwd
    HOME=/run/home-root
    export HOME
    mkdir -m 0700 -p "$HOME/.ssh"
}
"""

HOST_A = """\
#!/bin/sh
# Guest a: the client's host. SSH server: dropbear, keys only.
set -eu
D=$1
guest_etc
cp "$D/id.pub" "$HOME/.ssh/authorized_keys"
chmod 0600 "$HOME/.ssh/authorized_keys"
modprobe vxlan
ip link set lo up
ip addr add 10.99.0.1/24 dev eth0
ip link set eth0 up
# The NIC a phys link takes: an MTU, an address and up, to see them come back.
ip link set eth1 mtu 1400
ip addr add 10.98.0.1/24 dev eth1
ip link set eth1 up
dropbear -F -E -s -r "$D/hostkey" -p 10.99.0.1:22 -P /run/dropbear.pid 2>"$D/dropbear.log" &
server=$!
# The SIGKILL phase: once lab kl's first namespace is made here, kill the process making
# it (the agent: its pid is in the journal's first record), half-way through its part.
(
    while [ ! -e /run/netns/kl-gw ]; do sleep 0.1; done
    pid=$(head -n 1 /run/lab/kl/journal.jsonl | sed 's/.*"pid":\\([0-9]*\\).*/\\1/')
    kill -KILL "$pid" && echo "$pid" > "$D/killed"
) &
while [ ! -e "$D/done" ]; do sleep 1; done
kill $server
"""

HOST_B = """\
#!/bin/sh
# Guest b: the gateway's and the pods' host, which drives the lab over SSH to lab-host-a.
set -eu
D=$1
guest_etc
cp "$D/ssh_config" "$HOME/.ssh/config"
modprobe vxlan
ip link set lo up
ip addr add 10.99.0.2/24 dev eth0
ip link set eth0 up
ip link set eth1 up
i=0
until ssh -o ConnectTimeout=5 lab-host-a true; do
    i=$((i + 1)); [ $i -lt 150 ] || { echo "lab-host-a never answered" >&2; exit 3; }
    sleep 1
done
exec "$2" "$3" "$D" 2>"$D/b.log"
"""

SSH_CONFIG = """\
Host lab-host-a
    HostName 10.99.0.1
    User root
    IdentityFile {d}/id
    IdentitiesOnly yes
    HostKeyAlias lab-host-a
    UserKnownHostsFile {d}/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
"""


def keys(d: Path) -> None:
    """The user's key (OpenSSH) and host a's host key (dropbear), known to b as lab-host-a."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")],
                   check=True)
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(d / "hostkey")], check=True,
                   capture_output=True)
    pub = subprocess.run(["dropbearkey", "-y", "-f", str(d / "hostkey")], check=True,
                         capture_output=True, text=True).stdout
    line = next(li for li in pub.splitlines() if li.startswith("ssh-ed25519 "))
    (d / "known_hosts").write_text("lab-host-a " + " ".join(line.split()[:2]) + "\n")
    (d / "ssh_config").write_text(SSH_CONFIG.format(d=d))


def topologies(d: Path) -> None:
    lab = f"{sys.executable} -m lab"
    for kind in ("vxlan", "phys"):
        write(split_nat46(kind, here="gateway", there="a", ssh="lab-host-a", lab=lab,
                          underlay=("10.99.0.1", "10.99.0.2"), nics=("eth1", "eth1")),
              d / f"nat46-{kind}.yaml")
    # The other way round, the gateway (its BPF, DNS64) and the pods on a: its part takes a
    # while to make.
    big = split_nat46("vxlan", here="client", there="a", ssh="lab-host-a", lab=lab,
                      underlay=("10.99.0.2", "10.99.0.1"))
    write(big, d / "nat46-vxlan-big.yaml")
    sc = yaml.safe_load((ROOT / "scenarios" / "nat46.yaml").read_text())
    sc["topology"] = str(d / "nat46-vxlan.yaml")
    # The translator at XDP needs a NIC driver with native XDP; a VXLAN device has none.
    sc["configs"] = {"tc": sc["configs"]["tc"]}
    sc["compare"] = []
    # ingress_source's client is a Python process on host a, whose start under emulation
    # outlasts the step's 15 s wait for it: the phys phase checks the translated source.
    sc["steps"] = [st for st in sc["steps"] if st.get("name") != "ingress_source"]
    (d / "nat46-vxlan-scenario.yaml").write_text(yaml.safe_dump(sc, sort_keys=False))


def test_nat46_split_across_two_vm_hosts(kernel, tmp_path):
    if not shutil.which("dropbear"):
        pytest.skip("dropbear is missing: install dropbear-bin (tools/debian-packages-vm.txt)")
    d = tmp_path / "hosts"
    d.mkdir()
    keys(d)
    topologies(d)
    rr.binary()  # built here: the guests see this checkout read-only
    for name, text in (("a.sh", HOST_A), ("b.sh", HOST_B)):
        head, _, body = text.partition("set -eu\n")
        (d / name).write_text(head + GUEST_ETC + "set -eu\n" + body)
        (d / name).chmod(0o755)
    wire = {n: str(d / f"{n}.sock") for n in ("a0", "a1", "b0", "b1")}
    nics = {"a": [Nic(wire["a0"], wire["b0"], "52:54:00:00:0a:00"),
                  Nic(wire["a1"], wire["b1"], "52:54:00:00:0a:01")],
            "b": [Nic(wire["b0"], wire["a0"], "52:54:00:00:0b:00"),
                  Nic(wire["b1"], wire["a1"], "52:54:00:00:0b:01")]}
    argv = {"a": [str(d / "a.sh"), str(d)],
            "b": [str(d / "b.sh"), str(d), sys.executable, str(DRIVER)]}
    runs: dict[str, object] = {}

    def boot(host: str) -> None:
        try:
            runs[host] = vm.run(argv[host], kernel=kernel.release, shares=[str(d)],
                                cwd=str(ROOT), nics=nics[host], hostname=f"lab-host-{host}",
                                timeout=TIMEOUT, text=True)
        except Exception as e:  # noqa: BLE001 - reported below
            runs[host] = e
        finally:
            if host == "b":
                (d / "done").touch()  # a serves until b is done, however b ended

    started = time.monotonic()
    threads = [threading.Thread(target=boot, args=(h,)) for h in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    a, b = runs["a"], runs["b"]
    for host, r in runs.items():
        assert not isinstance(r, Exception), f"guest {host}: {r}"
    log = (d / "b.log").read_text() if (d / "b.log").exists() else ""
    assert b.returncode == 0, f"guest b ({b.kernel}, {b.accel}):\n{b.stdout}\n{b.stderr}{log}"
    assert a.returncode == 0, f"guest a:\n{a.stdout}\n{a.stderr}"
    results = json.loads((d / "results.json").read_text())
    summary = {p: {"seconds": r.get("seconds"), **r["measured"]} for p, r in results.items()}
    print(f"\ntwo VM hosts ({b.kernel}, {b.accel}), {wall:.0f} s in all, boots "
          f"{a.boot_seconds:.1f} s / {b.boot_seconds:.1f} s:\n{json.dumps(summary, indent=2)}")
    for name in ("scenario", "phys", "sigkill"):
        r = results.get(name)
        assert r is not None, f"phase {name} did not run:\n{log[-3000:]}"
        assert "error" not in r, f"phase {name}:\n{r['error']}"
        failed = {k: v for k, v in r["checks"].items() if v is not True}
        assert not failed, f"phase {name}: {failed}\n{log[-3000:]}"
