"""The OpenAPI document against the running agent, with schemathesis: requests generated from
the document (valid ones and invalid ones) go through the agent's unix socket; every answer
must be a documented status with a documented body, invalid requests must be refused with a
4xx, and nothing may fail with a 5xx."""

from __future__ import annotations

import socket

import pytest
import requests
import schemathesis
import urllib3
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               negative_data_rejection,
                                               response_schema_conformance,
                                               status_code_conformance)

from lab.datapath.gateway.model import openapi

from gateway_agent import running_agent

pytestmark = pytest.mark.root

schema = schemathesis.openapi.from_dict(openapi())
schema.config.generation.update(modes=["positive", "negative"])

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, path: str, **kw):
        super().__init__("localhost", **kw)
        self.unix_path = path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.unix_path)
        return sock


class _UnixPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, path: str):
        super().__init__("localhost")
        self.unix_path = path

    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self.unix_path)


class UnixAdapter(requests.adapters.HTTPAdapter):
    """requests over the agent's unix socket, whatever the URL's host."""

    def __init__(self, path: str):
        super().__init__()
        self.pool = _UnixPool(path)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        return self.pool

    def get_connection(self, url, proxies=None):
        return self.pool

    def close(self) -> None:
        self.pool.close()


@pytest.fixture(scope="module")
def agent_session(bpf_build):
    with running_agent(bpf_build / "gateway.o", "openapi") as agent:
        # some services, so that ids in paths find something as well as nothing
        from lab.datapath.gateway import Service
        for i in range(3):
            agent.gw.add_service(Service.from_dict({
                "frontend": {"address": f"203.0.113.{80 + i}", "port": 80},
                "backends": [{"address": f"fd00:10:244:1::{10 + i}", "port": 8080}]}))
        session = requests.Session()
        session.mount("http://", UnixAdapter(str(agent.socket)))
        yield session
        session.close()


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_agent_conforms_to_its_document(case, agent_session):
    case.call_and_validate(base_url="http://localhost", session=agent_session, checks=CHECKS)
