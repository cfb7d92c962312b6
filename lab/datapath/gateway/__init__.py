"""The stateful NAT46/NAT64 gateway and L4 load balancer's control plane (bpf/gateway.c).

    model     services, backends, settings: parsed and checked (schemas: openapi.yaml)
    maglev    Maglev lookup tables, weighted
    control   Gateway: the one implementation that writes the gateway's pinned maps
    api       the HTTP/JSON API (openapi.yaml), a WSGI application over a Gateway
    agent     `lab agent`: the API on a root-only unix socket
    cli       `lab service add|del|list`, `lab agent`
    topology  a topology file's `datapath.gateway` section: checked at load, applied at `lab up`
    bench     the `lab bench prog` case of the stateful program

    from lab.datapath.gateway import Gateway, Service, Backend, Frontend
"""

from lab.datapath.gateway.control import OBJECT, PROG_TC, PROG_XDP, Connection, Gateway
from lab.datapath.gateway.model import (Backend, ConflictError, Frontend, GatewayConfig,
                                        NotFoundError, Service, Settings, Timeouts)

__all__ = ["OBJECT", "PROG_TC", "PROG_XDP", "Backend", "ConflictError", "Connection",
           "Frontend", "Gateway", "GatewayConfig", "NotFoundError", "Service", "Settings",
           "Timeouts"]
