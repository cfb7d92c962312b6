"""The service-count sweep: N services programmed on whichever datapath serves them in a lab,
kube-proxy's rules on a legacy node or the stateful gateway's maps, timed the same way.

    target = service_datapaths(lab)["node1"]     # or ["gw"]
    seconds = target.program(10000, endpoints=1)  # a full sync of N services
    seconds = target.change_one()                 # one endpoint of one service replaced
    target.size()                                 # rules or map entries it holds

Both sides time only the programming: the rule text (kube-proxy) and the service objects
(gateway) are prepared beforehand; the time is iptables-restore's or nft's wall time for the
batch, or the gateway's map updates (backends, selection tables, service entries). Both
start from empty for every sweep point (what they held is removed first, untimed), as a
control plane that starts up and syncs N services.

The synthetic services take ClusterIPs from the Service CIDR (after the exposed ones) and
endpoints of their own from the endpoint CIDR, addresses no pod has: they load the datapath
(lookups, rules) without traffic; the measured traffic goes to the exposed services.
"""

from __future__ import annotations

import functools
import time
from ipaddress import ip_address, ip_network
from typing import Any, Protocol

from lab.datapath.kubeproxy import node as kp_node
from lab.datapath.kubeproxy.services import ServiceError, Sweep, synthesize
from lab.errors import LabError

SERVICE_CIDR = "fd00:10:96::/108"
ENDPOINT_CIDR = "fd00:10:244:ff00::/64"


class ServiceDatapath(Protocol):
    name: str

    def program(self, count: int, endpoints: int | None = None) -> float: ...

    def change_one(self) -> float: ...

    def size(self) -> int: ...


class KubeProxyServices:
    """kube-proxy on a legacy node (lab.datapath.kubeproxy.node.KubeProxy)."""

    def __init__(self, kp: kp_node.KubeProxy):
        self.kp = kp
        self.name = f"kube-proxy {kp.config.mode} on {kp.node.name}"

    def program(self, count: int, endpoints: int | None = None) -> float:
        return self.kp.program(count, endpoints)

    def change_one(self) -> float:
        return self.kp.change_one()

    def size(self) -> int:
        return self.kp.size()


class GatewayServices:
    """The stateful gateway on NODE: synthetic services beside the topology's own."""

    def __init__(self, lab: Any, node: str, service_cidr: str = SERVICE_CIDR,
                 endpoint_cidr: str = ENDPOINT_CIDR, endpoints: int = 1, port: int = 80):
        self.lab, self.node = lab, node
        self.name = f"gateway on {node}"
        self.service_cidr, self.endpoint_cidr = service_cidr, endpoint_cidr
        self.endpoints, self.port = endpoints, port
        self.added: list[Any] = []  # the synthetic services, with their ids
        self.changes = 0
        self._new = 0

    def _gateway(self):
        from lab.bpf.topology import maps_pin_dir
        from lab.datapath.gateway.control import OBJECT, Gateway

        return Gateway.open(maps_pin_dir(self.lab.pin_dir, self.node, OBJECT))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one adapter per lab, a few sweep points
    def _services(self, count: int, endpoints: int, reserved: frozenset[str]) -> tuple:
        from lab.datapath.gateway.model import Backend, Frontend, Service

        sweep = Sweep(count + len(reserved), endpoints, self.service_cidr, self.endpoint_cidr,
                      port=self.port)
        out = []
        for s in synthesize(sweep):
            if s.cluster_ip in reserved:
                continue
            out.append(Service(Frontend(ip_address(s.cluster_ip), s.port),
                               tuple(Backend(ip_address(e.ip), e.port) for e in s.endpoints),
                               "random"))
        return tuple(out[:count])

    def program(self, count: int, endpoints: int | None = None) -> float:
        endpoints = self.endpoints if endpoints is None else endpoints
        with self._gateway() as gw:
            if self.added:
                gw.delete_services(self.added)
                self.added = []
            gw.flush_connections()
            net = ip_network(self.service_cidr)
            reserved = frozenset(str(s.frontend.address) for s in gw.services()
                                 if s.frontend.address in net)
            services = self._services(count, endpoints, reserved)
            started = time.perf_counter()
            self.added = gw.add_services(services)
            return time.perf_counter() - started

    def change_one(self) -> float:
        from lab.datapath.gateway.model import Backend

        if not self.added:
            raise LabError(f"{self.name}: no synthetic service to change")
        i = len(self.added) // 2
        svc = self.added[i]
        last = int(ip_network(self.endpoint_cidr).broadcast_address)
        fresh = Backend(ip_address(last - 1 - self.changes), svc.backends[0].port)
        with self._gateway() as gw:
            started = time.perf_counter()
            self.added[i] = gw.change_backends(svc, [fresh, *svc.backends[1:]])
            seconds = time.perf_counter() - started
        self.changes += 1
        return seconds

    def serves(self, address: str) -> bool:
        """Does the topology give the gateway a service at ADDRESS?"""
        from lab.datapath.gateway.topology import config_for

        return any(str(s.frontend.address) == address
                   for s in config_for(self.lab.topology, self.node).services)

    def new_connections(self) -> int:
        """Connections the gateway opened (its `new` outcome) since the previous call."""
        with self._gateway() as gw:
            total = gw.statistics()["outcomes"].get("new", 0)
        since, self._new = total - self._new, total
        return since

    def size(self) -> int:
        """Map entries the services take: service entries, backends, table slots."""
        with self._gateway() as gw:
            services = len(list(gw.maps["gw_services"].keys()))
            backends = len(list(gw.maps["gw_backends"].keys()))
            return 2 * services + backends


_gateways: dict[tuple[str, str], GatewayServices] = {}


def service_datapaths(lab: Any) -> dict[str, ServiceDatapath]:
    """Node name -> what programs services there: kube-proxy on every legacy node, the
    gateway on every node that runs it."""
    from lab.datapath.gateway.topology import gateway_nodes

    out: dict[str, ServiceDatapath] = {}
    for name in lab.topology.nodes:
        kp = kp_node.instance(lab, name)
        if kp is not None:
            out[name] = KubeProxyServices(kp)
    for name in gateway_nodes(lab.topology):
        key = (lab.instance or lab.name, name)
        if key not in _gateways:
            _gateways[key] = GatewayServices(lab, name)
        out[name] = _gateways[key]
    return out


def check_count(count: int, service_cidr: str = SERVICE_CIDR) -> None:
    from lab.datapath.kubeproxy.services import capacity

    if count > capacity(service_cidr):
        raise ServiceError(f"{count} services do not fit the Service CIDR {service_cidr}")
