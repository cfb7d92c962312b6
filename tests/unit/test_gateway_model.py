"""The gateway's values (lab/datapath/gateway/model.py): parsed from JSON-like data and from
the command line, checked against the OpenAPI schemas, with errors naming the field."""

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest

from lab.datapath.gateway.model import (Backend, ConflictError, Frontend, GatewayConfig,
                                        Service, Settings, check_service,
                                        http_status)
from lab.errors import InputError


def svc_dict(**kw):
    d = {"frontend": {"address": "192.0.2.100", "port": 80},
         "backends": [{"address": "2001:db8::10", "port": 8080},
                      {"address": "2001:db8::11", "port": 8080, "weight": 3,
                       "state": "terminating"}]}
    d.update(kw)
    return d


def test_service_from_dict_with_defaults():
    svc = Service.from_dict(svc_dict())
    assert svc.frontend == Frontend(IPv4Address("192.0.2.100"), 80, "tcp")
    assert svc.selection == "maglev" and svc.type == "NAT46"
    assert [b.weight for b in svc.backends] == [1, 3]
    assert [b.state for b in svc.backends] == ["active", "terminating"]
    assert [b.address for b in svc.active()] == [IPv6Address("2001:db8::10")]
    assert Service.from_dict(svc.spec()) == svc


@pytest.mark.parametrize("change, path, words", [
    ({"frontend": {"address": "192.0.2.300", "port": 80}}, "frontend.address", "not an IPv4"),
    ({"frontend": {"address": "192.0.2.1", "port": 0}}, "frontend.port", "out of range"),
    ({"frontend": {"address": "192.0.2.1", "port": 80, "protocol": "sctp"}},
     "frontend.protocol", "not one of"),
    ({"frontend": {"address": "224.0.0.1", "port": 80}}, "frontend.address", "multicast"),
    ({"backends": [{"address": "2001:db8::1", "port": 80, "weight": 0}]},
     "backends[0].weight", "out of range"),
    ({"backends": [{"address": "2001:db8::1", "port": 80, "weight": 70000}]},
     "backends[0].weight", "out of range"),
    ({"backends": [{"address": "2001:db8::1", "port": 80, "state": "draining"}]},
     "backends[0].state", "not one of"),
    ({"backends": [{"address": "fe80::zz", "port": 80}]}, "backends[0].address", "not an"),
    ({"backends": [{"address": "::ffff:192.0.2.1", "port": 80}]}, "backends[0].address",
     "IPv4-mapped"),
    ({"selection": "round-robin"}, "selection", "not one of"),
    ({"colour": "blue"}, "", "unknown field 'colour'"),
    ({"backends": [{"address": "2001:db8::1", "port": 80}] * 2}, "backends[1]", "twice"),
])
def test_bad_service(change, path, words):
    with pytest.raises(InputError) as e:
        Service.from_dict(svc_dict(**change))
    assert e.value.path == tuple(_path(path))
    assert words in e.value.message
    assert http_status(e.value) in (400, 409)


def _path(text):
    import re
    out = []
    for name, index in re.findall(r"([a-z_]+)|\[(\d+)\]", text):
        out.append(int(index) if index else name)
    return out


def test_cli_forms():
    assert Frontend.parse("[2001:db8::1]:53/udp") == Frontend(IPv6Address("2001:db8::1"), 53,
                                                               "udp")
    assert str(Frontend.parse("192.0.2.1:80")) == "192.0.2.1:80/TCP"
    b = Backend.parse("[2001:db8::10]:8080,weight=2,state=quarantined")
    assert (b.port, b.weight, b.state) == (8080, 2, "quarantined")
    for bad in ("2001:db8::1:80", "192.0.2.1", "192.0.2.1:x", "192.0.2.1:80,weight=0",
                "192.0.2.1:80,colour=red", "[2001:db8::1]:80/icmp"):
        with pytest.raises(InputError):
            (Frontend if "/" in bad else Backend).parse(bad)


@pytest.mark.parametrize("text", [
    "192.0.2.1:8_0", "192.0.2.1:+80", "192.0.2.1: 80", "192.0.2.1:080", "192.0.2.1:\u0668\u0660",
    "192.0.2.1:\uff18\uff10", "[2001:db8::1]:1_000", "192.0.2.1:80,weight=1_0",
    "192.0.2.1:80,weight=+2", "192.0.2.1:80,weight=\u0662"])
def test_cli_numbers_are_ascii_decimal(text):
    with pytest.raises(InputError, match="not a decimal number"):
        Backend.parse(text)
    if "," not in text:
        with pytest.raises(InputError, match="not a decimal number"):
            Frontend.parse(text + "/tcp")


@pytest.mark.parametrize("vip, kind", [
    ("255.255.255.255", "the broadcast address"), ("239.1.1.1", "multicast"),
    ("0.0.0.0", "unspecified"), ("127.0.0.53", "loopback"), ("[ff05::2]", "multicast"),
    ("[::]", "unspecified"), ("[::1]", "loopback")])
def test_vips_are_unicast(vip, kind):
    with pytest.raises(InputError, match=f"it is {kind}"):
        Frontend.parse(f"{vip}:80")
    with pytest.raises(InputError, match=f"it is {kind}") as e:
        Service.from_dict(svc_dict(frontend={"address": vip.strip("[]"), "port": 80}))
    assert e.value.path == ("frontend", "address")
    with pytest.raises(InputError, match="takes no zone"):
        Frontend.parse("[fe80::1%eth0]:80")


def test_service_list_shows_the_backend_ids_the_api_uses():
    from lab.datapath.gateway.cli import table
    svc = Service.from_dict(svc_dict())
    svc = svc.with_backends([replace(b, id=i) for b, i in zip(svc.backends, (19, 7))])
    out = table([replace(svc, id=3)], None)
    assert "19 => [2001:db8::10]:8080/TCP (active, weight 1)" in out
    assert "7 => [2001:db8::11]:8080/TCP (terminating, weight 3)" in out
    assert "1 =>" not in out and "2 =>" not in out


def test_service_needs_the_snat_family_and_a_distinct_vip():
    svc = Service.from_dict(svc_dict())
    with pytest.raises(InputError, match="no IPv6 SNAT address") as e:
        check_service(svc, Settings(snat4=IPv4Address("192.0.2.1")))
    assert e.value.path == ("backends", 0, "address")
    with pytest.raises(InputError, match="SNAT address"):
        check_service(svc, Settings(snat4=IPv4Address("192.0.2.100"),
                                    snat6=IPv6Address("2001:db8::1")))


def test_settings():
    s = Settings.from_dict({"snat6": "2001:db8::1", "ports": {"min": 2000, "max": 3000},
                            "timeouts": {"tcp": 100}, "table_size": 4093})
    assert (s.port_min, s.port_max, s.table_size, s.timeouts.tcp, s.timeouts.syn) == \
        (2000, 3000, 4093, 100, 60)
    assert Settings.from_dict(s.to_dict()) == s
    for bad, path in (({"table_size": 16380}, ("table_size",)),
                      ({"ports": {"min": 3000, "max": 2000}}, ("ports", "min")),
                      ({"snat4": "2001:db8::1"}, ("snat4",)),
                      ({"timeouts": {"close": 0}}, ("timeouts", "close"))):
        with pytest.raises(InputError) as e:
            Settings.from_dict(bad)
        assert e.value.path == path


def test_gateway_config_refuses_duplicate_frontends():
    data = {"settings": {"snat6": "2001:db8::1"}, "services": [svc_dict(), svc_dict()]}
    with pytest.raises(ConflictError) as e:
        GatewayConfig.from_dict(data, ("datapath", "gateway"))
    assert e.value.path == ("datapath", "gateway", "services", 1, "frontend")


def test_gateway_config_defaults_fill_settings():
    cfg = GatewayConfig.from_dict({"services": [svc_dict()]},
                                  defaults={"snat6": "2001:db8::1", "snat4": "192.0.2.1"})
    assert cfg.settings.snat6 == IPv6Address("2001:db8::1")
    assert len(cfg.services) == 1
