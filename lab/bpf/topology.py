"""The BPF programs a topology file names, attached by `lab up` (the Builder calls
`attach_programs` once the devices exist).

Per node, each object is loaded once, so its programs on several devices of that node share its
maps; the maps are pinned under <lab pin dir>/<node>/<object>/ and the links under
<lab pin dir>/<node>/. The pin directory is journaled before anything is pinned, so `lab down`
(also after a crash) removes maps and links with it; tc filters go with the namespaces. Every
attachment is journaled too (BpfAttached), for `lab status` and for scenarios that
detach or replace a program.

Objects that need configuring (the translator's prefix, the gateway's tables) get it from the
datapath feature that owns them: the caller hands in an `ObjectSetup` per object name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.bpf import attach, bpffs
from lab.bpf.object import BpfObject
from lab.errors import LabError, UsageError
from lab.journal import BpfAttached, PinDir
from lab.state import LabRecord
from lab.topology import Topology

log = logging.getLogger("lab.bpf")

# (object, topology, node name) -> None
SetupFn = Callable[[BpfObject, Topology, str], None]


@dataclass(frozen=True)
class ObjectSetup:
    """How a node's instance of an object is prepared, by the feature that owns the object."""
    before_load: SetupFn | None = None   # e.g. set `const volatile` globals, map sizes
    after_load: SetupFn | None = None    # e.g. fill maps from the topology's datapath section


def node_pin_dir(pin_dir: Path | str, node: str) -> Path:
    return Path(pin_dir) / node


def maps_pin_dir(pin_dir: Path | str, node: str, object_name: str) -> Path:
    """Where a node's instance of OBJECT_NAME pins its maps (for agents that open them)."""
    return node_pin_dir(pin_dir, node) / object_name


def check(topo: Topology) -> None:
    """Refuse, before anything is built, programs that do not exist or do not fit their hook
    (objects are opened, not loaded: no kernel involved)."""
    opened: dict[str, BpfObject] = {}
    try:
        for node in topo.nodes.values():
            for iface in node.interfaces.values():
                for prog in iface.bpf:
                    where = f"node {node.name}, {iface.ifname}, hook {prog.hook}"
                    if prog.object not in opened:
                        try:
                            opened[prog.object] = BpfObject(prog.object)
                        except UsageError as e:
                            raise UsageError(f"{where}: {e}") from None
                    try:
                        p = opened[prog.object].program(prog.program)
                    except UsageError as e:
                        raise UsageError(f"{where}: {e}") from None
                    wants_xdp = prog.hook.startswith("xdp")
                    if p.is_xdp != wants_xdp:
                        raise UsageError(f"{where}: {prog.object}:{prog.program} is a "
                                         f"{p.type_name} program, the hook needs "
                                         f"{'an XDP' if wants_xdp else 'a tc (sched_cls)'} one")
    finally:
        for obj in opened.values():
            obj.close()


def attach_programs(topo: Topology, record: LabRecord, pin_dir: Path,
                    netns_of: Callable[[str], str],
                    setups: Mapping[str, ObjectSetup],
                    nodes: Collection[str] | None = None) -> list[attach.Attachment]:
    """Load and attach what TOPO names, each node's programs in its namespace (NETNS_OF a
    node name), objects prepared by SETUPS (by object name); return the attachments made.
    NODES: only theirs (a host's part of a lab that spans hosts)."""
    check(topo)
    record.append(PinDir(str(pin_dir)))
    bpffs.make_dir(pin_dir)
    done: list[attach.Attachment] = []
    for node in topo.nodes.values():
        if nodes is not None and node.name not in nodes:
            continue
        wanted = [(iface, prog) for iface in node.interfaces.values() for prog in iface.bpf]
        if not wanted:
            continue
        objects: dict[str, BpfObject] = {}
        try:
            for iface, prog in wanted:
                obj = objects.get(prog.object)
                if obj is None:
                    obj = objects[prog.object] = _load(prog.object, setups.get(prog.object),
                                                       topo, node.name, pin_dir)
                rec = attach.attach(obj.program(prog.program), prog.hook, iface.ifname,
                                    pin_dir=str(node_pin_dir(pin_dir, node.name)),
                                    pin_name=f"{iface.ifname}:{prog.hook}:{prog.program}",
                                    netns=netns_of(node.name))
                record.append(BpfAttached(node.name, prog.object, rec.to_dict()))
                done.append(rec)
        except LabError as e:
            kind = UsageError if isinstance(e, UsageError) else LabError
            raise kind(f"node {node.name}: {e}") from None
        finally:
            for obj in objects.values():  # pins, links and filters keep what is needed
                obj.close()
    return done


def _load(name: str, setup: ObjectSetup | None, topo: Topology, node: str,
          pin_dir: Path) -> BpfObject:
    obj = BpfObject(name, str(maps_pin_dir(pin_dir, node, name)))
    try:
        if setup and setup.before_load:
            setup.before_load(obj, topo, node)
        obj.load()
        if setup and setup.after_load:
            setup.after_load(obj, topo, node)
    except BaseException:
        obj.close()
        raise
    log.info("loaded %s for node %s (maps pinned under %s)", name, node,
             maps_pin_dir(pin_dir, node, name))
    return obj


def recorded_attachments(record: LabRecord) -> list[tuple[str, attach.Attachment]]:
    """(node, attachment) for each program `lab up` attached, from the lab's journal."""
    return [(r.node, attach.Attachment.from_dict(r.attachment)) for r in record.replay()
            if isinstance(r, BpfAttached)]
