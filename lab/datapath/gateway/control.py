"""The one implementation that changes the gateway: services, backends and settings written
into bpf/gateway.c's maps, and read back from them.

    gw = Gateway.open(pin_dir)              # the maps a loaded gateway pinned
    svc = gw.add_service(Service(Frontend(IPv4Address("192.0.2.100"), 80),
                                 [Backend(IPv6Address("fd00:10:244:1::10"), 8080)]))
    gw.update_backend(svc.id, svc.backends[0].id, state="terminating")

The maps are the only state: `lab service`, the agent's HTTP API and this Python API all go
through this class, and a new process (a restarted agent) sees what an earlier one wrote.
Changes from several processes are serialised by a lock on the pin directory. Every request
is checked completely before the first map is written, so a refused request changes nothing.

Order of writes, so the datapath only ever sees complete states: backends first, then the
service's selection table (built aside and swapped into its map-in-map slot in one update),
then the service entry; removal goes the other way. Connections carry their backend's
address in conntrack, so a removed backend or service lets its open connections finish.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from lab import bigtcp_form
from lab.bpf import libbpf
from lab.bpf.maps import InnerSpec, Map, MapOfMaps, open_pinned
from lab.bpf.object import BpfObject
from lab.datapath.gateway import maglev
from lab.datapath.gateway.model import (PROTOCOLS, Backend, ConflictError, Frontend,
                                        IPAddress, NotFoundError, Service, Settings, Timeouts,
                                        check_service, endpoint)
from lab.errors import InputError, UsageError

OBJECT = "gateway"
PROG_TC = "gw_ingress"
PROG_XDP = "gw_xdp"
MAPS = ("gw_cfg", "gw_services", "gw_backends", "gw_tables", "gw_ct", "gw_stats",
        "gw_xlat_drops")
BPF_F_INNER_MAP = 1 << 12
_PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}


def _in6(addr: IPAddress) -> bytes:
    """16 bytes: IPv6 as is, IPv4 mapped (::ffff:a.b.c.d), as bpf/include/gw/tuple.h keeps
    every address."""
    if addr.version == 4:
        return bytes(10) + b"\xff\xff" + addr.packed
    return addr.packed


def _addr(raw: Any, family: int) -> IPAddress:
    b = bytes(raw)
    return IPv4Address(b[12:]) if family == 4 else IPv6Address(b)


def _set(field_: Any, data: bytes) -> None:
    ctypes.memmove(ctypes.addressof(field_), data, len(data))


def _be16(port: int) -> int:
    """A port as the u16 whose memory holds it in network order (__be16)."""
    return int.from_bytes(port.to_bytes(2, "big"), "little")


_port = _be16  # the conversion is its own inverse


@dataclass(frozen=True)
class Connection:
    """A live connection, from its forward conntrack entry."""
    service: int
    backend: int
    protocol: str
    client: tuple[IPAddress, int]
    frontend: tuple[IPAddress, int]
    source: tuple[IPAddress, int]        # the gateway's SNAT address and port
    destination: tuple[IPAddress, int]   # the backend
    state: str                           # syn-sent, established, closing (TCP); open (UDP)
    expires_in: float                    # seconds

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "backend": self.backend, "protocol": self.protocol,
                "client": endpoint(*self.client), "frontend": endpoint(*self.frontend),
                "source": endpoint(*self.source), "destination": endpoint(*self.destination),
                "state": self.state, "expires_in": round(self.expires_in, 3)}


class Gateway:
    """A gateway's maps (from a loaded object, or re-opened from their pins)."""

    def __init__(self, maps: Mapping[str, Map], pin_dir: str | os.PathLike | None = None):
        missing = [m for m in MAPS if m not in maps]
        if missing:
            raise UsageError(f"not a gateway: no map {', '.join(missing)}")
        self.maps = dict(maps)
        self.pin_dir = Path(pin_dir) if pin_dir is not None else None
        self.btf = self.maps["gw_services"].btf
        self._enums: dict[str, dict[str, int]] = {}
        self._thread_lock = threading.RLock()
        self._depth = 0  # nesting of _locked() in the thread holding it
        self._dir_fd = (os.open(self.pin_dir, os.O_RDONLY | os.O_DIRECTORY)
                        if self.pin_dir is not None else None)

    @classmethod
    def from_object(cls, obj: BpfObject) -> Gateway:
        """The maps of a loaded bpf/gateway.c object (pinned where it pinned them)."""
        pins = obj.pinned_maps()
        pin_dir = os.path.dirname(next(iter(pins.values()))) if pins else None
        return cls({name: obj.map(name) for name in MAPS}, pin_dir)

    @classmethod
    def open(cls, pin_dir: str | os.PathLike) -> Gateway:
        """The maps a loaded gateway pinned under PIN_DIR (lab.bpf.topology.maps_pin_dir)."""
        maps = {}
        for name in MAPS:
            path = Path(pin_dir) / name
            try:
                maps[name] = open_pinned(str(path))
            except OSError as e:
                if e.errno == errno.ENOENT:
                    raise UsageError(f"no gateway pinned at {pin_dir} (missing {name}): is "
                                     "the gateway attached in this lab?") from None
                raise
        return cls(maps, pin_dir)

    def close(self) -> None:
        for m in self.maps.values():
            m.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: threads of this process, and other processes (a lock on the
        pin directory, which every process using these maps shares)."""
        with self._thread_lock:
            outermost = self._depth == 0 and self._dir_fd is not None
            if outermost:
                fcntl.flock(self._dir_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outermost:
                    fcntl.flock(self._dir_fd, fcntl.LOCK_UN)

    # --- names from BTF --------------------------------------------------------------------

    def enum(self, name: str) -> dict[str, int]:
        """Enumerators of C enum NAME in the object's BTF, prefix removed and lowercased:
        enum gw_backend_state -> {"active": 0, "terminating": 1, ...}."""
        if name not in self._enums:
            t = self.btf.type(self.btf.find(name, "enum"))
            names = [n for n, _ in t.enumerators]
            prefix = os.path.commonprefix(names)
            prefix = prefix[:prefix.rfind("_") + 1]
            self._enums[name] = {n[len(prefix):].lower(): v for n, v in t.enumerators
                                 if not n.endswith("_MAX")}
        return self._enums[name]

    # --- settings --------------------------------------------------------------------------

    def settings(self) -> Settings | None:
        """The settings in gw_config, or None before the first configure()."""
        v = self.maps["gw_cfg"].lookup(0)
        if v is None or v.table_size == 0:
            return None
        snat4 = IPv4Address(int(v.snat4).to_bytes(4, "little")) if v.snat4 else None
        snat6 = IPv6Address(bytes(v.snat6))
        return Settings(snat4=snat4, snat6=None if snat6 == IPv6Address(0) else snat6,
                        port_min=v.port_min, port_max=v.port_max, table_size=v.table_size,
                        hash_seed=v.hash_seed,
                        timeouts=Timeouts(v.timeout_syn, v.timeout_tcp, v.timeout_close,
                                          v.timeout_other),
                        mtu4=v.mtu4, mtu6=v.mtu6, zero_tos=bool(v.zero_tos))

    def _require_settings(self) -> Settings:
        s = self.settings()
        if s is None:
            raise InputError("the gateway is not configured yet (no settings: see "
                               "Gateway.configure or the topology's datapath.gateway)")
        return s

    def configure(self, settings: Settings) -> None:
        """Write SETTINGS. The table size is fixed while services exist (their tables have
        it); every existing service must still be possible with the new settings."""
        with self._locked():
            current = self.settings()
            services = self.services()
            if current is not None and services:
                if settings.table_size != current.table_size:
                    raise InputError(f"the table size is {current.table_size} and services "
                                       "exist: delete them to change it", path=("table_size",))
                if settings.hash_seed != current.hash_seed:
                    raise InputError("the hash seed cannot change while services exist",
                                       path=("hash_seed",))
            for svc in services:
                check_service(svc, settings)
            cfg = self.maps["gw_cfg"]
            v = cfg.value_type()
            if settings.snat6 is not None:
                _set(v.snat6, settings.snat6.packed)
            v.snat4 = int.from_bytes(settings.snat4.packed, "little") if settings.snat4 else 0
            v.port_min, v.port_max = settings.port_min, settings.port_max
            v.table_size, v.hash_seed = settings.table_size, settings.hash_seed
            t = settings.timeouts
            v.timeout_syn, v.timeout_tcp = t.syn, t.tcp
            v.timeout_close, v.timeout_other = t.close, t.other
            v.mtu4, v.mtu6, v.zero_tos = settings.mtu4, settings.mtu6, int(settings.zero_tos)
            # IPv6 BIG TCP packets toward IPv6 backends in the running kernel's own form
            v.jumbo_hbh = int(bigtcp_form.resolve(None) == bigtcp_form.LEN_JUMBO_HBH)
            cfg.update(0, v)

    # --- reading services ------------------------------------------------------------------

    def _svc_key(self, fe: Frontend) -> Any:
        k = self.maps["gw_services"].key_type()
        _set(k.addr, _in6(fe.address))
        k.port = _be16(fe.port)
        k.proto = PROTOCOLS[fe.protocol]
        k.family = fe.family
        return k

    def _backends_by_service(self) -> dict[int, list[Backend]]:
        states = {v: k for k, v in self.enum("gw_backend_state").items()}
        out: dict[int, list[Backend]] = {}
        for bid, v in self.maps["gw_backends"].items():
            b = Backend(_addr(v.addr, v.family), _port(v.port), v.weight,
                        states.get(v.state, "quarantined"), id=int(bid))
            out.setdefault(v.service, []).append(b)
        for lst in out.values():
            lst.sort(key=lambda b: b.id)
        return out

    def services(self) -> list[Service]:
        """Every service, by id, with its backends by id."""
        selections = {v: k for k, v in self.enum("gw_selection").items()}
        backends = self._backends_by_service()
        out = []
        for k, v in self.maps["gw_services"].items():
            fe = Frontend(_addr(k.addr, k.family), _port(k.port), _PROTO_NAMES[k.proto])
            out.append(Service(fe, tuple(backends.get(v.id, ())),
                               selections.get(v.selection, "maglev"), id=v.id))
        return sorted(out, key=lambda s: s.id)

    def service(self, service_id: int) -> Service:
        for svc in self.services():
            if svc.id == service_id:
                return svc
        raise NotFoundError(f"no service {service_id}")

    def find(self, frontend: Frontend) -> Service | None:
        for svc in self.services():
            if svc.frontend == frontend:
                return svc
        return None

    # --- changing services -----------------------------------------------------------------

    def add_service(self, svc: Service) -> Service:
        """Add SVC; returns it with its id and its backends' ids."""
        with self._locked():
            settings = self._require_settings()
            check_service(svc, settings)
            existing = self.services()
            for other in existing:
                if other.frontend == svc.frontend:
                    raise ConflictError(f"{svc.frontend} exists already (service {other.id})",
                                        path=("frontend",))
            used = {s.id for s in existing}
            sid = next((i for i in range(1, self._max_services()) if i not in used), None)
            if sid is None:
                raise InputError(f"no room for another service ({len(used)} exist)")
            new = replace(svc, id=sid,
                          backends=self._with_ids(svc.backends, len(svc.backends)))
            self._write(None, new, settings)
            return new

    def add_services(self, services: Sequence[Service]) -> list[Service]:
        """Add many services at once, as a control plane syncing N services does: every one
        checked as add_service() checks it before anything is written, then the backends
        and the service entries each in one batch update, and a selection table per
        service. Returns them with their ids."""
        with self._locked():
            settings = self._require_settings()
            existing = self.services()
            taken = {s.frontend: s.id for s in existing}
            for i, svc in enumerate(services):
                check_service(svc, settings, (i,))
                if svc.frontend in taken:
                    raise ConflictError(f"{svc.frontend} exists already (service "
                                        f"{taken[svc.frontend]})", path=(i, "frontend"))
                taken[svc.frontend] = 0
            used = {s.id for s in existing}
            free = [i for i in range(1, self._max_services()) if i not in used]
            if len(free) < len(services):
                raise InputError(f"no room for {len(services)} more services ({len(used)} "
                                   f"of {self._max_services() - 1} used)")
            bids = iter(self._ids(sum(len(s.backends) for s in services)))
            new = [svc.with_ids(sid, [next(bids) for _ in svc.backends])
                   for svc, sid in zip(services, free)]
            backends, entries = self.maps["gw_backends"], self.maps["gw_services"]
            states, selections = self.enum("gw_backend_state"), self.enum("gw_selection")
            rows = []
            for svc in new:
                for b in svc.backends:
                    v = backends.value_type()
                    _set(v.addr, _in6(b.address))
                    v.port, v.family = _be16(b.port), b.family
                    v.state, v.service, v.weight = states[b.state], svc.id, b.weight
                    rows.append((b.id, v))
            backends.update_batch(rows)
            self._install_tables(new, settings)
            rows = []
            for svc in new:
                v = entries.value_type()
                v.id, v.selection = svc.id, selections[svc.selection]
                rows.append((self._svc_key(svc.frontend), v))
            entries.update_batch(rows)
            return new

    def change_backends(self, current: Service, backends: Sequence[Backend]) -> Service:
        """Give service CURRENT (as add_service(s) returned it, with its ids) BACKENDS, the
        ones it keeps keeping their ids: what a control plane does on an endpoint change,
        from its own record of the service, without reading every service back (which
        costs O(services) at a sweep's scale). Refused if the maps no longer have CURRENT
        at its frontend."""
        with self._locked():
            settings = self._require_settings()
            entry = self.maps["gw_services"].lookup(self._svc_key(current.frontend))
            if entry is None or entry.id != current.id:
                raise NotFoundError(f"service {current.id} is not at {current.frontend} "
                                    "(any more)")
            new_svc = Service(current.frontend, tuple(backends), current.selection)
            check_service(new_svc, settings)
            kept = {b.endpoint: b.id for b in current.backends}
            fresh = iter(self._ids(sum(b.endpoint not in kept for b in new_svc.backends)))
            new = new_svc.with_ids(current.id, [kept.get(b.endpoint) or next(fresh)
                                                for b in new_svc.backends])
            self._write(current, new, settings)
            return new

    def delete_services(self, services: Sequence[Service]) -> None:
        """Delete SERVICES (as add_services returned them: the caller's record, so nothing
        is read back): their entries, then their backends. Their selection tables stay in
        their slots, unreachable (no service names the slot), until a new service takes the
        slot over: every deletion from a map of maps waits for an RCU grace period
        (milliseconds each) and arrays of maps have no batch deletion, where one batch
        update replaces any number of tables after one grace period."""
        with self._locked():
            entries = self.maps["gw_services"]
            for svc in services:
                v = entries.lookup(self._svc_key(svc.frontend))
                if v is None or v.id != svc.id:
                    raise NotFoundError(f"service {svc.id} is not at {svc.frontend} (any "
                                        "more)")
            for svc in services:
                entries.delete(self._svc_key(svc.frontend))
            for svc in services:
                for b in svc.backends:
                    self.maps["gw_backends"].delete(b.id)

    def replace_service(self, service_id: int, svc: Service) -> Service:
        """Give service SERVICE_ID the frontend, selection and backends of SVC; backends
        it keeps (same address and port) keep their ids."""
        with self._locked():
            settings = self._require_settings()
            current = self.service(service_id)
            check_service(svc, settings)
            for other in self.services():
                if other.id != service_id and other.frontend == svc.frontend:
                    raise ConflictError(f"{svc.frontend} exists already (service {other.id})",
                                        path=("frontend",))
            kept = {b.endpoint: b.id for b in current.backends}
            fresh = [b for b in svc.backends if b.endpoint not in kept]
            new_ids = iter(self._ids(len(fresh)))
            backends = tuple(replace(b, id=kept.get(b.endpoint) or next(new_ids))
                             for b in svc.backends)
            new = replace(svc, id=service_id, backends=backends)
            self._write(current, new, settings)
            return new

    def delete_service(self, service_id: int) -> Service:
        with self._locked():
            current = self.service(service_id)
            self._write(current, None, None)
            return current

    def add_backend(self, service_id: int, backend: Backend) -> Backend:
        with self._locked():
            svc = self.service(service_id)
            if any(b.endpoint == backend.endpoint for b in svc.backends):
                raise ConflictError(f"service {service_id} has backend {backend.name} "
                                    "already")
            new = self.replace_service(service_id, svc.with_backends([*svc.backends, backend]))
            return next(b for b in new.backends if b.endpoint == backend.endpoint)

    def update_backend(self, service_id: int, backend_id: int, *, weight: int | None = None,
                       state: str | None = None) -> Backend:
        """Change a backend's weight or state (active, terminating, quarantined)."""
        with self._locked():
            svc = self.service(service_id)
            old = svc.backend(backend_id)
            changed = replace(old, weight=old.weight if weight is None else weight,
                              state=old.state if state is None else state)
            new = self.replace_service(service_id, svc.with_backends(
                [changed if b.id == backend_id else b for b in svc.backends]))
            return new.backend(backend_id)

    def delete_backend(self, service_id: int, backend_id: int) -> Backend:
        with self._locked():
            svc = self.service(service_id)
            old = svc.backend(backend_id)
            self.replace_service(service_id, svc.with_backends(
                [b for b in svc.backends if b.id != backend_id]))
            return old

    # --- writing ---------------------------------------------------------------------------

    def _max_services(self) -> int:
        return self.maps["gw_tables"].info.max_entries

    def _ids(self, n: int) -> list[int]:
        """N fresh backend ids: counting up from the highest in use, so an id is not reused
        soon (connections name their backend by id)."""
        used = {int(k) for k in self.maps["gw_backends"].keys()}
        limit = self.maps["gw_backends"].info.max_entries
        if len(used) + n > limit:
            raise InputError(f"no room for {n} more backends ({len(used)} of {limit} used)")
        out, candidate = [], max(used, default=0)
        while len(out) < n:
            candidate = candidate % 0xFFFFFFFF + 1
            if candidate not in used:
                out.append(candidate)
        return out

    def _with_ids(self, backends: Sequence[Backend], n: int) -> tuple[Backend, ...]:
        return tuple(replace(b, id=i) for b, i in zip(backends, self._ids(n)))

    def _write(self, old: Service | None, new: Service | None,
               settings: Settings | None) -> None:
        """Move the maps from service OLD to NEW (either may be None), in the order that
        keeps the datapath's view whole."""
        services, backends = self.maps["gw_services"], self.maps["gw_backends"]
        tables: MapOfMaps = self.maps["gw_tables"]  # type: ignore[assignment]
        if new is not None:
            assert settings is not None
            states = self.enum("gw_backend_state")
            for b in new.backends:
                v = backends.value_type()
                _set(v.addr, _in6(b.address))
                v.port, v.family = _be16(b.port), b.family
                v.state, v.service, v.weight = states[b.state], new.id, b.weight
                backends.update(b.id, v)
            self._install_table(new, settings)
            v = services.value_type()
            v.id, v.selection = new.id, self.enum("gw_selection")[new.selection]
            services.update(self._svc_key(new.frontend), v)
        if old is not None and (new is None or old.frontend != new.frontend):
            services.delete(self._svc_key(old.frontend))
        if new is None and old is not None:
            tables.delete(old.id)
        keep = {b.id for b in new.backends} if new is not None else set()
        for b in old.backends if old is not None else ():
            if b.id not in keep:
                backends.delete(b.id)

    def _install_table(self, svc: Service, settings: Settings) -> None:
        """Build SVC's selection table and swap it in; no active backend: no table (new
        connections are dropped, GW_DROP_NO_BACKEND)."""
        tables: MapOfMaps = self.maps["gw_tables"]  # type: ignore[assignment]
        entries = [maglev.Entry(b.name, b.id, b.weight) for b in svc.active()]
        table = maglev.build(entries, settings.table_size, settings.hash_seed)
        if not table:
            tables.delete(svc.id)
            return
        spec = InnerSpec(libbpf.MAP_TYPE_ARRAY, 4, 4, settings.table_size, BPF_F_INNER_MAP)
        inner = tables.create_inner(f"gw_table{svc.id}", spec=spec)
        try:
            inner.typed(ctypes.c_uint32, ctypes.c_uint32).update_batch(list(enumerate(table)))
            tables.swap(svc.id, inner)
        finally:
            inner.close()  # the outer map holds it now

    def _install_tables(self, services: Sequence[Service], settings: Settings) -> None:
        """_install_table for many services: the tables built aside, then swapped into
        their slots by one batch update of the map of maps (one RCU grace period, where an
        update per table waits for one each)."""
        tables: MapOfMaps = self.maps["gw_tables"]  # type: ignore[assignment]
        spec = InnerSpec(libbpf.MAP_TYPE_ARRAY, 4, 4, settings.table_size, BPF_F_INNER_MAP)
        inners: list[tuple[int, Map]] = []
        try:
            for svc in services:
                entries = [maglev.Entry(b.name, b.id, b.weight) for b in svc.active()]
                table = maglev.build(entries, settings.table_size, settings.hash_seed)
                if not table:
                    tables.delete(svc.id)
                    continue
                inner = tables.create_inner(f"gw_table{svc.id}", spec=spec)
                inners.append((svc.id, inner))
                inner.update_u32(table)
            tables.update_batch([(slot.to_bytes(4, sys.byteorder),
                                  inner.fd.to_bytes(4, sys.byteorder)) for slot, inner in inners])
        finally:
            for _, inner in inners:
                inner.close()  # the outer map holds them now

    def table(self, service_id: int) -> list[int]:
        """The selection table in use by a service (backend ids), empty if none."""
        if not any(s.id == service_id for s in self.services()):
            return []
        with self.maps["gw_tables"].inner(service_id) as m:  # type: ignore[attr-defined]
            if m is None:
                return []
            m = m.typed(ctypes.c_uint32, ctypes.c_uint32)
            return [int(m.lookup(i)) for i in range(m.info.max_entries)]

    # --- connections and statistics --------------------------------------------------------

    def connections(self, service: int | None = None) -> list[Connection]:
        """Live connections (forward conntrack entries not expired), optionally of one
        service."""
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # bpf_ktime_get_ns()'s clock
        forward = self.enum("gw_ct_dir")["forward"]
        seen = self.enum("gw_seen")
        out = []
        for k, v in self.maps["gw_ct"].items():
            if v.dir != forward or v.expires <= now:
                continue
            if service is not None and v.service != service:
                continue
            proto = _PROTO_NAMES.get(k.proto, str(k.proto))
            bits = v.seen
            if proto != "tcp":
                state = "open"
            elif bits & seen["rst"] or (bits & seen["fin_fwd"] and bits & seen["fin_rep"]):
                state = "closing"
            elif bits & seen["reply"]:
                state = "established"
            else:
                state = "syn-sent"
            n = v.nat
            out.append(Connection(
                v.service, v.backend, proto,
                (_addr(k.saddr, k.family), _port(k.sport)),
                (_addr(k.daddr, k.family), _port(k.dport)),
                (_addr(n.saddr, n.family), _port(n.sport)),
                (_addr(n.daddr, n.family), _port(n.dport)),
                state, (v.expires - now) / 1e9))
        return out

    def flush_connections(self) -> int:
        """Forget every connection (tests; a real gateway lets them time out)."""
        return self.maps["gw_ct"].clear()

    def statistics(self) -> dict[str, dict[str, int]]:
        """Packets by outcome since load, and those translation refused by reason."""
        stats, drops = self.maps["gw_stats"], self.maps["gw_xlat_drops"]
        outcomes = {name: int(stats.lookup_sum(v) or 0)
                    for name, v in self.enum("gw_outcome").items()}
        refused = {}
        for name, v in self.enum("xlat_outcome").items():
            if name.startswith("drop_"):
                n = int(drops.lookup_sum(v) or 0)
                if n:
                    refused[name] = n
        return {"outcomes": outcomes, "refused": refused}

