"""A lab: one topology brought up as network namespaces, and the handles to reach its nodes.

    from lab.datapath.registry import DATAPATHS
    with Lab.from_file("topologies/nat46.yaml", datapaths=DATAPATHS) as lab:
        lab.node("client").run(["ping", "-c1", "192.0.2.1"])

Leaving the `with` block (normally, by exception or Ctrl-C) tears the lab down. A lab brought up
by another process (`lab up`) is reached with `Lab.running(name)`.

A topology whose nodes span hosts (`hosts:`, docs/multihost.md) is the same Lab: `up()` has
each other host make its part there (lab/hosts/spread.py) while it makes this one's, and the
nodes on other hosts are RemoteNodeHandles, whose processes run there over the host's SSH
connection. A Lab with `host` set makes only that host's part (what a host's agent runs).

The datapath features a lab runs (lab/datapath/) are handed in as `LabHooks`, the narrow view
of them this module needs: what loading the topology needs, how each BPF object they own is
prepared when `up()` loads it, and what they start once the lab is built and stop before it
is torn down.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from lab import features, netns, offloads, procfs
from lab.build import Builder, add_link_settings, netns_name, place, read_link
from lab.bpf.topology import ObjectSetup
from lab.errors import InputError, LabError, UsageError
from lab.hosts import spread
from lab.hosts.process import RemoteProcess, wire_mode
from lab.hosts.session import HostSession
from lab.journal import EtcDir, LabUp, ProcessStarted
from lab.netlink import rtnl
from lab.netlink.batch import NetlinkError, RtnlBatch, open_socket
from lab.state import PIN_ROOT, LabRecord, process_start_time
from lab.topology import Interface, Node, Topology, TopologyHooks, check_lab_name
from lab.topology import load as load_topology
from lab.topology.model import LINK_SETTINGS, LOCAL_HOST

log = logging.getLogger("lab")

# Every process the lab starts carries this variable: teardown finds them by it even when the
# lab died between starting a process and recording its pid.
INSTANCE_ENV = "LAB_INSTANCE"


class LabHooks(TopologyHooks, Protocol):
    """What a lab needs of a datapath feature (lab.datapath.Datapath), beyond loading."""

    def object_setups(self) -> Mapping[str, ObjectSetup]:
        """How each BPF object the feature owns is prepared as `up()` loads it on a node."""

    def nodes(self, topo: Topology) -> Collection[str]:
        """The nodes start() and stop() act on: a lab across hosts runs them on the host of
        these nodes, which must be one (none: on the machine running `lab up`)."""

    def start(self, lab: Lab) -> None:
        """Once the lab is built: what runs beside the datapath (servers, userspace
        datapaths), started through NodeHandle.popen (journaled, so `lab down` stops them
        even from another process or after a crash)."""

    def stop(self, lab: Lab) -> None:
        """Before the lab that started it is torn down (the journal does the rest)."""


class NodeHandle:
    """A node of a running lab: its namespace, addresses, and processes run inside it."""

    def __init__(self, lab: Lab, model: Node):
        self.lab, self.model = lab, model
        self.name, self.role = model.name, model.role
        self.netns = netns_name(lab.name, model.name)

    def __repr__(self) -> str:
        return f"<node {self.name} ({self.role}) in netns {self.netns}>"

    @property
    def interfaces(self) -> dict[str, Interface]:
        return self.model.interfaces

    def addresses(self, version: int | None = None) -> list[str]:
        """This node's addresses (without prefix length), link-local ones left out."""
        return [str(a.ip) for a in self.model.addresses(version) if not a.ip.is_link_local]

    def address(self, version: int) -> str:
        addrs = self.addresses(version)
        if not addrs:
            raise LabError(f"node {self.name} has no IPv{version} address")
        return addrs[0]

    def entered(self):
        """Context manager: the calling thread inside this node's namespace."""
        return netns.entered(self.netns)

    def set_link(self, ifname: str, **settings: int) -> dict[str, int]:
        """Change device attributes of a running lab (mtu, txqueuelen, gso_max_size,
        gro_max_size, gso_ipv4_max_size, gro_ipv4_max_size) and return them as read back.

        The kernel applies new GSO limits to connections opened afterwards.
        """
        unknown = set(settings) - set(LINK_SETTINGS)
        if unknown:
            raise UsageError(f"unknown link setting(s): {', '.join(sorted(unknown))}")
        iface = self._iface(ifname)
        with self.entered():
            sock = open_socket()
        try:
            batch = RtnlBatch(sock, self.netns)
            add_link_settings(batch, iface.ifindex, iface.label, settings)
            try:
                batch.flush()
            except NetlinkError as e:
                raise LabError(str(e)) from None
            msg = read_link(sock, iface.ifindex)
        finally:
            sock.close()
        got = {k: msg.get_attr(rtnl.ifla(k)) for k in settings}
        wrong = {k: v for k, v in got.items() if v != settings[k]}
        if wrong:
            raise LabError(f"{iface.label}: the kernel did not apply "
                           + ", ".join(f"{k}={settings[k]} (it has {v})" for k, v in wrong.items()))
        return got

    def link_settings(self, ifname: str) -> dict[str, int]:
        """The device's MTU and GSO/GRO limits as the kernel has them now."""
        iface = self._iface(ifname)
        with self.entered():
            sock = open_socket()
        try:
            msg = read_link(sock, iface.ifindex)
        finally:
            sock.close()
        keys = LINK_SETTINGS + ("tso_max_size", "tso_max_segs")
        return {k: msg.get_attr(rtnl.ifla(k)) for k in keys}

    def set_offloads(self, ifname: str, wanted: dict[str, bool]) -> dict[str, bool]:
        """`ethtool -K` on a running lab; returns the kernel features as read back."""
        iface = self._iface(ifname)
        with self.entered():
            return offloads.apply(ifname, wanted, iface.label)

    # -- its processes, as its host sees them (lab/procfs.py) ----------------------------------

    @property
    def local(self) -> bool:
        """Is the node on this machine (else its processes run on its host: lab/hosts/)?"""
        return True

    def listening(self, pid: int, port: int) -> bool:
        """Does the node of process PID (one of this node's) listen on TCP PORT?"""
        return procfs.listening(pid, port)

    def cpus_after_exec(self, pid: int, program: str, timeout: float = 2.0
                        ) -> list[int] | None:
        return procfs.cpus_after_exec(pid, program, timeout)

    def cpus(self) -> list[int]:
        """The CPUs of this node's host (as far as the lab may use them)."""
        return procfs.cpus()

    def set_affinity(self, pid: int, cpus: list[int]) -> list[int]:
        return procfs.set_affinity(pid, cpus)

    def write_etc(self, filename: str, content: str) -> Path:
        """A file bound over /etc/FILENAME for processes in this node (as `ip netns exec`
        does with /etc/netns/NETNS/FILENAME), e.g. resolv.conf pointing at a DNS64 server."""
        if "/" in filename or filename.startswith("."):
            raise UsageError(f"bad /etc file name '{filename}'")
        directory = Path(netns.ETC_DIR) / self.netns
        if not directory.exists():
            self.lab.record.append(EtcDir(str(directory)))
            directory.mkdir(parents=True, mode=0o755)
        path = directory / filename
        path.write_text(content)
        return path

    def _iface(self, ifname: str) -> Interface:
        try:
            return self.interfaces[ifname]
        except KeyError:
            raise UsageError(f"node {self.name} has no interface '{ifname}' (it has: "
                             f"{', '.join(self.interfaces)})") from None

    def _env(self, env: dict | None) -> dict:
        base = dict(os.environ if env is None else env)
        base[INSTANCE_ENV] = self.lab.instance
        return base

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = 60,
            env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        """Run ARGV in this node to completion (output captured); raise on failure if CHECK."""
        try:
            return netns.run(self.netns, argv, check=check, timeout=timeout,
                             env=self._env(env), **kwargs)
        except subprocess.CalledProcessError as e:
            out = (e.stderr or e.stdout or "").strip().splitlines()[-5:]
            raise LabError(f"{self.name}: `{' '.join(argv)}` exited with {e.returncode}"
                           + (": " + " | ".join(out) if out else "")) from None
        except FileNotFoundError:
            raise UsageError(f"{self.name}: command not found: {argv[0]}") from None

    def popen(self, argv: Sequence[str], env: dict | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ARGV in this node in the background; the lab stops it at teardown."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            proc = netns.popen(self.netns, argv, env=self._env(env), start_new_session=True,
                               **kwargs)
        except FileNotFoundError:
            raise UsageError(f"{self.name}: command not found: {argv[0]}") from None
        self.lab.record.append(ProcessStarted(proc.pid, process_start_time(proc.pid),
                                              tuple(argv), self.name))
        log.info("started %s in %s (pid %d)", " ".join(argv), self.name, proc.pid)
        return proc


class RemoteNodeHandle(NodeHandle):
    """A node on another host: its processes run there, through that host's agent (over
    SSH), their output comes back here. What needs the node's namespace in this process
    (entered(), sockets, BPF maps) is not available: run such steps on the node's host."""

    def __init__(self, lab: Lab, model: Node):
        super().__init__(lab, model)
        self.host = lab.topology.hosts[model.host]

    def __repr__(self) -> str:
        return f"<node {self.name} ({self.role}) on host {self.host.name}>"

    @property
    def local(self) -> bool:
        return False

    @property
    def session(self) -> HostSession:
        return self.lab.session(self.host.name)

    def _call(self, op: str, **args):
        return self.session.call(op, lab=self.lab.name, node=self.name, timeout=120, **args)

    def entered(self):
        raise LabError(f"node {self.name} is on host {self.host.name}: what needs its "
                       "namespace in this process cannot reach it (run it on that host)")

    def _argv_there(self, argv: Sequence[str]) -> list[str]:
        """ARGV with the lab's own programs named as they are on the node's host: this
        Python is its Python, and a tool of the lab (lab-rr) its build of that tool."""
        argv = [str(a) for a in argv]
        if not argv:
            return argv
        hello = self.session.hello
        if argv[0] == sys.executable:
            argv[0] = hello.get("python", "python3")
        elif os.path.isabs(argv[0]) and os.path.basename(argv[0]) in hello.get("tools", {}):
            argv[0] = hello["tools"][os.path.basename(argv[0])]
        return argv

    def popen(self, argv: Sequence[str], env: dict | None = None, stdout=None, stderr=None,
              text: bool = False, stdin=None, **kwargs) -> RemoteProcess:
        """ARGV started in this node on its host; ENV: variables added to the agent's."""
        if stdin not in (None, subprocess.DEVNULL):
            raise UsageError(f"{self.name}: a process on another host gets no input")
        there = self._argv_there(argv)
        answer = self._call("spawn", argv=there, env=env or {}, stdout=wire_mode(stdout),
                            stderr="stdout" if stderr is subprocess.STDOUT
                            else wire_mode(stderr))
        log.info("started %s in %s on host %s (pid %d)", " ".join(there), self.name,
                 self.host.name, answer["pid"])
        return RemoteProcess(self.session, answer["proc"], answer["pid"], there, stdout,
                             stderr, text)

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = 60,
            env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
        text = kwargs.pop("text", True)
        proc = self.popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=text)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
        if check and proc.returncode != 0:
            tail = (err or out or "").strip().splitlines()[-5:]
            raise LabError(f"{self.name}: `{shlex.join(proc.args)}` exited with "
                           f"{proc.returncode}" + (": " + " | ".join(tail) if tail else ""))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def listening(self, pid: int, port: int) -> bool:
        return self._call("listening", pid=pid, port=port)

    def cpus_after_exec(self, pid: int, program: str, timeout: float = 2.0
                        ) -> list[int] | None:
        return self._call("cpus_after_exec", pid=pid, program=program, wait=timeout)

    def cpus(self) -> list[int]:
        return self.session.hello["cpus"]

    def set_affinity(self, pid: int, cpus: list[int]) -> list[int]:
        return self._call("set_affinity", pid=pid, cpus=list(cpus))

    def set_link(self, ifname: str, **settings: int) -> dict[str, int]:
        return self._call("set_link", ifname=ifname, settings=settings)

    def link_settings(self, ifname: str) -> dict[str, int]:
        return self._call("link_settings", ifname=ifname)

    def set_offloads(self, ifname: str, wanted: dict[str, bool]) -> dict[str, bool]:
        return self._call("set_offloads", ifname=ifname, wanted=wanted)

    def write_etc(self, filename: str, content: str) -> Path:
        return Path(self._call("write_etc", filename=filename, content=content))


class Lab:
    """A topology as a set of kernel objects; a context manager that tears down on exit."""

    def __init__(self, topology: Topology, name: str | None = None,
                 datapaths: Sequence[LabHooks] = (), host: str = LOCAL_HOST):
        if name is not None:
            topology.name = check_lab_name(name)
        self.topology = topology
        self.datapaths = tuple(datapaths)
        self.host = host  # the part of the topology this process makes (see lab/hosts/)
        self.name = topology.name
        self.record = LabRecord(self.name)
        self.instance = ""
        # Nodes on this host; and from the machine driving the lab (`local`), those on the
        # others too. A host's agent sees only its own part.
        self.nodes: dict[str, NodeHandle] = {}
        for n, node in topology.nodes.items():
            if node.host == host:
                self.nodes[n] = NodeHandle(self, node)
            elif host == LOCAL_HOST:
                self.nodes[n] = RemoteNodeHandle(self, node)
        self.sessions: dict[str, HostSession] = {}  # the hosts this lab has talked to

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None,
                  datapaths: Sequence[LabHooks] = ()) -> Lab:
        return cls(load_topology(path, name, datapaths), datapaths=datapaths)

    @classmethod
    def running(cls, name: str, datapaths: Sequence[LabHooks] = ()) -> Lab:
        """The lab NAME brought up earlier (by this or another process); its model is the
        one `up()` saved, derived parts included, so DATAPATHS are needed only to stop()."""
        record = LabRecord(check_lab_name(name))
        if not record.exists():
            raise UsageError(f"no lab named '{name}' is up (see `lab status`)")
        data = record.load_topology()
        lab = cls(Topology.from_json(data), datapaths=datapaths,
                  host=data.get("part", LOCAL_HOST))
        created = record.inventory().created
        lab.instance = created.instance if created else ""
        return lab

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def pin_dir(self) -> Path:
        """This lab's bpffs directory for pinned maps and links."""
        return PIN_ROOT / self.name

    @property
    def spans_hosts(self) -> bool:
        """Does this Lab drive parts on other hosts (it is `local`, they have nodes)?"""
        return self.host == LOCAL_HOST and bool(self.topology.remote_hosts())

    def session(self, host: str) -> HostSession:
        """The connection to HOST's agent, opened on first use (lab/hosts/): this process
        has one per host, whichever of its labs asks."""
        s = spread.session(self.topology.hosts[host], self.topology)
        self.sessions[host] = s
        return s

    def close_sessions(self) -> None:
        """Let the hosts' agents go now (they go anyway when this process exits)."""
        self.sessions.clear()
        spread.close_sessions()

    def _runs_here(self, d: LabHooks) -> bool:
        """Whether this part runs feature D's start() and stop()."""
        nodes = d.nodes(self.topology)
        if not nodes:
            return self.host == LOCAL_HOST
        return self.topology.nodes[next(iter(nodes))].host == self.host

    def _check_feature_hosts(self) -> None:
        for d in self.datapaths:
            hosts = sorted({self.topology.nodes[n].host for n in d.nodes(self.topology)})
            if len(hosts) > 1:
                raise place(InputError(
                    f"datapath feature {getattr(d, 'name', d)} acts on nodes on hosts "
                    f"{', '.join(hosts)}: its nodes ({', '.join(sorted(d.nodes(self.topology)))})"
                    " must be on one host", path=("datapath", getattr(d, "section", "") or "")),
                    self.topology)

    def up(self) -> Lab:
        features.require_privileges()
        self.instance = f"{self.name}/{os.getpid()}/{time.time_ns()}"
        started = time.monotonic()
        self._check_feature_hosts()
        if self.spans_hosts:
            spread.connect(self)  # unreachable hosts, other versions: refused here
        with self.record.locked():
            builder = Builder(self.topology, self.record, self.pin_dir, self.object_setups(),
                              host=self.host)
            try:
                if self.record.exists():
                    raise UsageError(f"a lab named '{self.name}' is already up (or was not "
                                     f"torn down): run `lab down {self.name}` first")
                if self.spans_hosts:
                    spread.preflight(self, builder.preflight)
                else:
                    builder.preflight()
            except BaseException:
                if not self.record.exists():
                    self.record.discard_unused()
                raise
            self.record.create(topology=self.topology.file, instance=self.instance)
            try:
                if self.spans_hosts:
                    spread.bring_up(self, lambda: builder.build(preflight=False))
                else:
                    builder.build(preflight=False)
                self.record.save_topology({**self.topology.to_json(), "part": self.host})
                for node in self.nodes.values():
                    if node.local and node.model.hosts:
                        node.write_etc("hosts", hosts_file(node.model.hosts))
                for d in self.datapaths:
                    if self._runs_here(d):
                        d.start(self)
                self.record.append(LabUp())
            except BaseException:
                log.info("lab %s: build failed, tearing down", self.name)
                self._teardown()
                raise
        log.info("lab %s up in %.2f s: %d nodes, %d links", self.name,
                 time.monotonic() - started, len(self.nodes), len(self.topology.links))
        return self

    def object_setups(self) -> dict[str, ObjectSetup]:
        """Per BPF object, the set-up of the feature that owns it."""
        out: dict[str, ObjectSetup] = {}
        for d in self.datapaths:
            for name, setup in d.object_setups().items():
                if name in out:
                    raise LabError(f"two datapath features set up BPF object '{name}'")
                out[name] = setup
        return out

    def down(self) -> list[str]:
        with self.record.locked():
            try:
                for d in reversed(self.datapaths):
                    if self._runs_here(d):
                        d.stop(self)
            finally:
                removed = self._teardown()
        return removed

    def _teardown(self) -> list[str]:
        return teardown_record(self.record, self.sessions)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # -- access ---------------------------------------------------------------------------------

    def node(self, name: str) -> NodeHandle:
        try:
            return self.nodes[name]
        except KeyError:
            if name in self.topology.nodes:
                raise UsageError(f"node '{name}' of lab '{self.name}' is on host "
                                 f"{self.topology.nodes[name].host}, not this one "
                                 f"({self.host})") from None
            raise UsageError(f"lab '{self.name}' has no node '{name}' (nodes: "
                             f"{', '.join(sorted(self.nodes))})") from None

    def pods(self, node: str | None = None) -> list[NodeHandle]:
        return [self.nodes[p.name] for p in self.topology.pods(node)]


def hosts_file(names: dict[str, str]) -> str:
    """A node's /etc/hosts: the loopback names, then its own."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    return "\n".join(lines + [f"{addr}\t{name}" for name, addr in names.items()]) + "\n"


def teardown_record(record: LabRecord,
                    sessions: Mapping[str, HostSession] | None = None) -> list[str]:
    """Remove what RECORD lists, including processes marked with the lab's instance variable,
    and the parts other hosts made (through SESSIONS where open). A host that cannot be
    reached keeps its part in the journal, and LabError says what is left where."""
    inv = record.inventory()
    removed, failed = [], {}
    if inv.hosts:
        removed, failed = spread.tear_down(record, inv, sessions or {})
    removed += _teardown_here(record, inv)
    if failed:
        # Only the parts left on other hosts stay in the journal: the next `lab down`.
        record.create(topology=inv.created.topology if inv.created else None,
                      instance=inv.created.instance if inv.created else "")
        record.append(*(inv.hosts[h] for h in failed))
        raise spread.left_behind(record, inv.hosts, failed)
    return removed


def _teardown_here(record: LabRecord, inv) -> list[str]:
    instance = inv.created.instance if inv.created else ""
    if instance:
        marker = f"{INSTANCE_ENV}={instance}".encode()
        extra = []
        by_inode = netns.pids_by_inode()
        for name in inv.namespaces:
            if not netns.exists(name) or name in inv.abandoned:
                continue
            for pid in by_inode.get(netns.inode(name), []):
                if pid not in inv.processes and _has_env(pid, marker):
                    extra.append(ProcessStarted(pid, process_start_time(pid), (f"pid {pid}",)))
        if extra:
            record.append(*extra)
    return record.teardown()


def _has_env(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False
