"""Loading objects and using their maps through libbpf: typed values round-trip, per-CPU values
add up, pinned maps are reused and re-opened by path, layouts are checked, and a verifier
rejection is reported with the program, its section and the log."""

import ctypes
import os

import pytest

from lab.bpf import maps
from lab.bpf.btf import LayoutError
from lab.bpf.object import BpfLoadError, BpfObject

from bpf_fixtures import object_file

pytestmark = pytest.mark.root


def test_programs_and_maps_by_name(load_bpf):
    obj = load_bpf("pktcount")
    assert obj.program("pktcount_tc").type_name == "sched_cls"
    assert obj.program("pktcount_xdp").type_name == "xdp"
    assert obj.program("pktcount_tc").id > 0
    m = obj.map("pktcount")
    assert (m.info.type_name, m.info.key_size, m.info.value_size) == ("percpu_hash", 12, 32)


def test_typed_values_round_trip_per_cpu(load_bpf):
    m = load_bpf("pktcount").map("pktcount")
    key = m.key_type(ifindex=7, family=6, l4proto=6, bucket=10, hook=1)
    m[key] = m.value_type(packets=2, bytes=3000, segments=4)
    per_cpu = m[key]
    assert len(per_cpu) == os.cpu_count() or len(per_cpu) >= 1
    assert all(v == m.value_type(packets=2, bytes=3000, segments=4) for v in per_cpu)
    total = m.lookup_sum(key)
    assert (total.packets, total.bytes, total.segments) == (2 * len(per_cpu),
                                                            3000 * len(per_cpu),
                                                            4 * len(per_cpu))
    values = [m.value_type(packets=i) for i in range(len(per_cpu))]
    m.update(key, values)
    assert [v.packets for v in m[key]] == list(range(len(per_cpu)))
    assert list(m.keys()) == [key]
    assert m.delete(key) and not m.delete(key) and key not in m


def test_hash_of_plain_values_and_iteration(load_bpf):
    # The inner verdict tables: ARRAY with an int key and a struct value.
    table = load_bpf("tests/verdict").map("table_a")
    v = table.value_type(valid=1, action=2, ifindex=5)
    v.hits[:] = [1, 2, 3]
    table[3] = v
    assert table[3] == v and list(table[3].hits) == [1, 2, 3]
    assert list(table.keys()) == [0, 1, 2, 3]
    assert table[0] == table.value_type()


def test_callers_types_are_checked_against_btf(load_bpf):
    m = load_bpf("pktcount").map("pktcount")

    class Key(ctypes.Structure):
        _fields_ = [("ifindex", ctypes.c_uint32), ("family", ctypes.c_uint8),
                    ("l4proto", ctypes.c_uint8), ("bucket", ctypes.c_uint8),
                    ("hook", ctypes.c_uint8), ("lenfield", ctypes.c_uint32)]

    class Value(ctypes.Structure):   # `bytes` is __u64 in C
        _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint32),
                    ("segments", ctypes.c_uint64), ("max_len", ctypes.c_uint64)]

    typed = m.typed(key=Key)
    typed[Key(ifindex=1)] = m.value_type(packets=1)
    assert isinstance(next(iter(typed.keys())), Key)
    with pytest.raises(LayoutError, match=r"struct pktcount_value \(BTF\) vs Value \(Python\): "
                                          r"member 'bytes' is 4 bytes in Python but 8 in BTF"):
        m.typed(value=Value)


def test_wrong_sizes_are_refused_before_the_kernel(load_bpf):
    m = load_bpf("pktcount").map("pktcount")
    with pytest.raises(ValueError, match="3 bytes given, the map uses 12"):
        m.lookup(b"abc")
    with pytest.raises(TypeError, match="expected pktcount_key"):
        m.lookup(5)


def test_pinned_maps_are_reused_and_reopened_by_path(pin_dir):
    with BpfObject(object_file("pktcount"), pin_maps_dir=pin_dir) as first:
        first.load()
        path = first.pinned_maps()["pktcount"]
        assert path == f"{pin_dir}/pktcount"
        assert os.stat(pin_dir).st_mode & 0o777 == 0o700
        m = first.map("pktcount")
        m[m.key_type(ifindex=9)] = m.value_type(packets=1)
    # A later process (e.g. the control agent) opens the pin: types come from the kernel's BTF.
    with maps.open_pinned(path) as again:
        assert again.key_type.__name__ == "pktcount_key"
        assert again.lookup_sum(again.key_type(ifindex=9)).packets >= 1
    # A reload with the same pin directory keeps the map and its state.
    with BpfObject(object_file("pktcount"), pin_maps_dir=pin_dir) as second:
        second.load()
        m2 = second.map("pktcount")
        assert m2.lookup_sum(m2.key_type(ifindex=9)).packets >= 1
        second.unpin_maps()
    assert not os.path.exists(path)


def test_open_pinned_refuses_what_is_not_a_map(pin_dir, load_bpf):
    from lab.bpf import bpffs, libbpf
    obj = load_bpf("pktcount")
    bpffs.make_dir(pin_dir)
    prog_pin = f"{pin_dir}/prog"
    libbpf.check(libbpf.lib().bpf_obj_pin(obj.program("pktcount_tc").fd, prog_pin.encode()),
                 "pin")
    with pytest.raises(LayoutError, match="not a pinned map"):
        maps.open_pinned(prog_pin)


def test_globals_are_set_before_load(bpf_runner, load_bpf):
    from scapy.layers.inet import IP
    run = bpf_runner("tests/verdict")
    assert run(IP()).code == "TC_ACT_OK"  # default_action as compiled
    obj = load_bpf("tests/verdict", default_action=2)
    from lab.bpf.testing import run_packet
    assert run_packet(obj.program(), IP()).code == "TC_ACT_SHOT"
    with pytest.raises(KeyError, match="no global variable 'nope'"):
        BpfObject(object_file("tests/verdict")).set_global("nope", 1)


def test_verifier_rejection_names_program_section_and_shows_log(bpf_build):
    with pytest.raises(BpfLoadError) as e:
        with BpfObject(object_file("tests/broken")) as obj:
            obj.load()
    err = e.value
    assert (err.program, err.section) == ("broken_tc", "tc")
    text = str(err)
    assert "program 'broken_tc' (section 'tc') was rejected by the verifier" in text
    # The verifier's own words, from the log: up to 6.x, and in 7.x's explained form
    assert "invalid access to packet" in text or "access may be outside object bounds" in text
    assert err.log_tail()[-1] in text


def test_failed_load_leaves_no_pins(pin_dir, bpf_build):
    with pytest.raises(BpfLoadError):
        with BpfObject(object_file("tests/broken"), pin_maps_dir=pin_dir) as obj:
            obj.load()
    assert not os.path.exists(pin_dir) or os.listdir(pin_dir) == []
