"""The gateway's HTTP/JSON API served by the agent on its unix socket: the socket is root's
alone, every endpoint does what the OpenAPI document says, malformed requests get a 4xx with
a clear message and change nothing, and the document holds against the server (schemathesis,
which generates requests from it, valid and invalid, and checks every answer)."""

from __future__ import annotations

import os
import stat
import subprocess
import textwrap

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from lab.bpf.testing import run_packet
from lab.datapath.gateway.agent import request

from gateway_agent import SNAT6, running_agent

pytestmark = pytest.mark.root

SERVICE = {"frontend": {"address": "203.0.113.80", "port": 80},
           "backends": [{"address": "fd00:10:244:1::10", "port": 8080},
                        {"address": "fd00:10:244:1::11", "port": 8080, "weight": 3}]}


@pytest.fixture
def agent(bpf_build):
    with running_agent(bpf_build / "gateway.o", "api") as a:
        yield a


def call(agent, method, url, body=None):
    return request(agent.socket, method, url, body)


def test_socket_belongs_to_root_alone(agent):
    st = os.stat(agent.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (0, 0)


NOBODY = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
    except PermissionError:
        print("EACCES"); raise SystemExit
    s.sendall(b"GET /v1/services HTTP/1.0\\r\\n\\r\\n")
    print(s.makefile("rb").read().decode())
""")


def as_nobody(path):
    return subprocess.run(["/usr/bin/python3", "-c", NOBODY, str(path)], user="nobody",
                          group="nogroup", capture_output=True, text=True, timeout=20,
                          check=True).stdout


def test_other_users_are_refused(agent):
    assert as_nobody(agent.socket).strip() == "EACCES"      # the socket's mode
    os.chmod(agent.socket, 0o666)     # as if it leaked: the agent checks the peer itself
    try:
        answer = as_nobody(agent.socket)
    finally:
        os.chmod(agent.socket, 0o600)
    assert answer.startswith("HTTP/1.0 403")
    assert "root only" in answer and '"id"' not in answer
    assert call(agent, "GET", "/v1/services")[0] == 200    # root still is welcome


def test_every_endpoint(agent):
    assert call(agent, "GET", "/v1/healthz") == (200, {"status": "ok"})
    status, doc = call(agent, "GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    status, settings = call(agent, "GET", "/v1/settings")
    assert status == 200 and settings["snat6"] == SNAT6 and settings["table_size"] == 251

    status, svc = call(agent, "POST", "/v1/services", SERVICE)
    assert status == 201 and svc["type"] == "NAT46" and svc["selection"] == "maglev"
    sid = svc["id"]
    assert [b["weight"] for b in svc["backends"]] == [1, 3]
    assert call(agent, "GET", "/v1/services") == (200, [svc])
    assert call(agent, "GET", f"/v1/services/{sid}") == (200, svc)
    table = agent.gw.table(sid)
    assert len(table) == 251 and table.count(svc["backends"][1]["id"]) in range(187, 190)

    status, b = call(agent, "POST", f"/v1/services/{sid}/backends",
                     {"address": "fd00:10:244:1::12", "port": 8080, "state": "quarantined"})
    assert status == 201 and b["state"] == "quarantined"
    assert b["id"] not in agent.gw.table(sid)               # not active: not selected
    status, b = call(agent, "PATCH", f"/v1/services/{sid}/backends/{b['id']}",
                     {"state": "active", "weight": 2})
    assert (status, b["state"], b["weight"]) == (200, "active", 2)
    assert b["id"] in agent.gw.table(sid)
    assert call(agent, "DELETE", f"/v1/services/{sid}/backends/{b['id']}") == (204, None)
    assert b["id"] not in agent.gw.table(sid)

    spec = {**SERVICE, "selection": "random",
            "backends": [SERVICE["backends"][1], {"address": "198.51.100.7", "port": 80}]}
    status, new = call(agent, "PUT", f"/v1/services/{sid}", spec)
    assert status == 200 and new["selection"] == "random" and new["type"] == "NAT4x"
    assert new["backends"][0]["id"] == svc["backends"][1]["id"]   # kept: same id

    # a connection through the datapath shows in /v1/connections and /v1/statistics
    prog = agent.obj.program("gw_ingress")
    out = run_packet(prog, Ether() / IP(src="192.0.2.10", dst="203.0.113.80") /
                     TCP(sport=40000, dport=80, flags="S"))
    assert out.passed
    status, conns = call(agent, "GET", f"/v1/connections?service={sid}")
    assert status == 200 and len(conns) == 1
    c = conns[0]
    assert (c["client"], c["frontend"], c["state"]) == ("192.0.2.10:40000", "203.0.113.80:80",
                                                        "syn-sent")
    assert call(agent, "GET", f"/v1/connections?service={sid + 1}") == (200, [])
    status, stats = call(agent, "GET", "/v1/statistics")
    assert status == 200 and stats["outcomes"]["new"] == 1

    assert call(agent, "DELETE", f"/v1/services/{sid}") == (204, None)
    assert call(agent, "GET", "/v1/services") == (200, [])
    assert agent.gw.table(sid) == []


BAD = [
    # (method, url, body, status, words in the error, field)
    ("POST", "/v1/services", {**SERVICE, "frontend": {"address": "203.0.113.999", "port": 80}},
     400, "not an IPv4 or IPv6 address", "frontend.address"),
    ("POST", "/v1/services", {**SERVICE, "backends": [{"address": "fd00::g", "port": 1}]},
     400, "not an IPv4 or IPv6 address", "backends[0].address"),
    ("POST", "/v1/services", {**SERVICE, "backends": [{"address": "fd00::1", "port": 1,
                                                       "weight": 0}]},
     400, "out of range (1..65535)", "backends[0].weight"),
    ("POST", "/v1/services", {**SERVICE, "backends": [{"address": "fd00::1", "port": 1,
                                                       "weight": 65536}]},
     400, "out of range (1..65535)", "backends[0].weight"),
    ("POST", "/v1/services", SERVICE, 409, "exists already (service 1)", "frontend"),
    ("POST", "/v1/services", {**SERVICE, "frontend": {"address": SNAT6, "port": 80}},
     400, "SNAT address", "frontend.address"),
    ("POST", "/v1/services", {**SERVICE, "colour": "red"}, 400, "unknown field 'colour'", None),
    ("POST", "/v1/services", b"{not json", 400, "not JSON", None),
    ("POST", "/v1/services", None, 400, "needs a JSON body", None),
    ("GET", "/v1/services/7", None, 404, "no service 7", None),
    ("GET", "/v1/services/seven", None, 400, "not a decimal number", "service_id"),
    # numbers are ASCII decimal, one spelling each: no '_', sign, space or leading zero
    ("GET", "/v1/services/0_1", None, 400, "not a decimal number", "service_id"),
    ("GET", "/v1/services/%2B1", None, 400, "not a decimal number", "service_id"),
    ("GET", "/v1/services/%201", None, 400, "not a decimal number", "service_id"),
    ("GET", "/v1/services/01", None, 400, "not a decimal number", "service_id"),
    ("DELETE", "/v1/services/1/backends/1_0", None, 400, "not a decimal number",
     "backend_id"),
    ("GET", "/v1/connections?service=1_0", None, 400, "not a decimal number", "service"),
    ("GET", "/v1/services/0", None, 400, "out of range", "service_id"),
    ("PUT", "/v1/services/7", SERVICE, 404, "no service 7", None),
    ("DELETE", "/v1/services/7", None, 404, "no service 7", None),
    ("POST", "/v1/services/7/backends", {"address": "fd00::1", "port": 1}, 404,
     "no service 7", None),
    ("POST", "/v1/services/1/backends", SERVICE["backends"][0], 409, "already", None),
    ("PATCH", "/v1/services/1/backends/999", {"state": "active"}, 404, "no backend 999", None),
    ("PATCH", "/v1/services/1/backends/1", {}, 400, "at least one field", None),
    ("PATCH", "/v1/services/1/backends/1", {"weight": 100000}, 400, "out of range",
     "weight"),
    ("PATCH", "/v1/services/1/backends/1", {"state": "draining"}, 400, "not one of", "state"),
    ("DELETE", "/v1/services/1/backends/999", None, 404, "no backend 999", None),
    ("GET", "/v1/connections?service=x", None, 400, "not a decimal number", "service"),
    # VIPs (and backends) are unicast
    *[("POST", "/v1/services", {**SERVICE, "frontend": {"address": vip, "port": 80}}, 400,
       f"it is {kind}", "frontend.address")
      for vip, kind in [("255.255.255.255", "the broadcast address"), ("224.0.0.1", "multicast"),
                        ("0.0.0.0", "unspecified"), ("127.0.0.1", "loopback"),
                        ("::", "unspecified"), ("ff02::1", "multicast"), ("::1", "loopback")]],
    # JSON: strict (no NaN) and not deep
    ("POST", "/v1/services", b'{"frontend": {"address": "203.0.113.9", "port": NaN}}', 400,
     "NaN is not a JSON number", None),
    ("POST", "/v1/services", b"[" * 524288, 400, "nested more than 32 deep", None),
    ("POST", "/v1/services", b"[" * 100 + b"]" * 100, 400, "nested more than 32 deep", None),
    ("POST", "/v1/services", b"1" * 5000, 400, "not JSON", None),
    ("GET", "/v1/nothing", None, 404, "no such resource", None),
    ("DELETE", "/v1/services", None, 405, "not allowed", None),
]


@pytest.mark.parametrize("method, url, body, status, words, field", BAD,
                         ids=[f"{m} {u} {s}" for m, u, _, s, _, _ in BAD])
def test_malformed_requests_are_refused_and_change_nothing(agent, method, url, body, status,
                                                           words, field):
    assert call(agent, "POST", "/v1/services", SERVICE)[0] == 201
    before = agent.snapshot()
    got, answer = call(agent, method, url, body)
    assert got == status, answer
    assert words in answer["error"]
    assert answer.get("field") == field
    assert agent.snapshot() == before
