"""TranslatorConfig: validation with errors that say where and what, from a topology file's
mapping and from `lab xlate` options."""

from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from lab.datapath.translator.addrmap import NON_GLOBAL_V4
from lab.datapath.translator import TranslatorConfig
from lab.errors import InputError
from lab.errors import UsageError


def test_full_config_from_a_mapping():
    cfg = TranslatorConfig.from_dict({
        "prefix": "64:ff9b:1::/48",
        "eam": [{"ipv4": "198.51.100.0/24", "ipv6": "2001:db8:6::/120"},
                "2001:db8:7::/128=203.0.113.7/32"],
        "allow": ["192.0.2.0/24"], "exclude": ["192.0.2.1/32"],
        "icmp_errors": True, "icmp_source4": "192.0.2.1", "icmp_source6": "2001:db8::1",
        "pool4": "192.0.2.254", "mtu4": 1500, "mtu6": 1480, "zero_tos": True})
    assert cfg.prefix.length == 48
    assert [str(e) for e in cfg.eam] == ["2001:db8:6::/120=198.51.100.0/24",
                                         "2001:db8:7::/128=203.0.113.7/32"]
    assert cfg.allow == (IPv4Network("192.0.2.0/24"),)
    assert cfg.icmp_source6 == IPv6Address("2001:db8::1")
    assert cfg.pool4 == IPv4Address("192.0.2.254")
    assert TranslatorConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("data,path,why", [
    ({}, (), "nothing to translate"),
    ({"prefix": "2001:db8::/47"}, ("prefix",), "RFC 6052 allows"),
    ({"prefix": "64:ff9b::/96", "eam": [{"ipv4": "10.0.0.0/24", "ipv6": "2001:db8::/112"}]},
     ("eam", 0), "same length"),
    ({"prefix": "64:ff9b::/96", "eam": [{"ipv4": "10.0.0.0/24"}]}, ("eam", 0), "expected"),
    ({"prefix": "64:ff9b::/96", "eam": "2001:db8::/120=10.0.0.0/24"}, ("eam",), "a list"),
    ({"prefix": "64:ff9b::/96", "allow": ["2001:db8::/64"]}, ("allow", 0), "not an IPv4"),
    ({"prefix": "64:ff9b::/96", "allow": ["10.0.0.1/8"]}, ("allow", 0), "host bits"),
    ({"prefix": "64:ff9b::/96", "icmp_errors": True}, ("icmp_errors",), "icmp_source4"),
    ({"prefix": "64:ff9b::/96", "icmp_errors": "yes"}, ("icmp_errors",), "true or false"),
    ({"prefix": "64:ff9b::/96", "mtu6": 1000}, ("mtu6",), "1280..65535"),
    ({"prefix": "64:ff9b::/96", "pool4": "2001:db8::1"}, ("pool4",), "not an IPv4 address"),
    ({"prefix": "64:ff9b::/96", "prefx": "x"}, ("prefx",), "unknown setting"),
])
def test_errors_name_the_setting(data, path, why):
    with pytest.raises(InputError, match=why) as e:
        TranslatorConfig.from_dict(data)
    assert e.value.path == path
    assert isinstance(e.value, UsageError)


def test_error_text_locates_list_items():
    with pytest.raises(InputError) as e:
        TranslatorConfig.from_dict({"prefix": "64:ff9b::/96",
                                    "eam": ["2001:db8::/120=10.0.0.0/24", "bad"]})
    assert str(e.value).startswith("translator eam[1]: EAM 'bad'")


def test_command_line_options():
    cfg = TranslatorConfig.from_args("64:ff9b::/96", ["2001:db8:6::/120=198.51.100.0/24"],
                                     ["192.0.2.0/24"])
    assert cfg.prefix.is_well_known and len(cfg.eam) == 1 and cfg.allow
    with pytest.raises(UsageError, match="^--eam: EAM"):
        TranslatorConfig.from_args(None, ["2001:db8:6::/119=198.51.100.0/24"])
    with pytest.raises(UsageError, match="^--prefix: "):
        TranslatorConfig.from_args("2001:db8::/33")


def test_well_known_prefix_excludes_the_non_global_ranges():
    cfg = TranslatorConfig.from_dict({"prefix": "64:ff9b::/96", "exclude": ["8.8.8.0/24"]})
    ranges = cfg.mapper().excluded_ranges
    assert IPv4Network("8.8.8.0/24") in ranges
    assert all(any(n.subnet_of(r) for r in ranges) for n in NON_GLOBAL_V4)
    local = TranslatorConfig.from_dict({"prefix": "64:ff9b:1::/48"})
    assert local.mapper().excluded_ranges == ()


def test_own_addresses():
    cfg = TranslatorConfig.from_dict({"prefix": "64:ff9b:1::/48",
                                      "own": [{"ipv4": "192.0.2.1", "ipv6": "2001:db8::1"}]})
    (e,) = cfg.eam
    assert e.own and str(e.v4) == "192.0.2.1/32" and str(e.v6) == "2001:db8::1/128"
    assert cfg.mapper().to6("192.0.2.1") == IPv6Address("2001:db8::1")
    assert TranslatorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="expected") as err:
        TranslatorConfig.from_dict({"prefix": "64:ff9b:1::/48", "own": ["192.0.2.1"]})
    assert err.value.path == ("own", 0)
    with pytest.raises(InputError, match="does not appear"):
        TranslatorConfig.from_dict({"prefix": "64:ff9b:1::/48",
                                    "own": [{"ipv4": "192.0.2.0/24", "ipv6": "2001:db8::1"}]})
