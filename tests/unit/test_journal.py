"""The lab's journal (lab/journal.py, lab/state.py): typed records on disk as JSON lines, the
one format `lab down` reads, including journals written by earlier versions of the lab."""

import json
import shutil
from pathlib import Path

import pytest

from lab import journal
from lab.bpf.topology import recorded_attachments
from lab.journal import (BpfAttached, EtcDir, LabCreated, LabUp, NamespaceCreated,
                         NamespaceNotOurs, NamespacePlanned, PinDir, ProcessExited,
                         ProcessStarted, Unknown)
from lab.state import LabRecord

DATA = Path(__file__).resolve().parents[1] / "data" / "journal"

RECORDS = [
    LabCreated("t1", 42, 1.5, "topologies/nat46.yaml", "t1/42/7"),
    NamespacePlanned("t1-gw"), NamespaceCreated("t1-gw", 4026531840),
    NamespaceNotOurs("t1-client"), PinDir("/sys/fs/bpf/lab/t1"),
    ProcessStarted(100, 12345, ("unbound", "-d"), "gw"), ProcessExited(100),
    EtcDir("/etc/netns/t1-gw"),
    BpfAttached("gw", "xlate", {"hook": "tcx-ingress", "ifname": "eth0", "prog_id": 7}),
    LabUp(),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_its_journal_line(record):
    line = json.dumps(journal.encode(record))
    assert journal.decode(json.loads(line)) == record


def test_the_records_tags_are_the_on_disk_format():
    assert journal.encode(NamespaceCreated("a", 5)) == {"t": "netns-created", "name": "a",
                                                        "inode": 5}
    assert journal.encode(ProcessStarted(1, 2, ("x", "y"))) == {
        "t": "process", "pid": 1, "start": 2, "argv": ["x", "y"], "node": None}
    assert journal.encode(BpfAttached("gw", "xlate", {"hook": "xdp"})) == {
        "t": "bpf", "node": "gw", "object": "xlate", "hook": "xdp"}
    assert journal.encode(LabUp()) == {"t": "up"}


def test_a_record_of_an_unknown_kind_is_kept_apart_and_ignored(tmp_path):
    assert journal.decode({"t": "wormhole", "to": "x"}) == Unknown({"t": "wormhole", "to": "x"})
    record = LabRecord("t2", tmp_path)
    record.create(topology="x.yaml")
    with open(record.journal, "a") as f:
        f.write('{"t":"wormhole","to":"x"}\n{"t":"netns","name":"t2-a"}\n{"t":"pins","pa')
    inv = record.inventory()
    assert inv.namespaces == {"t2-a": None}     # the unknown record changed nothing
    assert inv.pin_dirs == []                   # a line cut short by a crash ends the replay


def test_appending_and_replaying_typed_records(tmp_path):
    record = LabRecord("t3", tmp_path)
    record.create(topology="t.yaml", instance="t3/1/2")
    record.append(*RECORDS[1:])
    replayed = record.replay()
    assert isinstance(replayed[0], LabCreated) and replayed[0].instance == "t3/1/2"
    assert replayed[1:] == RECORDS[1:]
    inv = record.inventory()
    assert inv.namespaces == {"t1-gw": 4026531840} and inv.abandoned == {"t1-client"}
    assert inv.processes == {} and inv.etc_dirs == ["/etc/netns/t1-gw"] and inv.complete


def test_a_journal_of_the_previous_version_reads_as_it_did(tmp_path):
    """A lab brought up by lab 0.1.0 before the records were typed (a real journal: nat46.yaml
    with DNS64) must be torn down by this version: everything it lists is found."""
    (tmp_path / "archold").mkdir()
    shutil.copy(DATA / "nat46-dns64-v0.1.0.jsonl", tmp_path / "archold" / "journal.jsonl")
    record = LabRecord("archold", tmp_path)
    inv = record.inventory()
    assert inv.created.topology == "topologies/nat46.yaml"
    assert inv.created.instance.startswith("archold/")
    assert len(inv.namespaces) == 8 and all(inv.namespaces.values())
    assert inv.namespaces["archold-gw"] == 4026532705
    assert inv.pin_dirs == ["/sys/fs/bpf/lab/archold"]
    assert sorted(Path(p.argv[0]).name for p in inv.processes.values()) == ["unbound"] * 2
    assert {p.node for p in inv.processes.values()} == {"gw", "server4"}
    assert all(p.start for p in inv.processes.values())
    assert len(inv.etc_dirs) == 4 and inv.complete
    attachments = recorded_attachments(record)
    assert [(node, a.ifname, a.hook, a.program) for node, a in attachments][:2] == [
        ("gw", "eth-client", "tc-ingress", "xlate_ingress"),
        ("gw", "eth-client", "tc-egress", "xlate64_egress")]
    assert len(attachments) == 5 and all(a.netns == "archold-gw" for _, a in attachments)
    # Written again, each line is what the previous version wrote.
    lines = (DATA / "nat46-dns64-v0.1.0.jsonl").read_text().splitlines()
    assert [journal.encode(r) for r in record.replay()] == [json.loads(x) for x in lines]
