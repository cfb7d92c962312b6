"""The state record: what each lab created, written before it is created.

Every lab has a directory under the run directory (/run/lab, or $LAB_RUN_DIR) holding
`journal.jsonl`, an append-only log of typed records (lab/journal.py). Before the lab creates a
kernel object or starts a process it appends what it is about to create (LabRecord.append, the
one writer), so `lab down` (also after `lab up` died from SIGKILL
half-way) removes exactly what the lab made and nothing else: namespaces by name and inode,
its own bpffs pin directory, the processes it started (pid and start time, so a reused pid is
never killed), the /etc/netns files it wrote, and the host NICs it moved into nodes (given
back with their settings before the namespaces go). /run is a tmpfs: the record and the objects
it describes disappear together at reboot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lab import netfilter, netns
from lab.errors import LabError, UsageError
from lab.journal import (EtcDir, HostPart, HostPartDown, LabCreated, LabUp, NamespaceCreated,
                         NamespaceNotOurs, NamespacePlanned, NetfilterTables, PhysMoved, PinDir,
                         ProcessExited, ProcessStarted, Record, VxlanCreated, decode, encode)
from lab.libc import libc
from lab.links import phys as phys_link
from lab.links import vxlan as vxlan_link

log = logging.getLogger("lab")

DEFAULT_RUN_DIR = "/run/lab"
BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "lab"


def run_dir() -> Path:
    return Path(os.environ.get("LAB_RUN_DIR", DEFAULT_RUN_DIR))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, a process identity."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_running(pid: int, start: int) -> bool:
    """Whether the process PID started at START still runs. A zombie does not: it has exited
    and waits for its parent (init, for processes of a `lab up` that has exited, which may
    take its time) to collect its status."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[19]) == start and fields[0] not in ("Z", "X")


@dataclass
class Inventory:
    """What a journal says a lab owns (later records refine earlier ones)."""

    name: str
    created: LabCreated | None = None
    namespaces: dict[str, int | None] = field(default_factory=dict)  # name -> inode
    abandoned: set[str] = field(default_factory=set)  # names found taken: not ours
    pin_dirs: list[str] = field(default_factory=list)
    processes: dict[int, ProcessStarted] = field(default_factory=dict)
    etc_dirs: list[str] = field(default_factory=list)
    netfilter: list[NetfilterTables] = field(default_factory=list)
    nics: list[PhysMoved] = field(default_factory=list)  # host NICs moved into nodes
    vxlans: list[VxlanCreated] = field(default_factory=list)
    hosts: dict[str, HostPart] = field(default_factory=dict)  # parts on other hosts, not down
    complete: bool = False


class LabRecord:
    """The record of one lab. Appends are unbuffered: each entry is on disk before we act."""

    def __init__(self, name: str, base: Path | None = None):
        self.name = name
        self.dir = (base or run_dir()) / name
        self.journal = self.dir / "journal.jsonl"

    # -- creation and locking -----------------------------------------------------------------

    def exists(self) -> bool:
        return self.journal.exists()

    def create(self, topology: str | None = None, instance: str = "") -> None:
        """Start a new record; a lab of this name must not be up already."""
        self.dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            self.dir.mkdir(mode=0o700)
        except FileExistsError:
            if self.exists():
                raise UsageError(f"a lab named '{self.name}' is already up (or was not torn "
                                 f"down): run `lab down {self.name}` first") from None
        self.append(LabCreated(self.name, os.getpid(), time.time(), topology, instance))

    def discard_unused(self) -> None:
        """Remove the directory locked() made for a lab that was refused before its journal
        began (under the lock)."""
        if not self.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise up/down/process changes of this lab between processes."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, *records: Record) -> None:
        data = "".join(json.dumps(encode(r), separators=(",", ":")) + "\n" for r in records)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------------

    def replay(self) -> list[Record]:
        """The journal's records in the order they were appended."""
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut short by a crash: nothing after it was acted on
            out.append(decode(data))
        return out

    def inventory(self) -> Inventory:
        inv = Inventory(self.name)
        for r in self.replay():
            match r:
                case LabCreated():
                    inv.created = r
                case NamespacePlanned(name=name):
                    inv.namespaces.setdefault(name, None)
                case NamespaceCreated(name=name, inode=inode):
                    inv.namespaces[name] = inode
                case NamespaceNotOurs(name=name):
                    inv.abandoned.add(name)
                case PinDir(path=path):
                    inv.pin_dirs.append(path)
                case ProcessStarted(pid=pid):
                    inv.processes[pid] = r
                case ProcessExited(pid=pid):
                    inv.processes.pop(pid, None)
                case EtcDir(path=path):
                    inv.etc_dirs.append(path)
                case NetfilterTables():
                    inv.netfilter.append(r)
                case PhysMoved():
                    inv.nics.append(r)
                case VxlanCreated():
                    inv.vxlans.append(r)
                case HostPart(host=host):
                    inv.hosts[host] = r
                case HostPartDown(host=host):
                    inv.hosts.pop(host, None)
                case LabUp():
                    inv.complete = True
        return inv

    # -- the state of a running lab -------------------------------------------------------------

    def save_topology(self, data: dict) -> None:
        tmp = self.dir / "topology.json.tmp"
        tmp.write_text(json.dumps(data))
        tmp.rename(self.dir / "topology.json")

    def load_topology(self) -> dict:
        try:
            return json.loads((self.dir / "topology.json").read_text())
        except FileNotFoundError:
            raise LabError(f"lab '{self.name}' has no saved topology (its `lab up` did not "
                           f"finish): run `lab down {self.name}`") from None

    # -- teardown -------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove everything the journal lists; return what was removed (for -v and tests)."""
        inv = self.inventory()
        removed: list[str] = []
        removed += stop_processes(inv.processes.values())
        for path in inv.pin_dirs:
            if remove_pin_dir(Path(path)):
                removed.append(f"pins {path}")
        removed += give_back_nics(inv)
        for v in inv.vxlans:
            if inv.namespaces.get(v.namespace) == _inode_or_none(v.namespace) is not None and \
                    v.namespace not in inv.abandoned and vxlan_link.remove(v):
                removed.append(f"vxlan {v.namespace}:{v.ifname}")
        by_inode = netns.pids_by_inode() if inv.namespaces else {}
        for name, ino in inv.namespaces.items():
            if name in inv.abandoned or not netns.exists(name):
                continue
            if not netns.mounted(name):
                # The mount point alone: a create or a remove cut short (SIGKILL) between
                # making the file and mounting on it, or between unmounting and unlinking.
                netns.remove(name)
                removed.append(f"netns {name} (its mount point)")
                continue
            if ino is not None and netns.inode(name) != ino:
                log.warning("namespace %s is not the one lab %s created; left alone", name,
                            self.name)
                continue
            for pid in by_inode.get(netns.inode(name), []):
                log.warning("process %d still runs in namespace %s (not started by the lab; "
                            "left alone)", pid, name)
            for tables in (t for t in inv.netfilter if t.netns == name):
                removed += [f"{g} in {name}" for g in
                            netfilter.remove_tables(name, tables.nft, tables.legacy)]
            netns.remove(name)
            removed.append(f"netns {name}")
        for path in inv.etc_dirs:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(f"etc {path}")
        for r in removed:
            log.info("removed %s", r)
        shutil.rmtree(self.dir, ignore_errors=True)
        unmount_bpffs_if_ours()
        return removed


def _inode_or_none(name: str) -> int | None:
    try:
        return netns.inode(name)
    except OSError:
        return None


def give_back_nics(inv: Inventory) -> list[str]:
    """Move the host NICs the lab took back to the host, as they were (lab/links/phys.py);
    before the namespaces go, or the kernel would hand them to the initial namespace bare."""
    out = []
    for nic in reversed(inv.nics):
        if nic.namespace in inv.abandoned:
            continue
        try:
            if phys_link.give_back(nic):
                out.append(f"NIC {nic.home} given back")
        except (LabError, OSError) as e:
            log.warning("NIC %s: %s", nic.home, e)
    return out


def stop_processes(procs: Iterable[ProcessStarted]) -> list[str]:
    """SIGTERM, then SIGKILL after a grace period, every recorded process still alive."""
    alive = []
    for p in procs:
        if process_running(p.pid, p.start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
                alive.append(p)
    deadline = time.monotonic() + 2.0
    for p in alive:
        while process_running(p.pid, p.start) and time.monotonic() < deadline:
            _reap(p.pid)
            time.sleep(0.02)
        if process_running(p.pid, p.start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        _reap(p.pid)
    return [f"process {p.pid} ({' '.join(p.argv)[:60]})" for p in alive]


def _reap(pid: int) -> None:
    # Our own children must be reaped or they linger as zombies with the same start time.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def remove_pin_dir(path: Path) -> bool:
    """Remove a lab's pin directory, which must lie under /sys/fs/bpf/lab/ on a bpffs."""
    if path.parent != PIN_ROOT or not path.is_dir():
        return False
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        PIN_ROOT.rmdir()  # only succeeds when no other lab has pins
    return True


# The lab mounts bpffs at /sys/fs/bpf when nothing is mounted there; it records that here and
# unmounts it again when the last lab is gone and nothing else has been pinned in it.
def _bpffs_marker() -> Path:
    return run_dir() / "bpffs-mounted-by-lab"


def note_bpffs_mounted() -> None:
    run_dir().mkdir(mode=0o755, parents=True, exist_ok=True)
    _bpffs_marker().touch()


def unmount_bpffs_if_ours() -> None:
    marker = _bpffs_marker()
    if not marker.exists() or labs():
        return
    with contextlib.suppress(OSError):
        # maps.debug and progs.debug are the kernel's own (bpf_preload), made at every mount.
        if not any(not p.name.endswith(".debug") for p in BPFFS.iterdir()):
            if libc.umount2(str(BPFFS).encode(), 0) == 0:
                marker.unlink()


def labs(base: Path | None = None) -> list[str]:
    """Names of the labs with a record (up, or left behind by a crash)."""
    base = base or run_dir()
    try:
        return sorted(d.name for d in base.iterdir() if (d / "journal.jsonl").exists())
    except FileNotFoundError:
        return []
