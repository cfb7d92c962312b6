"""Fixtures for the gateway's packet tests: bpf/gateway.c, loaded once per session and reset
before each test (every map as load() left it: no services, no connections, zero counts),
and `gut`, the gateway under test at tc or XDP (every test taking it runs at both)."""

import pytest

from lab.bpf.object import BpfObject

from gw_helpers import HOOKS, GatewayUnderTest


@pytest.fixture(scope="session")
def loaded_gateway(bpf_build):
    # One pass through the verifier: a load per test took most of these tests' time, and a
    # minute apiece in an emulated kernel (tests/vm).
    obj = BpfObject(bpf_build / "gateway.o").load()
    yield obj
    obj.close()


@pytest.fixture
def gateway_object(loaded_gateway):
    loaded_gateway.reset_maps()
    return loaded_gateway


@pytest.fixture(params=HOOKS)
def gut(request, gateway_object):
    return GatewayUnderTest(gateway_object, request.param)
