"""Attaching at every hook this machine supports, inside throwaway namespaces: real traffic
reaches the program, the record is JSON, and detach removes exactly what attach added."""

import json
import os
import subprocess
import sys

import pytest
from pyroute2 import IPRoute

from lab import netns
from lab import features as core_features
from lab.bpf import attach, features, pktcount

pytestmark = pytest.mark.root

ICMP = 1


def _echo_count(obj, ifindex, hook):
    rows = pktcount.read(obj.map(pktcount.MAP))
    return sum(r.packets for r in rows
               if (r.ifindex, r.hook, r.family, r.l4proto) == (ifindex, hook, 4, ICMP))


def _skip_unless(hook):
    if hook.startswith("tcx") and not features.has_tcx():
        pytest.skip("kernel lacks tcx (CONFIG_NET_XGRESS, 6.6+)")


@pytest.mark.parametrize("hook, program, kind", [
    ("tc-ingress", "pktcount_tc", "tc"),
    ("tc-egress", "pktcount_tc", "tc"),
    ("tcx-ingress", "pktcount_tc", "tc"),
    ("tcx-egress", "pktcount_tc", "tc"),
    ("ingress", "pktcount_tc", "tc"),
    ("egress", "pktcount_tc", "tc"),
    ("xdp", "pktcount_xdp", "xdp"),
    ("xdp-generic", "pktcount_xdp", "xdp"),
])
def test_pings_reach_the_attached_program(hook, program, kind, veth_pair, load_bpf, pin_dir):
    _skip_unless(hook)
    obj = load_bpf("pktcount")
    # XDP sees what b receives; tc egress what b sends (the replies); tc ingress the requests.
    rec = attach.attach(obj.program(program), hook, veth_pair.b_if, pin_dir=pin_dir,
                        netns=veth_pair.b)
    ifindex = veth_pair.ifindex("b")
    json.dumps(rec.to_dict())
    assert (rec.ifindex, rec.ifname, rec.netns) == (ifindex, veth_pair.b_if, veth_pair.b)
    assert rec.requested == hook and rec.hook in attach.HOOKS and rec.hook not in ("ingress",
                                                                                   "egress")
    veth_pair.ping(count=4)
    assert _echo_count(obj, ifindex, kind) == 4

    assert attach.detach(rec.to_dict()) is True
    if rec.pin:
        assert not os.path.exists(rec.pin)
    veth_pair.ping(count=2)
    assert _echo_count(obj, ifindex, kind) == 4, "the program still runs after detach"
    assert attach.detach(rec) is False  # nothing left to undo


def test_auto_hook_records_what_it_used(veth_pair, load_bpf, pin_dir):
    rec = attach.attach(load_bpf("pktcount").program("pktcount_tc"), "ingress",
                        veth_pair.b_if, pin_dir=pin_dir, netns=veth_pair.b)
    assert rec.hook == ("tcx-ingress" if features.has_tcx() else "tc-ingress")
    attach.detach(rec)


def test_tc_detach_removes_the_qdisc_it_added(veth_pair, load_bpf):
    prog = load_bpf("pktcount").program("pktcount_tc")
    with netns.entered(veth_pair.b):
        ingress = attach.attach(prog, "tc-ingress", veth_pair.b_if)
        egress = attach.attach(prog, "tc-egress", veth_pair.b_if)
    assert ingress.created_qdisc and not egress.created_qdisc
    with netns.entered(veth_pair.b), IPRoute() as ipr:
        kinds = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(ingress.ifindex)]
    assert "clsact" in kinds
    # Undone in reverse order, as a lab's teardown does.
    with netns.entered(veth_pair.b):
        assert attach.detach(egress) and attach.detach(ingress)
    with netns.entered(veth_pair.b), IPRoute() as ipr:
        kinds = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(ingress.ifindex)]
    assert "clsact" not in kinds


def test_tc_detach_needs_the_right_namespace(veth_pair, load_bpf):
    with netns.entered(veth_pair.b):
        rec = attach.attach(load_bpf("pktcount").program("pktcount_tc"), "tc-ingress",
                            veth_pair.b_if)
    with pytest.raises(attach.AttachError, match="another network namespace"):
        attach.detach(rec)
    with netns.entered(veth_pair.b):
        assert attach.detach(rec)


def test_tc_refuses_an_occupied_slot_and_leaves_it_alone(veth_pair, load_bpf):
    obj = load_bpf("pktcount")
    other = load_bpf("tests/verdict")
    with netns.entered(veth_pair.b):
        first = attach.attach(obj.program("pktcount_tc"), "tc-ingress", veth_pair.b_if)
        with pytest.raises(attach.AttachError, match="holds pktcount:pktcount_tc already"):
            attach.attach(other.program(), "tc-ingress", veth_pair.b_if)
        # A record for a program that is not there must not remove the one that is.
        forged = attach.Attachment.from_dict({**first.to_dict(), "prog_id": first.prog_id + 1000})
        with pytest.raises(attach.AttachError, match="leaving it alone"):
            attach.detach(forged)
        assert attach.detach(first)


def test_wrong_program_type_and_missing_device_are_clear(veth_pair, load_bpf, pin_dir):
    obj = load_bpf("pktcount")
    with pytest.raises(attach.AttachError, match="xdp needs an XDP program; pktcount_tc is"):
        attach.attach(obj.program("pktcount_tc"), "xdp", veth_pair.b_if, pin_dir=pin_dir,
                      netns=veth_pair.b)
    with pytest.raises(attach.AttachError, match="no network device 'nope0'"):
        attach.attach(obj.program("pktcount_tc"), "tc-ingress", "nope0", netns=veth_pair.b)


def test_second_xdp_program_is_refused_with_reason(veth_pair, load_bpf, pin_dir):
    obj = load_bpf("pktcount")
    rec = attach.attach(obj.program("pktcount_xdp"), "xdp", veth_pair.b_if, pin_dir=pin_dir,
                        netns=veth_pair.b)
    with pytest.raises(attach.AttachError, match="has an XDP program already"):
        attach.attach(obj.program("pktcount_xdp"), "xdp-generic", veth_pair.b_if,
                      pin_dir=pin_dir, pin_name="second", netns=veth_pair.b)
    assert attach.detach(rec)


def test_pinned_link_outlives_the_process_and_is_detached_by_record(veth_pair, pin_dir):
    if not features.has_tcx():
        pytest.skip("kernel lacks tcx (6.6+)")
    # Another process attaches and exits; this one detaches from the record it printed.
    script = (
        "import json, sys\n"
        "from lab.bpf import attach, object as o\n"
        "obj = o.load('pktcount')\n"
        "rec = attach.attach(obj.program('pktcount_tc'), 'tcx-ingress', sys.argv[1],"
        " pin_dir=sys.argv[2], netns=sys.argv[3])\n"
        "print(json.dumps(rec.to_dict()))\n")
    out = subprocess.run([sys.executable, "-c", script, veth_pair.b_if, pin_dir, veth_pair.b],
                         check=True, capture_output=True, text=True).stdout
    rec = json.loads(out)
    assert os.path.exists(rec["pin"])
    from lab.bpf import libbpf
    fd = libbpf.check(libbpf.lib().bpf_obj_get(rec["pin"].encode()), "open link")
    try:
        info = libbpf.obj_info(fd, libbpf.bpf_link_info(), "link")
        assert info.prog_id == rec["prog_id"]   # still attached, program kept alive by the link
    finally:
        os.close(fd)
    assert attach.detach(rec) and not os.path.exists(rec["pin"])


def _netkit_pair(pair):
    """A netkit pair instead of the veth: primary in a, peer in b (L3 mode, the default)."""
    b_fd = os.open(netns.path_of(pair.b), os.O_RDONLY)
    try:
        with netns.entered(pair.a), IPRoute() as ipr:
            ipr.link("add", ifname="nk-a", kind="netkit")
            primary = ipr.link_lookup(ifname="nk-a")[0]
            peer = next(link["index"] for link in ipr.get_links()
                        if link.get_attr("IFLA_LINK") == primary)
            ipr.link("set", index=peer, net_ns_fd=b_fd, ifname="nk-b")
            ipr.addr("add", index=primary, address="10.78.0.1", prefixlen=24)
            ipr.link("set", index=primary, state="up")
    finally:
        os.close(b_fd)
    with netns.entered(pair.b), IPRoute() as ipr:
        idx = ipr.link_lookup(ifname="nk-b")[0]
        ipr.addr("add", index=idx, address="10.78.0.2", prefixlen=24)
        ipr.link("set", index=idx, state="up")


@pytest.mark.netkit
@pytest.mark.parametrize("hook", ["netkit-primary", "netkit-peer"])
def test_netkit_hooks_see_pings(hook, veth_pair, load_bpf, pin_dir):
    ok, reason = core_features.netkit()
    if not ok:
        pytest.skip(reason)
    _netkit_pair(veth_pair)
    obj = load_bpf("pktcount")
    # Both hooks attach through the primary device; the attach type picks the side.
    rec = attach.attach(obj.program("pktcount_tc"), hook, "nk-a", pin_dir=pin_dir,
                        netns=veth_pair.a)
    netns.run(veth_pair.b, ["ping", "-4", "-n", "-q", "-c", "4", "-i", "0.05", "10.78.0.1"],
              timeout=20)
    # The peer's program sees what the peer sends (requests), the primary's what it sends
    # (replies): four IPv4 packets either way.
    rows = pktcount.read(obj.map(pktcount.MAP))
    assert sum(r.packets for r in rows if r.family == 4) == 4
    assert attach.detach(rec) and not os.path.exists(rec.pin)
