"""Programs named in a topology file: `lab up` loads and attaches them (maps shared per node,
pinned under the lab's directory), traffic reaches them, `lab down` leaves nothing."""

import os
import textwrap

import pytest

from lab import netns, state
from lab.bpf import maps, pktcount
from lab.bpf.topology import maps_pin_dir, recorded_attachments
from lab.datapath.registry import DATAPATHS
from lab.errors import UsageError
from lab.lab import Lab

pytestmark = pytest.mark.root

TOPOLOGY = """\
    nodes:
      a: {role: client}
      b: {role: server}
    links:
      - ends:
          - {node: a, ifname: eth0, addresses: [10.79.0.1/24]}
          - node: b
            ifname: eth0
            addresses: [10.79.0.2/24]
            bpf:
              - {object: pktcount, program: pktcount_tc, hook: tc-ingress}
              - {object: pktcount, program: pktcount_tc, hook: egress}
              - {object: pktcount, program: %s, hook: xdp}
    """


def _write(tmp_path, xdp_program="pktcount_xdp"):
    path = tmp_path / "bpf.yaml"
    path.write_text(textwrap.dedent(TOPOLOGY % xdp_program))
    return path


def test_lab_up_attaches_and_lab_down_removes(tmp_path, lab_name):
    with Lab.from_file(_write(tmp_path), lab_name, datapaths=DATAPATHS) as lab:
        recs = recorded_attachments(lab.record)
        assert [(node, r.hook) for node, r in recs] == [
            ("b", "tc-ingress"), ("b", "tcx-egress"), ("b", "xdp")]
        assert len({r.prog_id for _, r in recs[:2]}) == 1  # one load per node and object
        lab.node("a").run(["ping", "-c", "3", "-i", "0.05", "-W", "2", "10.79.0.2"])
        pinned = maps_pin_dir(lab.pin_dir, "b", "pktcount") / "pktcount"
        with maps.open_pinned(str(pinned)) as counts:
            rows = pktcount.read(counts)
        icmp = {(r.hook): r.packets for r in rows if (r.family, r.l4proto) == (4, 1)}
        # tc ingress sees 3 requests, tcx egress 3 replies, XDP 3 requests.
        assert icmp == {"tc": 6, "xdp": 3}
        pin_dir = lab.pin_dir
        assert sorted(os.listdir(pin_dir / "b")) == [
            "eth0:egress:pktcount_tc", "eth0:xdp:pktcount_xdp", "pktcount"]
    assert not pin_dir.exists()
    assert not [n for n in netns.list_names() if n.startswith(f"{lab_name}-")]


@pytest.mark.parametrize("program, message", [
    ("nope", "node b, eth0, hook xdp: .*no program 'nope'"),
    ("pktcount_tc", "node b, eth0, hook xdp: pktcount:pktcount_tc is a sched_cls program, "
                    "the hook needs an XDP one"),
])
def test_programs_that_do_not_fit_fail_lab_up_cleanly(tmp_path, lab_name, program, message):
    with pytest.raises(UsageError, match=message):
        Lab.from_file(_write(tmp_path, program), lab_name, datapaths=DATAPATHS).up()
    assert not (state.PIN_ROOT / lab_name).exists()
    assert not [n for n in netns.list_names() if n.startswith(f"{lab_name}-")]
