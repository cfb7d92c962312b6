"""The gateway's services, backends and settings as values: parsed from the API's JSON, a
topology file's `datapath.gateway` section or the command line, and checked.

The shape of every input (fields, types, ranges, enumerations) is defined once, by the
component schemas of the OpenAPI document next to this module (openapi.yaml); what a schema
cannot say (addresses that parse, duplicates, address families) is checked here. Errors
carry the path of the bad value inside the input, so the API can name the field and a
topology file error its line and column.
"""

from __future__ import annotations

import copy

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lab.datapath.gateway import maglev
from lab.digits import parse_int
from lab.errors import InputError
from lab.schema import OBJECT, input_error, validator

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")

IPAddress = IPv4Address | IPv6Address
PathT = tuple[str | int, ...]

PROTOCOLS = {"tcp": 6, "udp": 17}
SELECTIONS = ("maglev", "random")
STATES = ("active", "terminating", "quarantined")
LIMITED_BROADCAST = IPv4Address("255.255.255.255")


class NotFoundError(InputError):
    """The request names a service or backend that does not exist (HTTP 404)."""


class ConflictError(InputError):
    """The request conflicts with what exists (HTTP 409)."""


def http_status(e: InputError) -> int:
    """The HTTP status the API answers a refused request with: bad input is 400."""
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, ConflictError):
        return 409
    return 400


# --- schemas ----------------------------------------------------------------------------------

@functools.cache
def openapi() -> dict[str, Any]:
    with open(OPENAPI_PATH) as f:
        return yaml.safe_load(f)


@functools.cache
def _validator(name: str) -> jsonschema.Validator:
    doc = openapi()
    # The component, resolving its $refs inside the document (OpenAPI 3.1 schemas are JSON
    # Schema 2020-12).
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return validator(schema, format_checker=jsonschema.FormatChecker())


def schema_default(name: str, prop: str) -> Any:
    """The default a component schema gives a property."""
    s = openapi()["components"]["schemas"][name]["properties"][prop]
    return s.get("default")


def check(name: str, data: Any, path: PathT = ()) -> None:
    """Check DATA against component schema NAME; raise InputError at the first problem."""
    err = input_error(_validator(name).iter_errors(data), path, OBJECT)
    if err is not None:
        raise err


# --- values ---------------------------------------------------------------------------------

def parse_address(text: Any, path: PathT, what: str = "address") -> IPAddress:
    """A unicast address a gateway can use: a VIP, a backend, a SNAT address."""
    try:
        addr = ipaddress.ip_address(text if isinstance(text, str) else str(text))
    except ValueError:
        raise InputError(f"'{text}' is not an IPv4 or IPv6 {what}", path=path) from None
    if addr.version == 6 and addr.scope_id is not None:
        raise InputError(f"{addr}: a {what} takes no zone (%{addr.scope_id})", path=path)
    kind = ("multicast" if addr.is_multicast else "unspecified" if addr.is_unspecified else
            "loopback" if addr.is_loopback else
            "the broadcast address" if addr == LIMITED_BROADCAST else None)
    if kind is not None:
        raise InputError(f"{addr} cannot be a {what}: it is {kind} (multicast, "
                         "unspecified, loopback and broadcast addresses are refused)",
                         path=path)
    if addr.version == 6 and addr.ipv4_mapped is not None:
        raise InputError(f"{addr} is IPv4-mapped: write the IPv4 address "
                         f"{addr.ipv4_mapped}", path=path)
    return addr


def endpoint(addr: IPAddress, port: int) -> str:
    """192.0.2.1:80, [2001:db8::1]:80"""
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


def _split_endpoint(text: str, path: PathT, what: str) -> tuple[IPAddress, int]:
    """ADDR:PORT with IPv6 in brackets."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise InputError(f"'{text}': expected ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)",
                         path=path)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InputError(f"'{text}': write an IPv6 {what} in brackets, [ADDRESS]:PORT",
                           path=path)
    addr = parse_address(host, path, what)
    try:
        p = parse_int(port, 1, 65535)
    except ValueError as e:
        raise InputError(f"'{text}': port {e}", path=path) from None
    return addr, p


def _with(obj: Any, **changes: Any) -> Any:
    """A copy of a frozen model object with CHANGES, bypassing __post_init__'s schema
    check: for fields that are not part of what was checked (ids the gateway assigns)."""
    new = copy.copy(obj)
    for key, value in changes.items():
        object.__setattr__(new, key, value)
    return new


@dataclass(frozen=True)
class Frontend:
    """A service's VIP, port and protocol."""
    address: IPAddress
    port: int
    protocol: str = "tcp"

    def __post_init__(self) -> None:
        check("Frontend", self.to_dict())

    @property
    def family(self) -> int:
        return self.address.version

    @classmethod
    def from_dict(cls, data: Any, path: PathT = ()) -> Frontend:
        check("Frontend", data, path)
        return cls(parse_address(data["address"], path + ("address",), "frontend address"),
                   int(data["port"]), data.get("protocol", schema_default("Frontend", "protocol")))

    @classmethod
    def parse(cls, text: str) -> Frontend:
        """ADDRESS:PORT[/PROTOCOL], IPv6 in brackets: 192.0.2.100:80/tcp, [2001:db8::1]:53/udp"""
        ep, _, proto = text.partition("/")
        addr, port = _split_endpoint(ep, (), "frontend address")
        proto = (proto or "tcp").lower()
        if proto not in PROTOCOLS:
            raise InputError(f"'{text}': protocol '{proto}' is not one of: "
                               f"{', '.join(PROTOCOLS)}")
        return cls(addr, port, proto)

    def to_dict(self) -> dict[str, Any]:
        return {"address": str(self.address), "port": self.port, "protocol": self.protocol}

    def __str__(self) -> str:
        """As `cilium service list` writes it: 192.0.2.100:80/TCP"""
        return f"{endpoint(self.address, self.port)}/{self.protocol.upper()}"


@dataclass(frozen=True)
class Backend:
    address: IPAddress
    port: int
    weight: int = 1
    state: str = "active"
    id: int = 0             # assigned by the gateway

    def __post_init__(self) -> None:
        check("BackendSpec", self.spec())

    @property
    def family(self) -> int:
        return self.address.version

    @property
    def endpoint(self) -> tuple[IPAddress, int]:
        return self.address, self.port

    @property
    def name(self) -> str:
        """Its Maglev name: the permutation follows the backend, whatever its id."""
        return endpoint(self.address, self.port)

    @classmethod
    def from_dict(cls, data: Any, path: PathT = ()) -> Backend:
        check("BackendSpec", data, path)
        return cls(parse_address(data["address"], path + ("address",), "backend address"),
                   int(data["port"]),
                   int(data.get("weight", schema_default("BackendSpec", "weight"))),
                   data.get("state", schema_default("BackendSpec", "state")))

    @classmethod
    def parse(cls, text: str) -> Backend:
        """ADDRESS:PORT[,weight=W][,state=S]: [fd00::10]:8080,weight=2"""
        ep, *opts = text.split(",")
        addr, port = _split_endpoint(ep, (), "backend address")
        kw: dict[str, Any] = {}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if key == "weight" and sep:
                try:
                    kw["weight"] = parse_int(value)
                except ValueError as e:
                    raise InputError(f"'{text}': weight {e}") from None
            elif key == "state" and sep:
                kw["state"] = value
            else:
                raise InputError(f"'{text}': unknown option '{opt}' (weight=W, state=S)")
        try:
            return cls(addr, port, **kw)
        except InputError as e:
            raise InputError(f"'{text}': {e.message}") from None

    def spec(self) -> dict[str, Any]:
        return {"address": str(self.address), "port": self.port, "weight": self.weight,
                "state": self.state}

    def with_id(self, id: int) -> Backend:
        """This backend with the id the gateway gave it (the spec, checked when it was
        made, is the same: not checked again)."""
        return _with(self, id=id)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.spec()}


@dataclass(frozen=True)
class Service:
    frontend: Frontend
    backends: tuple[Backend, ...] = ()
    selection: str = "maglev"
    id: int = 0             # assigned by the gateway

    def __post_init__(self) -> None:
        object.__setattr__(self, "backends", tuple(self.backends))
        check("Selection", self.selection, ("selection",))
        seen: dict[tuple[IPAddress, int], int] = {}
        for i, b in enumerate(self.backends):
            if b.endpoint in seen:
                raise ConflictError(f"backend {b.name} is listed twice (also at "
                                    f"backends[{seen[b.endpoint]}])", path=("backends", i))
            seen[b.endpoint] = i

    def with_ids(self, id: int, backend_ids: Sequence[int]) -> Service:
        """This service with the ids the gateway gave it and its backends (nothing else
        changes: not checked again)."""
        return _with(self, id=id, backends=tuple(b.with_id(i) for b, i in
                                                 zip(self.backends, backend_ids, strict=True)))

    @classmethod
    def from_dict(cls, data: Any, path: PathT = ()) -> Service:
        check("ServiceSpec", data, path)
        frontend = Frontend.from_dict(data["frontend"], path + ("frontend",))
        backends = tuple(Backend.from_dict(b, path + ("backends", i))
                         for i, b in enumerate(data.get("backends", [])))
        selection = data.get("selection", schema_default("ServiceSpec", "selection"))
        try:
            return cls(frontend, backends, selection)
        except InputError as e:
            raise e.within(*path) from None

    @property
    def type(self) -> str:
        """NAT46: an IPv4 frontend, IPv6 backends; x: both families or none."""
        fams = {b.family for b in self.backends}
        return f"NAT{self.frontend.family}{fams.pop() if len(fams) == 1 else 'x'}"

    def active(self) -> list[Backend]:
        return [b for b in self.backends if b.state == "active"]

    def backend(self, backend_id: int) -> Backend:
        for b in self.backends:
            if b.id == backend_id:
                return b
        raise NotFoundError(f"service {self.id} has no backend {backend_id}")

    def spec(self) -> dict[str, Any]:
        return {"frontend": self.frontend.to_dict(), "selection": self.selection,
                "backends": [b.spec() for b in self.backends]}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "frontend": self.frontend.to_dict(),
                "selection": self.selection, "type": self.type,
                "backends": [b.to_dict() for b in self.backends]}

    def with_backends(self, backends: Sequence[Backend]) -> Service:
        return replace(self, backends=tuple(backends))


@dataclass(frozen=True)
class Timeouts:
    syn: int = 60
    tcp: int = 21600
    close: int = 10
    other: int = 60


@dataclass(frozen=True)
class Settings:
    """The gateway's settings (gw_config). Without SNAT addresses, services with backends
    of that family are refused."""
    snat4: IPv4Address | None = None
    snat6: IPv6Address | None = None
    port_min: int = 1024
    port_max: int = 65535
    table_size: int = maglev.DEFAULT_TABLE_SIZE
    hash_seed: int = 0
    timeouts: Timeouts = field(default_factory=Timeouts)
    mtu4: int = 0
    mtu6: int = 0
    zero_tos: bool = False

    def __post_init__(self) -> None:
        check("Settings", self.to_dict())
        if self.port_min > self.port_max:
            raise InputError(f"{self.port_min} is above max {self.port_max}",
                               path=("ports", "min"))
        try:
            maglev.check_table_size(self.table_size)
        except ValueError as e:
            raise InputError(str(e), path=("table_size",)) from None

    @classmethod
    def from_dict(cls, data: Any, path: PathT = ()) -> Settings:
        check("Settings", data, path)
        kw: dict[str, Any] = {}
        for key, version in (("snat4", 4), ("snat6", 6)):
            if key in data:
                addr = parse_address(data[key], path + (key,), "SNAT address")
                if addr.version != version:
                    raise InputError(f"{addr} is not an IPv{version} address",
                                     path=path + (key,))
                kw[key] = addr
        if "ports" in data:
            kw["port_min"], kw["port_max"] = int(data["ports"]["min"]), int(data["ports"]["max"])
        for key in ("table_size", "hash_seed", "mtu4", "mtu6"):
            if key in data:
                kw[key] = int(data[key])  # JSON Schema integers may be written 16381.0
        if "zero_tos" in data:
            kw["zero_tos"] = data["zero_tos"]
        if "timeouts" in data:
            kw["timeouts"] = Timeouts(**{k: int(v) for k, v in data["timeouts"].items()})
        try:
            return cls(**kw)
        except InputError as e:
            raise e.within(*path) from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.snat4 is not None:
            out["snat4"] = str(self.snat4)
        if self.snat6 is not None:
            out["snat6"] = str(self.snat6)
        out["ports"] = {"min": self.port_min, "max": self.port_max}
        out["table_size"] = self.table_size
        out["hash_seed"] = self.hash_seed
        t = self.timeouts
        out["timeouts"] = {"syn": t.syn, "tcp": t.tcp, "close": t.close, "other": t.other}
        out["mtu4"], out["mtu6"], out["zero_tos"] = self.mtu4, self.mtu6, self.zero_tos
        return out

    def snat(self, family: int) -> IPAddress | None:
        return self.snat4 if family == 4 else self.snat6


@dataclass(frozen=True)
class GatewayConfig:
    """A topology file's `datapath.gateway` section: settings and services."""
    settings: Settings = field(default_factory=Settings)
    services: tuple[Service, ...] = ()
    conntrack_entries: int | None = None   # None: the object's own size
    max_services: int | None = None        # None: the object's own (GW_MAX_SERVICES)

    @classmethod
    def from_dict(cls, data: Any, path: PathT = (),
                  defaults: Mapping[str, Any] | None = None) -> GatewayConfig:
        """DEFAULTS fill settings the section leaves out (e.g. the node's addresses)."""
        check("GatewayConfig", data, path)
        settings_data = {**(defaults or {}), **data.get("settings", {})}
        settings = Settings.from_dict(settings_data, path + ("settings",))
        services = tuple(Service.from_dict(s, path + ("services", i))
                         for i, s in enumerate(data.get("services", [])))
        seen: dict[Frontend, int] = {}
        for i, svc in enumerate(services):
            if svc.frontend in seen:
                raise ConflictError(f"frontend {svc.frontend} is already services"
                                    f"[{seen[svc.frontend]}]", path=path + ("services", i,
                                                                       "frontend"))
            seen[svc.frontend] = i
            check_service(svc, settings, path + ("services", i))
        entries, most = data.get("conntrack_entries"), data.get("max_services")
        if most is not None and len(services) > int(most) - 1:
            raise InputError(f"{len(services)} services do not fit max_services {most} (one "
                             "slot is never used)", path=path + ("max_services",))
        return cls(settings, services, int(entries) if entries is not None else None,
                   int(most) if most is not None else None)


def check_service(svc: Service, settings: Settings, path: PathT = ()) -> None:
    """What a service needs from the gateway's settings."""
    for i, b in enumerate(svc.backends):
        if settings.snat(b.family) is None:
            raise InputError(f"backend {b.name} is IPv{b.family}, but the gateway has no "
                               f"IPv{b.family} SNAT address (settings.snat{b.family})",
                               path=path + ("backends", i, "address"))
    if svc.frontend.address in (settings.snat4, settings.snat6):
        raise InputError(f"{svc.frontend.address} is the gateway's SNAT address: a VIP "
                           "must be another address", path=path + ("frontend", "address"))
    if len(svc.active()) > settings.table_size:
        raise InputError(f"{len(svc.active())} active backends do not fit a selection "
                           f"table of {settings.table_size}", path=path + ("backends",))
