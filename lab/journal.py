"""The records of a lab's journal (lab/state.py): one dataclass per thing the lab does, written
before it does it, and read back by `lab down` (also after a crash) and `lab status`.

Each record is one JSON object per line, tagged by its kind under "t"; the tags and fields are
the journal's on-disk format, the same since the first journal, so a lab brought up by an
older version of the lab is torn down by a newer one. `encode()` and `decode()` are the only
code that sees the tags. A line with a tag this version does not know decodes to `Unknown`
and is ignored, never guessed at.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class LabCreated:
    """The journal's first record: which lab, made by which process, from which file."""
    tag: ClassVar[str] = "lab"
    name: str
    pid: int
    created: float                   # time.time()
    topology: str | None = None      # the topology file
    instance: str = ""               # marks the lab's processes (lab.lab.INSTANCE_ENV)


@dataclass(frozen=True)
class NamespacePlanned:
    """A namespace the lab is about to create (it may not exist yet)."""
    tag: ClassVar[str] = "netns"
    name: str


@dataclass(frozen=True)
class NamespaceCreated:
    """The namespace exists and is the lab's: its inode tells it from a later namesake."""
    tag: ClassVar[str] = "netns-created"
    name: str
    inode: int


@dataclass(frozen=True)
class NamespaceNotOurs:
    """The name was taken by someone else when the lab came to create it: never removed."""
    tag: ClassVar[str] = "netns-not-ours"
    name: str


@dataclass(frozen=True)
class PinDir:
    """The lab's bpffs directory (maps and links pinned under it)."""
    tag: ClassVar[str] = "pins"
    path: str


@dataclass(frozen=True)
class ProcessStarted:
    """A process the lab started: pid and start time together name it (pids are reused)."""
    tag: ClassVar[str] = "process"
    pid: int
    start: int | None                # field 22 of /proc/PID/stat
    argv: tuple[str, ...]
    node: str | None = None


@dataclass(frozen=True)
class ProcessExited:
    """A process of the lab that ended on its own: nothing to stop."""
    tag: ClassVar[str] = "process-exited"
    pid: int


@dataclass(frozen=True)
class EtcDir:
    """/etc/netns/<namespace>, written for a node (its hosts, resolv.conf)."""
    tag: ClassVar[str] = "etc"
    path: str


@dataclass(frozen=True)
class BpfAttached:
    """A program attached by the lab; ATTACHMENT is lab.bpf.attach.Attachment's fields,
    stored beside NODE and OBJECT in the same JSON object."""
    tag: ClassVar[str] = "bpf"
    node: str
    object: str
    attachment: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetfilterTables:
    """Netfilter tables the lab is about to write into a node's namespace (a legacy node's
    kube-proxy rules): NFT, nf_tables tables as "family name" (nftables mode, and iptables-
    nft's `ip6 nat`...); LEGACY, iptables-legacy's x_tables tables. `lab down` empties them
    (and the namespace's conntrack) before the namespace goes, so nothing of them outlives
    the lab even if something the lab did not start keeps the namespace."""
    tag: ClassVar[str] = "netfilter"
    netns: str
    node: str
    nft: tuple[str, ...] = ()
    legacy: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhysMoved:
    """A host NIC the lab is about to move into NAMESPACE as IFNAME, with everything needed
    to give it back as it was (lab/links/phys.py): written before the move."""
    tag: ClassVar[str] = "phys"
    namespace: str
    ifname: str                      # its name in the node
    home: str                        # its name on the host
    home_netns: int                  # inode of the host's namespace it goes back to
    ifindex: int                     # on the host
    mtu: int
    up: bool
    mac: str
    txqueuelen: int | None = None
    gso_max_size: int | None = None
    gro_max_size: int | None = None
    gso_ipv4_max_size: int | None = None
    gro_ipv4_max_size: int | None = None
    addresses: tuple[dict[str, Any], ...] = ()   # {address, prefixlen, broadcast, label}
    routes: tuple[dict[str, Any], ...] = ()      # its static routes: {dst, dst_len, via, ...}
    offloads: dict[str, bool] = field(default_factory=dict)  # its changeable features
    pci: str | None = None           # identity: the parent device on the PCI bus
    perm_mac: str | None = None      # identity: the permanent address


@dataclass(frozen=True)
class VxlanCreated:
    """A VXLAN device made in NAMESPACE: removed before the namespace, so its underlay
    socket is closed when `lab down` returns (not when the kernel gets to the namespace)."""
    tag: ClassVar[str] = "vxlan"
    namespace: str
    ifname: str


@dataclass(frozen=True)
class HostPart:
    """The part of the lab another host makes (lab/hosts/): written before asking it to, so
    `lab down` here tears that part down there too."""
    tag: ClassVar[str] = "host"
    host: str
    ssh: str
    lab: str                          # the lab command there
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostPartDown:
    """That host tore its part down."""
    tag: ClassVar[str] = "host-down"
    host: str


@dataclass(frozen=True)
class LabUp:
    """The lab is complete: everything before this record was made."""
    tag: ClassVar[str] = "up"


@dataclass(frozen=True)
class Unknown:
    """A record of a kind this version does not know (kept only to be ignored)."""
    tag: ClassVar[str] = "?"
    data: dict[str, Any]


Record = (LabCreated | NamespacePlanned | NamespaceCreated | NamespaceNotOurs | PinDir
          | ProcessStarted | ProcessExited | EtcDir | BpfAttached | NetfilterTables | PhysMoved
          | VxlanCreated | HostPart | HostPartDown | LabUp | Unknown)

KINDS: dict[str, type] = {k.tag: k for k in (
    LabCreated, NamespacePlanned, NamespaceCreated, NamespaceNotOurs, PinDir, ProcessStarted,
    ProcessExited, EtcDir, BpfAttached, NetfilterTables, PhysMoved, VxlanCreated, HostPart,
    HostPartDown, LabUp)}


def encode(record: Record) -> dict[str, Any]:
    """The record as the JSON object of its journal line."""
    if isinstance(record, Unknown):
        return dict(record.data)
    if isinstance(record, BpfAttached):
        return {"t": record.tag, "node": record.node, "object": record.object,
                **record.attachment}
    out: dict[str, Any] = {"t": record.tag}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def decode(data: dict[str, Any]) -> Record:
    """A journal line's JSON object as its record (Unknown for a kind this version lacks)."""
    kind = KINDS.get(data.get("t"))
    if kind is None:
        return Unknown(dict(data))
    body = {k: v for k, v in data.items() if k != "t"}
    if kind is BpfAttached:
        return BpfAttached(body.pop("node"), body.pop("object"), body)
    names = {f.name for f in dataclasses.fields(kind)}
    if kind is ProcessStarted:
        body["argv"] = tuple(body.get("argv", ()))
    if kind is NetfilterTables:
        body["nft"], body["legacy"] = tuple(body.get("nft", ())), tuple(body.get("legacy", ()))
    if kind is HostPart:
        body["nodes"] = tuple(body.get("nodes", ()))
    if kind is PhysMoved:
        body["addresses"] = tuple(body.get("addresses", ()))
        body["routes"] = tuple(body.get("routes", ()))
    return kind(**{k: v for k, v in body.items() if k in names})
