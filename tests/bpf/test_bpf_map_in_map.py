"""Map-in-map: create an inner map and swap it into the outer map atomically; the datapath's
verdict changes with the swap, also when done through pins by another process."""

import pytest
from scapy.layers.inet import IP, UDP

from lab.bpf import maps
from lab.bpf.object import BpfObject
from lab.bpf.testing import run_packet

from bpf_fixtures import object_file

pytestmark = pytest.mark.root

TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7


def test_swap_changes_what_the_program_sees(load_bpf):
    obj = load_bpf("tests/verdict")
    prog, tables = obj.program("verdict_tc"), obj.map("tables")
    assert isinstance(tables, maps.MapOfMaps)
    with tables.inner(0) as current:
        assert current.id == obj.map("table_a").id  # the slot the C initialiser filled

    assert run_packet(prog, IP() / UDP()).code == "TC_ACT_OK"
    new = tables.create_inner("table_b")
    assert new.value_type.__name__ == "verdict"       # BTF carried over from the object
    new[0] = new.value_type(valid=1, action=TC_ACT_SHOT)
    tables.swap(0, new)
    assert run_packet(prog, IP() / UDP()).dropped
    with tables.inner(0) as current:
        assert current.id == new.id

    third = tables.create_inner("table_c")
    third[0] = third.value_type(valid=1, action=TC_ACT_REDIRECT, ifindex=1)
    tables.swap(0, third)
    out = run_packet(prog, IP() / UDP())
    assert (out.code, out.verdict) == ("TC_ACT_REDIRECT", "redirected")


def test_hash_of_maps_starts_empty_and_takes_inner_maps(load_bpf):
    named = load_bpf("tests/verdict").map("named_tables")
    assert list(named.keys()) == []
    assert named.inner(42).map is None
    inner = named.create_inner()                      # from the object's inner definition
    inner[1] = inner.value_type(valid=1, action=3)
    named.swap(42, inner)
    with named.inner(42) as back:
        assert back[1].action == 3


def test_swap_through_pins_from_another_process(pin_dir):
    with BpfObject(object_file("tests/verdict"), pin_maps_dir=pin_dir) as obj:
        obj.load()
        prog = obj.program()
        # What a control agent does: open the pinned outer map, build a table, swap it in.
        with maps.open_pinned(f"{pin_dir}/tables") as outer:
            fresh = outer.create_inner("agent_table")     # layout taken from slot 0
            fresh[0] = fresh.value_type(valid=1, action=TC_ACT_SHOT)
            outer.swap(0, fresh)
            fresh.close()  # the outer map holds the table now
        assert run_packet(prog, IP() / UDP()).dropped
