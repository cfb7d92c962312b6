"""BTF <-> ctypes: derived types have C's layout; hand-written types are checked member by
member, and a mismatch names the struct and the member."""

import ctypes

import pytest

from lab.bpf import libbpf
from lab.bpf.btf import Btf, LayoutError, vmlinux


@pytest.fixture(scope="module")
def layouts(bpf_build):
    return Btf.from_elf(str(bpf_build / "tests" / "layouts.o"))


@pytest.fixture(scope="module")
def pktcount(bpf_build):
    return Btf.from_elf(str(bpf_build / "pktcount.o"))


def _struct(btf, name):
    return btf.find(name, "struct")


def test_derived_struct_has_c_layout_with_padding_and_nesting(layouts):
    flow = layouts.ctype(_struct(layouts, "flow"))
    # Offsets as clang laid them out (see tests/bpf/progs/layouts.c).
    assert ctypes.sizeof(flow) == 80
    assert (flow.src.offset, flow.dst.offset, flow.proto.offset) == (0, 20, 40)
    assert (flow.cookie.offset, flow.weights.offset) == (48, 56)
    f = flow()
    f.dst.v4 = 0x0A000001          # anonymous union member, reached directly
    f.weights[1][2] = 7
    raw = bytes(f)
    assert raw[20:24] == (0x0A000001).to_bytes(4, "little")
    assert raw[56 + (1 * 3 + 2) * 4] == 7


def test_derived_packed_struct(layouts):
    key = layouts.ctype(_struct(layouts, "packed_key"))
    assert ctypes.sizeof(key) == 7
    assert (key.family.offset, key.ifindex.offset, key.port.offset) == (0, 1, 5)
    assert bytes(key(family=6, ifindex=0x01020304, port=0xBEEF)) == bytes.fromhex("0604030201efbe")


def test_derived_records_compare_and_print(pktcount):
    key_t = pktcount.ctype(_struct(pktcount, "pktcount_key"))
    a, b = key_t(ifindex=3, family=4), key_t(ifindex=3, family=4)
    assert a == b and hash(a) == hash(b) and a != key_t(ifindex=3, family=6)
    assert "family=4" in repr(a)


class GoodKey(ctypes.Structure):
    _fields_ = [("ifindex", ctypes.c_uint32), ("family", ctypes.c_uint8),
                ("l4proto", ctypes.c_uint8), ("bucket", ctypes.c_uint8), ("hook", ctypes.c_uint8),
                ("lenfield", ctypes.c_uint32)]


def test_matching_python_type_passes(pktcount):
    pktcount.check(GoodKey, _struct(pktcount, "pktcount_key"))


@pytest.mark.parametrize("fields, message", [
    ([("ifindex", ctypes.c_uint32), ("family", ctypes.c_uint8), ("proto", ctypes.c_uint8),
      ("bucket", ctypes.c_uint8), ("hook", ctypes.c_uint8), ("lenfield", ctypes.c_uint32)],
     "member 'l4proto' is missing in Python"),
    ([("ifindex", ctypes.c_uint32), ("l4proto", ctypes.c_uint8), ("family", ctypes.c_uint8),
      ("bucket", ctypes.c_uint8), ("hook", ctypes.c_uint8), ("lenfield", ctypes.c_uint32)],
     "member 'family' is at offset 5 in Python but 4 in BTF"),
    ([("ifindex", ctypes.c_uint16), ("family", ctypes.c_uint8), ("l4proto", ctypes.c_uint8),
      ("bucket", ctypes.c_uint8), ("hook", ctypes.c_uint8), ("lenfield", ctypes.c_uint32)],
     "member 'ifindex' is 2 bytes in Python but 4 in BTF"),
    (GoodKey._fields_ + [("extra", ctypes.c_uint32)],
     "member 'extra' exists in Python but not in BTF"),
])
def test_mismatch_names_struct_and_member(pktcount, fields, message):
    bad = type("PyKey", (ctypes.Structure,), {"_fields_": fields})
    with pytest.raises(LayoutError) as e:
        pktcount.check(bad, _struct(pktcount, "pktcount_key"))
    assert "struct pktcount_key (BTF) vs PyKey (Python)" in str(e.value)
    assert message in str(e.value)


def test_nested_mismatch_names_the_path(layouts):
    addr = layouts.ctype(_struct(layouts, "addr"))
    good = layouts.ctype(_struct(layouts, "flow"))
    fields = [(n, t) for n, t in good._fields_]
    fields[-1] = ("weights", (ctypes.c_uint32 * 2) * 2)   # C has [2][3]
    bad = type("PyFlow", (ctypes.Structure,), {"_fields_": fields})
    with pytest.raises(LayoutError, match=r"struct flow .*member 'weights'"):
        layouts.check(bad, _struct(layouts, "flow"))
    layouts.check(addr, _struct(layouts, "addr"))   # derived types pass their own check


def test_kernel_info_structs_match_running_kernel():
    """libbpf.py types a prefix of the kernel's info structs by hand: check it against BTF."""
    btf = vmlinux()
    for struct in (libbpf.bpf_map_info, libbpf.bpf_prog_info, libbpf.bpf_link_info,
                   libbpf.bpf_btf_info):
        btf.check(struct, btf.find(struct.__name__, "struct"), prefix=True)


def test_attach_type_numbers_match_running_kernel():
    btf = vmlinux()
    values = dict(btf.resolve(btf.find("bpf_attach_type", "enum")).enumerators)
    assert values["BPF_XDP"] == libbpf.ATTACH_XDP
    for name, ours in (("BPF_TCX_INGRESS", libbpf.ATTACH_TCX_INGRESS),
                       ("BPF_TCX_EGRESS", libbpf.ATTACH_TCX_EGRESS),
                       ("BPF_NETKIT_PRIMARY", libbpf.ATTACH_NETKIT_PRIMARY),
                       ("BPF_NETKIT_PEER", libbpf.ATTACH_NETKIT_PEER)):
        if name in values:  # older kernels lack them; their numbers cannot be checked there
            assert values[name] == ours, name


def test_test_run_contexts_come_from_kernel_btf():
    from lab.bpf.testrun import make_ctx
    skb = make_ctx(False, {"ifindex": 7, "cb": [1, 2, 3, 4, 5]}, 60)
    assert skb.ifindex == 7 and list(skb.cb) == [1, 2, 3, 4, 5]
    xdp = make_ctx(True, {"ingress_ifindex": 3}, 60)
    assert (xdp.data, xdp.data_end, xdp.ingress_ifindex) == (0, 60, 3)
    with pytest.raises(KeyError, match="no field 'ifindx'"):
        make_ctx(False, {"ifindx": 1}, 60)
