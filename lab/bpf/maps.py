"""Typed access to BPF maps: lookup, update, delete, iterate; per-CPU values; map-in-map.

Keys and values are ctypes types that either come from the map's BTF or are the caller's own
types checked against it when the map is opened (`Map.typed`), so a C struct that changed
under a Python one is an error at open time. Integer keys and values are plain ints.
"""

from __future__ import annotations

import array

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lab.bpf import libbpf
from lab.bpf.btf import Btf, LayoutError



@dataclass
class MapInfo:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    id: int = 0

    @property
    def type_name(self) -> str:
        return libbpf.map_type_name(self.type)


# Maps that a fresh creation leaves empty, and that deleting every key empties again.
_RESET_BY_DELETE = frozenset({libbpf.MAP_TYPE_HASH, libbpf.MAP_TYPE_PERCPU_HASH,
                              libbpf.MAP_TYPE_LRU_HASH, libbpf.MAP_TYPE_LRU_PERCPU_HASH,
                              libbpf.MAP_TYPE_HASH_OF_MAPS, libbpf.MAP_TYPE_LPM_TRIE})

# Maps whose key is a u32 index, whatever BTF says (map-in-map outers carry no BTF at all).
_INDEXED_MAP_TYPES = frozenset({libbpf.MAP_TYPE_ARRAY, libbpf.MAP_TYPE_PERCPU_ARRAY,
                                libbpf.MAP_TYPE_ARRAY_OF_MAPS})


class _Codec:
    """Bytes <-> Python for one side of a map (key or value) of SIZE bytes."""

    def __init__(self, ctype: type | None, size: int, what: str):
        self.ctype, self.size, self.what = ctype, size, what
        self.scalar = ctype is not None and issubclass(ctype, ctypes._SimpleCData)

    def encode(self, obj: Any) -> ctypes.Array:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            data = bytes(obj)
        elif self.ctype is not None and isinstance(obj, self.ctype):
            data = bytes(obj)
        elif self.scalar and isinstance(obj, int):
            data = bytes(self.ctype(obj))
        else:
            want = self.ctype.__name__ if self.ctype is not None else "bytes"
            raise TypeError(f"{self.what}: expected {want}, got {type(obj).__name__}")
        if len(data) != self.size:
            raise ValueError(f"{self.what}: {len(data)} bytes given, the map uses {self.size}")
        return (ctypes.c_uint8 * self.size).from_buffer_copy(data)

    def decode(self, data: bytes) -> Any:
        if self.ctype is None:
            return bytes(data)
        v = self.ctype.from_buffer_copy(data)
        return v.value if self.scalar else v


class Map:
    """A BPF map by fd. Obtained from a loaded BpfObject, `open_pinned()`, or `create()`."""

    def __init__(self, fd: int, info: MapInfo, btf: Btf | None = None, key_type_id: int = 0,
                 value_type_id: int = 0, owns_fd: bool = False, keepalive: object = None,
                 key: type | None = None, value: type | None = None):
        self.fd, self.info, self.btf = fd, info, btf
        self.key_type_id, self.value_type_id = key_type_id, value_type_id
        self._owns_fd, self._keepalive = owns_fd, keepalive
        if key is None and btf is not None and key_type_id:
            key = btf.ctype(key_type_id)
        if key is None and info.type in _INDEXED_MAP_TYPES:
            key = ctypes.c_uint32  # an index by definition, with or without BTF
        if value is None and btf is not None and value_type_id:
            value = btf.ctype(value_type_id)
        self._key = _Codec(key, info.key_size, f"map {info.name} key")
        self.percpu = info.type in libbpf.PERCPU_MAP_TYPES
        # The kernel lays per-CPU values out at 8-byte strides, one per possible CPU.
        self._stride = (info.value_size + 7) & ~7 if self.percpu else info.value_size
        self._ncpus = libbpf.num_possible_cpus() if self.percpu else 1
        self._value = _Codec(value, info.value_size, f"map {info.name} value")

    @classmethod
    def from_fd(cls, fd: int, owns_fd: bool = True) -> Map:
        """A map from its fd, with its BTF fetched from the kernel (if it has BTF)."""
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-map":
                raise OSError(errno.EINVAL, "not a BPF map")
            raw = libbpf.obj_info(fd, libbpf.bpf_map_info(), "map info")
            btf = Btf.from_kernel(raw.btf_id) if raw.btf_id else None
        except OSError:
            if owns_fd:
                os.close(fd)
            raise
        info = MapInfo(raw.name.decode(), raw.type, raw.key_size, raw.value_size,
                       raw.max_entries, raw.map_flags, raw.id)
        klass = MapOfMaps if raw.type in libbpf.MAP_OF_MAPS_TYPES else Map
        return klass(fd, info, btf, raw.btf_key_type_id, raw.btf_value_type_id, owns_fd=owns_fd)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def key_type(self) -> type | None:
        return self._key.ctype

    @property
    def value_type(self) -> type | None:
        return self._value.ctype

    @property
    def id(self) -> int:
        if not self.info.id:
            raw = libbpf.obj_info(self.fd, libbpf.bpf_map_info(), f"map {self.name} info")
            self.info.id = raw.id
        return self.info.id

    def typed(self, key: type | None = None, value: type | None = None) -> Map:
        """A view of this map with the caller's key/value types, checked against its BTF
        (against the sizes only, for a map without BTF)."""
        for side, pytype, type_id in (("key", key, self.key_type_id),
                                      ("value", value, self.value_type_id)):
            if pytype is None:
                continue
            if self.btf is not None and type_id:
                self.btf.check(pytype, type_id)
                continue
            # No BTF to check against (maps made without it): the size is all there is.
            size = self.info.key_size if side == "key" else self.info.value_size
            if ctypes.sizeof(pytype) != size:
                raise LayoutError(f"map {self.name}: {pytype.__name__} is "
                                  f"{ctypes.sizeof(pytype)} bytes, the map's {side} is {size} "
                                  "(and the map has no BTF to say more)")
        view = type(self).__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._owns_fd, view._keepalive = False, self
        if key is not None:
            view._key = _Codec(key, self.info.key_size, self._key.what)
        if value is not None:
            view._value = _Codec(value, self.info.value_size, self._value.what)
        return view

    # --- elements --------------------------------------------------------------------------

    def _value_buffer(self) -> ctypes.Array:
        return (ctypes.c_uint8 * (self._stride * self._ncpus))()

    def lookup(self, key: Any) -> Any:
        """The value at KEY, or None. Per-CPU maps: a list with one value per possible CPU."""
        k = self._key.encode(key)
        buf = self._value_buffer()
        ret = libbpf.lib().bpf_map_lookup_elem(self.fd, k, buf)
        if ret == -errno.ENOENT:
            return None
        libbpf.check(ret, f"lookup in map {self.name}")
        return self._decode_value(bytes(buf))

    def _decode_value(self, raw: bytes) -> Any:
        if not self.percpu:
            return self._value.decode(raw)
        size = self.info.value_size
        return [self._value.decode(raw[i * self._stride:i * self._stride + size])
                for i in range(self._ncpus)]

    def lookup_sum(self, key: Any) -> Any:
        """A per-CPU map's value at KEY added up over CPUs (member by member), or None."""
        values = self.lookup(key)
        if values is None or not self.percpu:
            return values
        return sum_values(values)

    def update(self, key: Any, value: Any, flags: int = libbpf.BPF_ANY) -> None:
        """Set KEY to VALUE. Per-CPU maps: one value for every CPU, or a list, one per CPU."""
        k = self._key.encode(key)
        if self.percpu:
            values = value if isinstance(value, list) else [value] * self._ncpus
            if len(values) != self._ncpus:
                raise ValueError(f"map {self.name}: {len(values)} per-CPU values given, "
                                 f"{self._ncpus} possible CPUs")
            buf = self._value_buffer()
            for i, v in enumerate(values):
                ctypes.memmove(ctypes.addressof(buf) + i * self._stride,
                               self._value.encode(v), self.info.value_size)
        else:
            buf = self._value.encode(value)
        libbpf.check(libbpf.lib().bpf_map_update_elem(self.fd, k, buf, flags),
                     f"update map {self.name}")

    def update_batch(self, items: Sequence[tuple[Any, Any]]) -> None:
        """Set many keys in one system call (BPF_MAP_UPDATE_BATCH), e.g. a whole table.
        Not for per-CPU maps."""
        if self.percpu:
            raise TypeError(f"map {self.name}: update_batch() takes no per-CPU maps")
        if not items:
            return
        ksize, vsize = self.info.key_size, self.info.value_size
        keys = (ctypes.c_uint8 * (ksize * len(items)))()
        values = (ctypes.c_uint8 * (vsize * len(items)))()
        for i, (k, v) in enumerate(items):
            ctypes.memmove(ctypes.addressof(keys) + i * ksize, self._key.encode(k), ksize)
            ctypes.memmove(ctypes.addressof(values) + i * vsize, self._value.encode(v), vsize)
        count = ctypes.c_uint32(len(items))
        libbpf.check(libbpf.lib().bpf_map_update_batch(self.fd, keys, values,
                                                        ctypes.byref(count), None),
                     f"batch update of map {self.name}")

    def update_u32(self, values: Sequence[int], first: int = 0) -> None:
        """Set keys FIRST, FIRST+1, ... of a map with 4-byte keys and values (an array of
        u32: a selection table) to VALUES in one system call, without encoding each element
        (update_batch's Python cost dominates for tables of thousands of entries)."""
        if self.info.key_size != 4 or self.info.value_size != 4 or self.percpu:
            raise TypeError(f"map {self.name}: update_u32() needs 4-byte keys and values")
        if not values:
            return
        n = len(values)
        keys = (ctypes.c_uint32 * n).from_buffer(array.array("I", range(first, first + n)))
        vals = (ctypes.c_uint32 * n).from_buffer(array.array("I", values))
        count = ctypes.c_uint32(n)
        libbpf.check(libbpf.lib().bpf_map_update_batch(self.fd, keys, vals,
                                                        ctypes.byref(count), None),
                     f"batch update of map {self.name}")

    def delete(self, key: Any) -> bool:
        """Delete KEY; False if it was not there."""
        ret = libbpf.lib().bpf_map_delete_elem(self.fd, self._key.encode(key))
        if ret == -errno.ENOENT:
            return False
        libbpf.check(ret, f"delete from map {self.name}")
        return True

    def keys(self) -> Iterator[Any]:
        size = self.info.key_size
        prev = None
        nxt = (ctypes.c_uint8 * size)()
        while True:
            ret = libbpf.lib().bpf_map_get_next_key(self.fd, prev, nxt)
            if ret == -errno.ENOENT:
                return
            libbpf.check(ret, f"iterate map {self.name}")
            yield self._key.decode(bytes(nxt))
            prev = (ctypes.c_uint8 * size).from_buffer_copy(nxt)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs; keys deleted while iterating are skipped."""
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def clear(self) -> int:
        """Delete every key (hash-type maps); return how many were deleted."""
        return sum(self.delete(k) for k in list(self.keys()))

    def reset(self) -> None:
        """Back to the state of a freshly created map: hash-type maps and map-in-map outers
        emptied, array slots zeroed (on every CPU). A test that wants empty maps then reuses
        a loaded object instead of loading it again (through the verifier: seconds, and a
        minute under emulation)."""
        t = self.info.type
        if t in _RESET_BY_DELETE:
            self.clear()
        elif t in (libbpf.MAP_TYPE_ARRAY, libbpf.MAP_TYPE_PERCPU_ARRAY):
            zero = bytes(self.info.value_size)
            if self.percpu:
                for i in range(self.info.max_entries):
                    self.update(i, zero)
            else:
                self.update_batch([(i, zero) for i in range(self.info.max_entries)])
        elif t == libbpf.MAP_TYPE_ARRAY_OF_MAPS:
            for i in range(self.info.max_entries):
                self.delete(i)
        else:
            raise TypeError(f"map {self.name}: cannot reset a {self.info.type_name} map")

    __iter__ = keys

    def __getitem__(self, key: Any) -> Any:
        v = self.lookup(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self.lookup(key) is not None

    # --- lifetime --------------------------------------------------------------------------

    def pin(self, path: str) -> None:
        libbpf.check(libbpf.lib().bpf_obj_pin(self.fd, path.encode()), "pin map", path)

    def close(self) -> None:
        if self._owns_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __del__(self) -> None:
        if getattr(self, "_owns_fd", False):
            self.close()

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} {self.info.type_name} key={self.info.key_size}"
                f" value={self.info.value_size} max={self.info.max_entries}>")


@dataclass(frozen=True)
class InnerSpec:
    """What an inner map of a map-in-map must look like (the kernel checks it on insert)."""
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    btf: Btf | None = None
    btf_id: int = 0          # kernel BTF object id (a loaded object's or an inner map's)
    key_type_id: int = 0
    value_type_id: int = 0


class MapOfMaps(Map):
    """ARRAY_OF_MAPS / HASH_OF_MAPS. Values going in are inner maps; coming out, inner maps
    opened by id. `swap()` replaces a slot's inner map atomically: the datapath sees either
    the old table or the new one, never a half-written one (Maglev tables rely on this)."""

    inner_spec: InnerSpec | None = None  # known when the map comes from a BpfObject

    def _spec(self) -> InnerSpec:
        if self.inner_spec is not None:
            return self.inner_spec
        # Re-opened by pin: any inner map present shows what the slots hold.
        for k in self.keys():
            with self.inner(k) as m:
                if m is not None:
                    raw = libbpf.obj_info(m.fd, libbpf.bpf_map_info(), "inner map info")
                    return InnerSpec(raw.type, raw.key_size, raw.value_size, raw.max_entries,
                                     raw.map_flags, m.btf, raw.btf_id, raw.btf_key_type_id,
                                     raw.btf_value_type_id)
        raise LookupError(f"map {self.name}: no inner map to take the layout from; "
                          "pass an InnerSpec to create_inner()")

    def create_inner(self, name: str = "inner", max_entries: int | None = None,
                     spec: InnerSpec | None = None) -> Map:
        """A new, empty map fit to go into this map's slots (same type, sizes and BTF)."""
        spec = spec or self._spec()
        return create(spec.type, name, spec.key_size, spec.value_size,
                      max_entries or spec.max_entries, flags=spec.flags, btf=spec.btf,
                      btf_id=spec.btf_id, key_type_id=spec.key_type_id,
                      value_type_id=spec.value_type_id)

    def swap(self, key: Any, inner: Map) -> None:
        """Point slot KEY at INNER in one update."""
        self.update(key, inner.fd)

    def inner(self, key: Any) -> _MaybeMap:
        """The inner map at KEY (opened by id, closed on context exit), or None."""
        map_id = self.lookup(key)
        if map_id is None:
            return _MaybeMap(None)
        fd = libbpf.lib().bpf_map_get_fd_by_id(map_id)
        if fd == -errno.ENOENT:  # replaced and freed since the lookup
            return _MaybeMap(None)
        return _MaybeMap(Map.from_fd(libbpf.check(fd, f"open inner map id {map_id}")))

    def _decode_value(self, raw: bytes) -> Any:  # the kernel returns inner map ids
        return int.from_bytes(raw[:4], "little")

    def update(self, key: Any, value: Any, flags: int = libbpf.BPF_ANY) -> None:
        fd = value.fd if isinstance(value, Map) else value
        libbpf.check(libbpf.lib().bpf_map_update_elem(
            self.fd, self._key.encode(key), ctypes.byref(ctypes.c_uint32(fd)), flags),
            f"update map {self.name}")


class _MaybeMap:
    """`with outer.inner(k) as m:` where m may be None; also usable without `with`."""

    def __init__(self, m: Map | None):
        self.map = m

    def __enter__(self) -> Map | None:
        return self.map

    def __exit__(self, *exc: object) -> None:
        if self.map is not None:
            self.map.close()


def create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int, *,
           flags: int = 0, btf: Btf | None = None, btf_id: int = 0, btf_fd: int = -1,
           key_type_id: int = 0, value_type_id: int = 0) -> Map:
    """Create a standalone map (e.g. an inner map); the returned Map owns its fd.

    With key/value BTF type ids it carries BTF, given as BTF_FD or as kernel BTF_ID."""
    opts = libbpf.MapCreateOpts(sz=ctypes.sizeof(libbpf.MapCreateOpts), map_flags=flags)
    own_btf_fd = -1
    if key_type_id or value_type_id:
        if btf_fd < 0 and btf_id:
            btf_fd = own_btf_fd = libbpf.check(libbpf.lib().bpf_btf_get_fd_by_id(btf_id),
                                               f"open BTF id {btf_id}")
        if btf_fd >= 0:
            opts.btf_fd, opts.btf_key_type_id = btf_fd, key_type_id
            opts.btf_value_type_id = value_type_id
    try:
        fd = libbpf.check(libbpf.lib().bpf_map_create(
            map_type, name[:15].encode(), key_size, value_size, max_entries,
            ctypes.byref(opts)), f"create map {name}")
    finally:
        if own_btf_fd >= 0:
            os.close(own_btf_fd)
    info = MapInfo(name[:15], map_type, key_size, value_size, max_entries, flags)
    if opts.btf_fd:
        return Map(fd, info, btf, key_type_id, value_type_id, owns_fd=True)
    return Map(fd, info, owns_fd=True)


def open_pinned(path: str, key: type | None = None, value: type | None = None) -> Map:
    """Open the map pinned at PATH (e.g. by a lab's datapath loaded by another process)."""
    fd = libbpf.check(libbpf.lib().bpf_obj_get(path.encode()), "open pinned map", path)
    try:
        m = Map.from_fd(fd)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise LayoutError(f"{path}: not a pinned map") from None
        raise
    return m.typed(key, value) if (key or value) else m


def sum_values(values: Sequence[Any]) -> Any:
    """Add up per-CPU values: ints, and ctypes records/arrays member by member."""
    first = values[0]
    if isinstance(first, int):
        return sum(values)
    if isinstance(first, ctypes.Array):
        out = type(first)()
        for i in range(len(first)):
            out[i] = sum_values([v[i] for v in values])
        return out
    if isinstance(first, ctypes.Structure):
        out = type(first)()
        for fname, *_ in type(first)._fields_:
            if fname.startswith("_pad"):
                continue
            setattr(out, fname, sum_values([getattr(v, fname) for v in values]))
        return out
    raise TypeError(f"cannot add up {type(first).__name__} values")
