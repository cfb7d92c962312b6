"""Soak: 100 `lab up` / `lab down` cycles of topologies/nat46.yaml (namespaces, veths, the
translator's BPF programs and pins, two unbound processes, /etc/netns files), with `lab up`
SIGKILLed at a random moment in about half of them and `lab down` in some; after each cycle
and at the end nothing of the lab's is left: no namespace, link, pin, process, netfilter
rule or conntrack entry, /etc/netns entry or record.

Each `lab up` and `lab down` runs lab.commands.main in a child forked from this process, which
spares the 1 to 4 s of interpreter start-up and imports per command on a loaded 2-core
machine; every tenth cycle runs the real `lab` command instead. The seed is printed;
LAB_SOAK_SEED=N replays a run.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from lab import netns, state
from lab.datapath.registry import DATAPATHS
from lab.lab import INSTANCE_ENV
from lab.topology import load

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.long]
ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "topologies/nat46.yaml"
LAB = [sys.executable, "-m", "lab"]
CYCLES = int(os.environ.get("LAB_SOAK_CYCLES", "100"))
KILLED = signal.SIGKILL
NUL = b"\0"


def start(args: list[str], real: bool) -> int:
    """The pid of `lab ARGS`, a child of this process: the real command (exec), or
    lab.commands.main run in the forked child."""
    pid = os.fork()
    if pid == 0:                                        # the child: never returns
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            signal.signal(signal.SIGINT, signal.default_int_handler)    # as lab has it
            if real:
                os.execv(sys.executable, LAB + args)
            from lab.commands import main
            code = main(args)
        finally:
            os._exit(code)
    return pid


def finish(pid: int, kill_after: float | None) -> int | None:
    """Wait for PID, SIGKILLing it after KILL_AFTER seconds if it still runs then; its exit
    code, or None if it was killed."""
    deadline = None if kill_after is None else time.monotonic() + kill_after
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, KILLED)
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == KILLED
        return None
    return os.WEXITSTATUS(status)


class Traces:
    """What a lab of NAME could leave behind, looked for everywhere it could be."""

    def __init__(self, name: str):
        self.name = name
        topo = load(TOPOLOGY, datapaths=DATAPATHS)
        self.ifnames = {i for n in topo.nodes.values() for i in n.interfaces}
        self.addresses = ("192.0.2.", "198.51.100.", "203.0.113.", "64:ff9b:1:",
                          "fd00:0:0:1:", "fd00:10:244:1:")

    def namespaces(self) -> list[str]:
        return [n for n in netns.list_names() if n.startswith(f"{self.name}-")]

    def root_links(self) -> set[str]:
        with IPRoute() as ipr:
            return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

    def netfilter(self) -> set[str]:
        """Root-namespace rules (nftables, iptables, ip6tables) and conntrack entries that
        name the lab or the topology's addresses."""
        lines = set()
        for cmd in (["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"]):
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
            lines |= {f"{cmd[0]}: {ln}" for ln in out.splitlines()
                      if self.name in ln or any(a in ln for a in self.addresses)}
        from pyroute2 import Conntrack
        with Conntrack() as ct:
            for entry in ct.dump_entries():
                text = str(entry)
                if any(a in text for a in self.addresses):
                    lines.add(f"conntrack: {text}")
        return lines

    def processes(self) -> list[str]:
        """Live processes started by the lab (its instance marker, or its run directory)."""
        marker = f"{INSTANCE_ENV}={self.name}/".encode()
        run_dir = str(state.LabRecord(self.name).dir).encode()
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if marker in env or run_dir in cmdline:
                found.append(f"{pid} {cmdline.replace(NUL, b' ').decode(errors='replace')}")
        return found

    def files(self) -> list[str]:
        out = [str(p) for p in Path("/etc/netns").glob(f"{self.name}-*")]
        out += [str(p) for p in (state.PIN_ROOT / self.name, state.LabRecord(self.name).dir)
                if p.exists()]
        return out


def test_soak_up_down_with_random_sigkills():
    seed = int(os.environ.get("LAB_SOAK_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    name = f"soak{os.getpid() % 10000}"
    traces = Traces(name)
    links_before, netfilter_before = traces.root_links(), traces.netfilter()
    up_times: list[float] = []
    down_times: list[float] = []
    kills = {"up": 0, "down": 0}
    started = time.monotonic()
    for cycle in range(CYCLES):
        real = cycle % 10 == 9
        where = f"cycle {cycle} (seed {seed})"
        # Kill `lab up` at a moment uniform over how long it takes, once that is known.
        kill_up = bool(up_times) and rng.random() < 0.5
        t0 = time.monotonic()
        code = finish(start(["up", str(TOPOLOGY), "--name", name], real),
                      rng.uniform(0, 1.2 * statistics.median(up_times)) if kill_up else None)
        if code is None:
            kills["up"] += 1
        else:
            assert code == 0, f"{where}: lab up exited {code}"
            if not real:
                up_times.append(time.monotonic() - t0)
            assert len(traces.namespaces()) == 8, where
            if cycle == 0:                  # the lookouts see a lab that is up
                assert len(traces.processes()) == 2, traces.processes()     # unbound x2
                assert len(traces.files()) >= 3, traces.files()
        if down_times and rng.random() < 0.2 and state.LabRecord(name).exists():
            if finish(start(["down", name], real),
                      rng.uniform(0, 1.2 * statistics.median(down_times))) is None:
                kills["down"] += 1
        t0 = time.monotonic()
        code = finish(start(["down", "--all"], real), None)
        assert code == 0, f"{where}: lab down --all exited {code}"
        if not real:
            down_times.append(time.monotonic() - t0)
        assert traces.namespaces() == [] and traces.files() == [], where
    elapsed = time.monotonic() - started
    print(f"soak: {CYCLES} cycles in {elapsed:.0f} s (seed {seed}); lab up SIGKILLed "
          f"{kills['up']} times, lab down {kills['down']}; median up "
          f"{statistics.median(up_times):.2f} s, down {statistics.median(down_times):.2f} s")
    if CYCLES == 100:                                       # the dice were rolled fairly
        assert kills["up"] >= 30 and kills["down"] >= 5
    # and at the end, everywhere:
    assert traces.namespaces() == []
    assert traces.files() == []
    assert traces.processes() == []
    assert (traces.root_links() - links_before) & traces.ifnames == set()
    assert traces.netfilter() - netfilter_before == set()
    assert not any(n.startswith(f"{name}-") for n in os.listdir("/run/netns"))
