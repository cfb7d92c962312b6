"""Loader pieces that need no root: libbpf's messages, load errors, link requests, records."""

import json

import pytest

from lab.bpf import attach, libbpf
from lab.bpf.object import BpfLoadError, BpfObject
from lab.errors import UsageError


def test_libbpf_messages_are_formatted_and_captured(tmp_path):
    not_bpf = tmp_path / "not-bpf.o"
    not_bpf.write_bytes(open("/bin/true", "rb").read())  # an ELF, but not a BPF one
    with libbpf.captured_messages() as msgs:
        ptr = libbpf.lib().bpf_object__open_file(str(not_bpf).encode(), None)
    assert not ptr
    text = "".join(m for _, m in msgs)
    assert str(not_bpf) in text, text  # the %s argument was formatted from the va_list


def test_open_failure_is_a_load_error_with_libbpf_reason(tmp_path):
    not_bpf = tmp_path / "not-bpf.o"
    not_bpf.write_bytes(open("/bin/true", "rb").read())
    with pytest.raises(BpfLoadError) as e:
        BpfObject(not_bpf)
    assert str(not_bpf) in str(e.value) and "libbpf:" in str(e.value)


def test_missing_object_says_how_to_build_it():
    with pytest.raises(UsageError, match=r"no such BPF object \(run `make bpf`\)"):
        BpfObject("no_such_program")


def test_verifier_error_text_shows_program_section_and_log_tail():
    log = "".join(f"{i}: insn {i}\n" for i in range(100)) + "invalid access to packet\n"
    err = BpfLoadError("x.o", 13, "broken_tc", "tc", log)
    text = str(err)
    assert text.splitlines()[0] == ("x.o: program 'broken_tc' (section 'tc') was rejected by "
                                    "the verifier: Permission denied")
    assert "invalid access to packet" in text
    assert "99: insn 99" in text and "  0: insn 0\n" not in text  # the tail, not the head


def test_programs_and_sections_without_loading(bpf_build):
    with BpfObject(bpf_build / "pktcount.o") as obj:
        assert {p.name: p.section for p in obj.programs.values()} == {
            "pktcount_tc": "tc", "pktcount_xdp": "xdp"}
        assert obj.program(xdp=True).name == "pktcount_xdp"
        with pytest.raises(UsageError, match="no program 'nope'"):
            obj.program("nope")


@pytest.mark.parametrize("hook, attach_type, flags", [
    ("tcx-ingress", 46, 0),
    ("tcx-egress", 47, 0),
    ("xdp", 37, libbpf.XDP_FLAGS_DRV_MODE),
    ("xdp-generic", 37, libbpf.XDP_FLAGS_SKB_MODE),
    ("netkit-primary", 54, 0),
    ("netkit-peer", 55, 0),
])
def test_link_requests(hook, attach_type, flags):
    # netkit: both hooks name the primary device; the attach type picks the side.
    assert attach.link_request(hook, 7) == attach.LinkRequest(attach_type, 7, flags)


def test_auto_hooks_follow_the_kernel(monkeypatch):
    monkeypatch.setattr(attach.features, "has_tcx", lambda: True)
    assert attach.resolve_hook("ingress") == "tcx-ingress"
    monkeypatch.setattr(attach.features, "has_tcx", lambda: False)
    assert attach.resolve_hook("egress") == "tc-egress"
    with pytest.raises(UsageError, match="unknown hook 'tcx'"):
        attach.resolve_hook("tcx")


def test_attachment_record_round_trips_through_json():
    rec = attach.Attachment("tcx-ingress", "ingress", "eth0", 4, "lab-gw", 4026531840,
                            "xlate_tc", 17, pin="/sys/fs/bpf/lab/x/l", link_id=9)
    back = attach.Attachment.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec


def test_netkit_failure_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(attach.features, "has_netkit_attach", lambda: False)
    rec = attach.Attachment("netkit-peer", "netkit-peer", "nk0", 4, None, 1, "p", 1)
    assert "CONFIG_NETKIT" in attach._link_failure(rec, 22)
    monkeypatch.setattr(attach.features, "has_netkit_attach", lambda: True)
    assert "not the primary device of a netkit pair" in attach._link_failure(rec, 22)


def test_cli_without_bpf_privileges_says_what_is_needed(monkeypatch, tmp_path, capsys):
    import builtins
    from lab.commands import main
    real_open = builtins.open

    def fake_open(path, *a, **kw):  # a process with no capabilities
        if path == "/proc/self/status":
            import io
            return io.StringIO("Name:\tlab\nCapEff:\t0000000000000000\n")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    src = tmp_path / "in.pcap"
    src.write_bytes(b"")
    assert main(["bpf", "run", "pktcount", "--in", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "needs root (CAP_BPF and CAP_NET_ADMIN)" in capsys.readouterr().err


def test_a_7x_verifier_verdict_stays_in_view_above_the_tail():
    # 7.x verifiers explain a rejection at length under a verdict line; the tail shown could
    # begin below it.
    log = "\n".join(["", "Verification failed: Memory Safety: Access outside bounds", ""]
                    + [f"  detail {i}" for i in range(40)])
    text = str(BpfLoadError("x.o", 13, "p", "tc", log))
    assert text.splitlines()[1] == "Verification failed: Memory Safety: Access outside bounds"
    assert "detail 39" in text and "detail 5\n" not in text
