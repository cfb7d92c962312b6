"""Hostile and careless input files (issue 16): every one is refused at load, as
`file:line:col: what is wrong` with exit code 2, before anything exists: names the kernel or
the filesystem would choke on (after pod name templates are expanded), YAML that is not
UTF-8, nested without end, merged (<<) or expanded through aliases without bound, numbers
the kernel's fields cannot hold, values only the kernel checked (sysctls, MTU, MAC, next
hops), and scenario matrices too large to run, counted before they are expanded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab import topology, yamlfile
from lab.datapath.registry import DATAPATHS
from lab.errors import EXIT_USAGE, InputError
from lab.scenarios import model as scenario_model

ROOT = Path(__file__).resolve().parents[2]

TWO_NODES = """\
name: {name}
nodes:
  a:
    role: {role}
{node}
  b: {{role: gateway, forwarding: true}}
links:
  - ends:
      - {{node: a, ifname: {ifname}, addresses: [{addr}]{end}}}
      - {{node: b, ifname: eth0, addresses: [192.0.2.1/24, "2001:db8::1/64"]}}
{link}"""


def topo(name="t", role="client", node="", ifname="eth0", addr="192.0.2.2/24", end="",
         link=""):
    return TWO_NODES.format(name=name, role=role, node=node, ifname=ifname, addr=addr,
                            end=end, link=link)


def refused(text: str, file: str = "t.yaml") -> str:
    """The message of TEXT's refusal, which must say where: file:line:col."""
    with pytest.raises(InputError) as info:
        topology.parse(text, file=file, datapaths=DATAPATHS)
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.line is not None, str(info.value)
    return str(info.value)


def test_the_template_loads():
    assert set(topology.parse(topo(), datapaths=DATAPATHS).nodes) == {"a", "b"}


# --- names: what the kernel and the filesystem accept ------------------------------------------

@pytest.mark.parametrize("where, text, position", [
    ("lab name", topo(name='"x\\n"'), "t.yaml:1:7"),
    ("node name", topo().replace("  a:\n", '  "a\\n":\n'), "t.yaml:3:3"),
    ("interface name", topo(ifname='"eth0\\n"'), "t.yaml:9:27"),
    ("interface name", topo(ifname='"eth 0"'), "t.yaml:9:27"),
    ("interface name", topo(ifname="eth0/1"), "t.yaml:9:27"),
    ("interface name", topo(ifname="a23456789012345x"), "t.yaml:9:27"),
    ("route device", topo(node='    routes: [{dst: default, via: 192.0.2.1, dev: "eth0\\n"}]'),
     "t.yaml:5:"),
    ("sysctl name", topo(node='    sysctls: {"net.ipv4.ip_forward\\n": 1}'), "t.yaml:5:"),
])
def test_a_name_with_a_newline_or_what_the_kernel_refuses(where, text, position):
    assert refused(text).startswith(position)


@pytest.mark.parametrize("template, words", [
    ("'my pod {i}'", "makes 'my pod 0' for pod 0"),
    ("'x/../../y{i}'", "makes 'x/../../y0' for pod 0"),
    ("'{i:>300}'", "bad pod name template"),
    ("'{i:>99999999999}'", "bad pod name template"),
    ("'{node.__class__}{i}'", "'{node.__class__}'"),
    ("'p{i!r}'", "'{i!r}'"),
    ("'pod'", "has no {i}"),
    ("'p{i'", "expected '}'"),
    ("'p-{i:040}'", "a node name is 1-32"),
])
def test_pod_names_are_checked_after_the_template_is_expanded(template, words):
    text = f"nodes:\n  n:\n    role: node\n    pods: {{count: 2, ipv6: 'fd00::10', name: {template}}}\n"
    message = refused(text)
    assert message.startswith("t.yaml:4:") and words in message


def test_a_good_pod_template():
    text = "nodes:\n  n:\n    role: node\n    pods: {count: 2, ipv6: 'fd00::10', name: 'p{i:03}'}\n"
    assert [p.name for p in topology.parse(text).pods()] == ["p000", "p001"]


# --- YAML itself --------------------------------------------------------------------------------

def load_bytes(tmp_path, raw: bytes) -> str:
    path = tmp_path / "t.yaml"
    path.write_bytes(raw)
    with pytest.raises(InputError) as info:
        topology.load(path, datapaths=DATAPATHS)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


def test_invalid_utf8_says_where(tmp_path):
    message = load_bytes(tmp_path, b"nodes:\n  a: {role: client}\n  b\xff: {role: server}\n")
    assert message == f"{tmp_path / 't.yaml'}:3:4: not UTF-8: byte 0xff cannot start or " \
                      "continue a character here"


def test_a_control_character_says_where(tmp_path):
    assert load_bytes(tmp_path, b"name: a\x07\n").endswith(
        "t.yaml:1:8: YAML does not allow the character U+0007 here")


@pytest.mark.parametrize("text", ["nodes: " + "[" * 5000 + "]" * 5000,
                                  "nodes: " + "{a: " * 5000 + "1" + "}" * 5000,
                                  "".join("  " * i + f"k{i}:\n" for i in range(5000))])
def test_yaml_nested_5000_deep(text):
    assert f"nested more than {yamlfile.MAX_DEPTH} deep" in refused(text)


def test_merge_keys_are_refused():
    text = topo(node="    <<: {sysctls: {net.ipv4.ip_forward: 1}}")
    assert refused(text) == "t.yaml:5:5: YAML merge keys (<<) are not supported: write the " \
                            "keys out"


def test_billion_laughs_is_refused_quickly():
    text = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8))
    with pytest.raises(InputError, match="expands to more than 100000 values"):
        yamlfile.parse(text, "t.yaml")


def test_too_many_aliases_are_refused():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 200) + "]\n"
    with pytest.raises(InputError) as info:
        yamlfile.parse(text, "t.yaml")
    assert str(info.value).startswith("t.yaml:2:") and "more than 100 YAML aliases" in \
        str(info.value)


def test_unsafe_tags_are_refused_with_a_position():
    assert refused("name: !!python/object/apply:os.system [true]\n").startswith("t.yaml:1:7:")


# --- numbers the kernel's fields cannot hold, values only the kernel checked -------------------

@pytest.mark.parametrize("text, words", [
    (topo(node="    routes: [{dst: default, via: 192.0.2.1, metric: 4294967296}]"),
     "4294967296 is greater than the maximum of 4294967295"),
    (topo(end=", txqueuelen: 4294967296"), "greater than the maximum of 4294967295"),
    (topo(end=", txqueuelen: -1"), "less than the minimum of 0"),
    (topo(addr='"2001:db8::2/64"', end=", mtu: 1279"), "below IPv6's minimum of 1280"),
    (topo(link="    mtu: 1000\n", addr='"2001:db8::2/64"'), "below IPv6's minimum of 1280"),
    (topo(role="node", addr='"2001:db8::2/64"', end=", mtu: 1200"),
     "below IPv6's minimum of 1280"),
    (topo(end=", mac: '01:00:5e:00:00:01'"), "is a multicast (group) address"),
    (topo(end=", mac: '33:33:00:00:00:01'"), "is a multicast (group) address"),
    (topo(end=", mac: '00:00:00:00:00:00'"), "is not a device address"),
    (topo(node="    routes: [{dst: 198.51.100.0/24, via: 203.0.113.1}]"),
     "next hop 203.0.113.1 is on none of node 'a''s subnets"),
    (topo(node="    routes: [{dst: 198.51.100.0/24, via: 203.0.113.1, dev: eth0}]"),
     "next hop 203.0.113.1 is on none of node 'a''s subnets on eth0"),
    (topo(node="    routes: [{dst: '2001:db8:1::/64', via: 'fe80::1'}]"),
     "is link-local: name its device"),
])
def test_values_the_kernel_would_refuse(text, words):
    message = refused(text)
    assert words in message, message


def test_an_ipv4_only_link_may_have_a_small_mtu_and_onlink_routes_any_next_hop():
    text = topo(end=", mtu: 576", node="    routes: [{dst: 198.51.100.0/24, via: 203.0.113.1, "
                                       "dev: eth0, onlink: true}]")
    a = topology.parse(text, datapaths=DATAPATHS).node("a")
    assert a.interfaces["eth0"].mtu == 576 and a.routes[0].onlink


@pytest.mark.skipif(os.geteuid() != 0, reason="values are tried in a namespace of their own")
@pytest.mark.parametrize("sysctls, words", [
    ("{net.ipv4.no_such_thing: 1}", "no sysctl 'net.ipv4.no_such_thing'"),
    ("{net.ipv4.ip_default_ttl: 300}", "the kernel refuses net.ipv4.ip_default_ttl='300'"),
    ("{net.ipv4.ip_forward: 'yes'}", "the kernel refuses net.ipv4.ip_forward='yes'"),
    ("{net.ipv6.conf.eth9.forwarding: 1}", "node 'a' has no interface 'eth9'"),
    ("{net.ipv4.conf: 1}", "is a group of sysctls"),
    ("{net.ipv6.conf.eth0.hop_limit: 0}", "the kernel refuses net.ipv6.conf.eth0.hop_limit"),
])
def test_sysctls_are_tried_at_load(sysctls, words):
    message = refused(topo(node=f"    sysctls: {sysctls}"))
    assert message.startswith("t.yaml:5:") and words in message, message


@pytest.mark.skipif(os.geteuid() != 0, reason="values are tried in a namespace of their own")
def test_good_sysctls_load_and_change_nothing_here():
    before = Path("/proc/sys/net/ipv4/conf/default/rp_filter").read_text()
    t = topology.parse(topo(node="    sysctls: {net.ipv4.conf.eth0.rp_filter: 2, "
                                 "net.ipv4.conf.default.rp_filter: 2}"), datapaths=DATAPATHS)
    assert t.node("a").sysctls["net.ipv4.conf.eth0.rp_filter"] == "2"
    assert Path("/proc/sys/net/ipv4/conf/default/rp_filter").read_text() == before


# --- scenario files -----------------------------------------------------------------------------

SCENARIO = """\
topology: {topology}
{matrix}
steps:
  - {{name: r, kind: reach}}
"""


def scenario_refused(tmp_path, text: str) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        scenario_model.load(path)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


def test_a_huge_matrix_is_refused_with_its_size_before_it_is_expanded(tmp_path):
    dims = "\n".join(f"  d{i}: [{', '.join(str(v) for v in range(10))}]" for i in range(12))
    text = SCENARIO.format(topology=ROOT / "topologies/bigtcp.yaml", matrix=f"matrix:\n{dims}")
    message = scenario_refused(tmp_path, text)      # counted: 10^12 points would never end
    assert "the matrix has 1,000,000,000,000 points (10 d0 x 10 d1 x" in message
    assert message.startswith(f"{tmp_path / 's.yaml'}:2:1:")


def test_a_deep_scenario_file_is_refused(tmp_path):
    text = SCENARIO.format(topology=ROOT / "topologies/bigtcp.yaml",
                           matrix="params: " + "{a: " * 3000 + "1" + "}" * 3000)
    assert "nested more than 64 deep" in scenario_refused(tmp_path, text)


# --- lab compare's inputs -----------------------------------------------------------------------

@pytest.mark.parametrize("raw, words", [
    (b'{"schema_version": 1, "x": "\xff\xfe"}', "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested without end"),
    (b'{"a": ' * 100 + b"1" + b"}" * 100, "nested more than 32 deep"),
    (b"1" * 5000, "not JSON"),
])
def test_lab_compare_refuses_what_is_not_a_results_document(tmp_path, capsys, raw, words):
    from lab.commands import main
    bad = tmp_path / "bad.json"
    bad.write_bytes(raw)
    assert main(["compare", str(bad), str(bad)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"lab: {bad}: ") and words in err and err.count("\n") == 1, err
