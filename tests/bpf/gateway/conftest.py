"""Fixtures for the gateway's packet tests: bpf/gateway.c loaded afresh for each test (its
maps start empty), and `gut`, the gateway under test at tc or XDP (every test taking it runs
at both)."""

import pytest

from gw_helpers import HOOKS, GatewayUnderTest


@pytest.fixture
def gateway_object(load_bpf):
    return load_bpf("gateway")


@pytest.fixture(params=HOOKS)
def gut(request, gateway_object):
    return GatewayUnderTest(gateway_object, request.param)
