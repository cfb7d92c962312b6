"""BTF types, read through libbpf, and the link between them and Python's ctypes.

Map keys and values cross the C/Python boundary as bytes. Their layout is never typed twice:
either the Python type is derived from BTF (`Btf.ctype`), or a hand-written ctypes type is
checked member by member against BTF (`Btf.check`) so that C and Python cannot drift apart
silently; a mismatch is a `LayoutError` naming the struct and the member.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass, field
from ctypes import Structure, c_int32, c_uint32

from lab.bpf import libbpf
from lab.errors import LabError

# BTF kinds (linux/btf.h)
KINDS = {1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum", 7: "fwd",
         8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func",
         13: "func_proto", 14: "var", 15: "datasec", 16: "float", 17: "decl_tag",
         18: "type_tag", 19: "enum64"}
_MODIFIERS = {"typedef", "volatile", "const", "restrict", "type_tag"}
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4


class LayoutError(LabError):
    """A Python type whose layout does not match the BTF type it stands for."""


class _RawType(Structure):  # struct btf_type
    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]


class _RawMember(Structure):  # struct btf_member
    _fields_ = [("name_off", c_uint32), ("type", c_uint32), ("offset", c_uint32)]


class _RawArray(Structure):  # struct btf_array
    _fields_ = [("type", c_uint32), ("index_type", c_uint32), ("nelems", c_uint32)]


class _RawEnum(Structure):  # struct btf_enum
    _fields_ = [("name_off", c_uint32), ("val", c_int32)]


class _RawEnum64(Structure):  # struct btf_enum64
    _fields_ = [("name_off", c_uint32), ("val_lo32", c_uint32), ("val_hi32", c_uint32)]


class _RawVarSecinfo(Structure):  # struct btf_var_secinfo
    _fields_ = [("type", c_uint32), ("offset", c_uint32), ("size", c_uint32)]


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0  # 0: not a bitfield

    @property
    def offset(self) -> int:
        return self.bit_offset // 8


@dataclass(frozen=True)
class BtfType:
    id: int
    kind: str
    name: str
    size: int = 0                  # int, struct, union, enum, float, datasec
    ref: int = 0                   # ptr, typedef, modifiers, var, func: the referenced type
    signed: bool = False           # int, enum
    bits: int = 0                  # int
    nelems: int = 0                # array (element type in `ref`)
    members: tuple[Member, ...] = ()
    enumerators: tuple[tuple[str, int], ...] = ()
    secinfo: tuple[tuple[int, int, int], ...] = field(default=())  # datasec: (var, offset, size)

    def describe(self) -> str:
        """The C spelling, for messages: `struct pktcount_key`, `__u32`, `int[4]`."""
        if self.kind in ("struct", "union", "enum", "enum64", "fwd"):
            kw = "enum" if self.kind == "enum64" else self.kind
            return f"{kw} {self.name or '(anon)'}"
        return self.name or f"({self.kind} #{self.id})"


class Btf:
    """A BTF blob (an object's, a loaded map's, or the kernel's) with type lookup."""

    def __init__(self, ptr: int, owned: bool, keepalive: object = None):
        self._ptr = ptr
        self._owned = owned
        self._keepalive = keepalive  # e.g. the BpfObject whose BTF this is
        # Bound now: at interpreter shutdown __del__ may run after module globals are gone.
        self._free = libbpf.lib().btf__free if owned else None
        self._types: dict[int, BtfType] = {}
        self._ctypes: dict[int, type] = {}

    @classmethod
    def from_kernel(cls, btf_id: int) -> Btf:
        """The BTF the kernel holds under BTF_ID (e.g. a map's, from bpf_map_info)."""
        ptr = libbpf.check_ptr(libbpf.lib().btf__load_from_kernel_by_id(btf_id),
                               f"load BTF id {btf_id}")
        return cls(ptr, owned=True)

    @classmethod
    def from_elf(cls, path: str) -> Btf:
        """The .BTF section of an object file (no kernel involved: works without root)."""
        ptr = libbpf.check_ptr(libbpf.lib().btf__parse_elf(str(path).encode(), None),
                               "read BTF", str(path))
        return cls(ptr, owned=True)

    def close(self) -> None:
        if self._free is not None and self._ptr:
            self._free(self._ptr)
        self._ptr = 0

    def __del__(self) -> None:
        self.close()

    def __len__(self) -> int:
        return libbpf.lib().btf__type_cnt(self._ptr)

    def _name(self, off: int) -> str:
        s = libbpf.lib().btf__name_by_offset(self._ptr, off)
        return s.decode() if s else ""

    def type(self, type_id: int) -> BtfType:
        t = self._types.get(type_id)
        if t is None:
            t = self._types[type_id] = self._read(type_id)
        return t

    def _read(self, type_id: int) -> BtfType:
        if type_id == 0:
            return BtfType(0, "void", "void")
        if not self._ptr:
            raise RuntimeError("this BTF was freed (its BpfObject was closed)")
        ptr = libbpf.check_ptr(libbpf.lib().btf__type_by_id(self._ptr, type_id),
                               f"BTF type {type_id}")
        raw = _RawType.from_address(ptr)
        kind = KINDS.get((raw.info >> 24) & 0x1F, "unknown")
        vlen, kflag = raw.info & 0xFFFF, bool(raw.info >> 31)
        name = self._name(raw.name_off)
        tail = ptr + ctypes.sizeof(_RawType)
        if kind == "int":
            enc = ctypes.c_uint32.from_address(tail).value
            return BtfType(type_id, kind, name, size=raw.size_or_type,
                           signed=bool((enc >> 24) & _INT_SIGNED), bits=enc & 0xFF)
        if kind == "array":
            arr = _RawArray.from_address(tail)
            return BtfType(type_id, kind, name, ref=arr.type, nelems=arr.nelems)
        if kind in ("struct", "union"):
            members = []
            for m in (_RawMember * vlen).from_address(tail):
                bits, off = (m.offset >> 24, m.offset & 0xFFFFFF) if kflag else (0, m.offset)
                members.append(Member(self._name(m.name_off), m.type, off, bits))
            return BtfType(type_id, kind, name, size=raw.size_or_type, members=tuple(members))
        if kind == "enum":
            values = tuple((self._name(e.name_off), e.val if kflag else e.val & 0xFFFFFFFF)
                           for e in (_RawEnum * vlen).from_address(tail))
            return BtfType(type_id, kind, name, size=raw.size_or_type, signed=kflag,
                           enumerators=values)
        if kind == "enum64":
            values = tuple((self._name(e.name_off), e.val_hi32 << 32 | e.val_lo32)
                           for e in (_RawEnum64 * vlen).from_address(tail))
            return BtfType(type_id, kind, name, size=raw.size_or_type, signed=kflag,
                           enumerators=values)
        if kind == "datasec":
            info = tuple((v.type, v.offset, v.size)
                         for v in (_RawVarSecinfo * vlen).from_address(tail))
            return BtfType(type_id, kind, name, size=raw.size_or_type, secinfo=info)
        if kind in ("float", "fwd"):
            return BtfType(type_id, kind, name, size=raw.size_or_type if kind == "float" else 0)
        # ptr, typedef, modifiers, var, func, func_proto, decl_tag: a reference to another type
        return BtfType(type_id, kind, name, ref=raw.size_or_type)

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs and const/volatile/restrict/type_tag."""
        t = self.type(type_id)
        while t.kind in _MODIFIERS:
            t = self.type(t.ref)
        return t

    def size_of(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind == "array":
            return t.nelems * self.size_of(t.ref)
        if t.kind == "ptr":
            return 8
        return t.size

    def find(self, name: str, kind: str) -> int:
        """Id of the type NAME of KIND (e.g. "__sk_buff", "struct"); KeyError if absent."""
        kind_no = next(k for k, v in KINDS.items() if v == kind)
        type_id = libbpf.lib().btf__find_by_name_kind(self._ptr, name.encode(), kind_no)
        if type_id < 0:
            raise KeyError(f"{kind} {name}")
        return type_id

    def describe(self, type_id: int) -> str:
        t = self.type(type_id)
        if t.kind == "array":
            return f"{self.describe(t.ref)}[{t.nelems}]"
        if t.kind == "ptr":
            return f"{self.describe(t.ref)} *"
        if t.kind in ("const", "volatile", "restrict"):
            return f"{t.kind} {self.describe(t.ref)}"
        return t.describe()

    def flat_members(self, type_id: int) -> list[tuple[str, int, Member]]:
        """(name, byte offset, member) of a struct/union, anonymous members flattened."""
        out = []
        for m in self.resolve(type_id).members:
            if m.name:
                out.append((m.name, m.offset, m))
                continue
            for name, off, inner in self.flat_members(m.type_id):
                out.append((name, m.offset + off, inner))
        return out

    # --- BTF -> ctypes ---------------------------------------------------------------------

    def ctype(self, type_id: int) -> type:
        """A ctypes type with exactly the layout of BTF type TYPE_ID."""
        t = self._ctypes.get(type_id)
        if t is None:
            t = self._ctypes[type_id] = self._make_ctype(type_id)
        return t

    def _make_ctype(self, type_id: int) -> type:
        t = self.resolve(type_id)
        if t.kind in ("int", "enum", "enum64"):
            return _INT_CTYPES[(t.size, t.signed)]
        if t.kind == "ptr":
            return ctypes.c_uint64
        if t.kind == "float":
            return {4: ctypes.c_float, 8: ctypes.c_double}[t.size]
        if t.kind == "array":
            return self.ctype(t.ref) * t.nelems
        if t.kind in ("struct", "union", "datasec"):
            return self._make_record(t)
        raise LayoutError(f"cannot represent BTF {t.kind} {t.name or '(anon)'} in Python")

    def _make_record(self, t: BtfType) -> type:
        if t.kind == "datasec":  # global variables of a section, as one struct
            members = [(self.type(var).name, off, self.type(var).ref) for var, off, _ in t.secinfo]
            kind, size = "struct", t.size
        else:
            for m in t.members:
                if m.bitfield_size or m.bit_offset % 8:
                    raise LayoutError(f"{t.describe()}: bitfield member '{m.name}' cannot be "
                                      "represented; use whole integer members in map types")
            members = [(m.name, m.offset, m.type_id) for m in t.members]
            kind, size = t.kind, t.size
        base = BtfStruct if kind == "struct" else BtfUnion
        name = t.name.lstrip(".") or f"anon_{t.kind}_{t.id}"
        fields: list[tuple] = []
        anonymous: list[str] = []
        names = []
        pos = 0
        for i, (mname, offset, type_id) in enumerate(members):
            if not mname:
                mname = f"_anon{i}"
                anonymous.append(mname)
            names.append((mname, offset))
            if kind == "struct" and offset > pos:
                fields.append((f"_pad{pos}", ctypes.c_uint8 * (offset - pos)))
            fields.append((mname, self.ctype(type_id)))
            pos = offset + self.size_of(type_id)
        if kind == "struct" and size > pos:
            fields.append((f"_pad{pos}", ctypes.c_uint8 * (size - pos)))
        # Natural alignment first (it matches C for the usual structs); packed structs need
        # _pack_ = 1, with the explicit padding above placing every member.
        for pack in (None, 1):
            ns: dict[str, object] = {"_anonymous_": anonymous, "__doc__": f"{t.describe()} (BTF)"}
            if pack:
                ns["_pack_"] = pack
            ns["_fields_"] = fields
            cls = type(name, (base,), ns)
            if ctypes.sizeof(cls) == size and all(getattr(cls, n).offset == off
                                                  for n, off in names):
                return cls
        raise LayoutError(f"{t.describe()}: cannot lay out a ctypes type matching BTF")

    # --- checking a Python type against BTF ------------------------------------------------

    def check(self, pytype: type, type_id: int, prefix: bool = False) -> None:
        """Raise LayoutError unless PYTYPE has BTF type TYPE_ID's layout (recursively: every
        member's name, offset and size; array lengths; total size).

        With PREFIX, PYTYPE may be a leading part of the struct (the kernel's append-only
        info structs): each of its members must match, later BTF members may be absent.
        """
        t = self.resolve(type_id)
        what = f"{t.describe()} (BTF) vs {pytype.__name__} (Python)"
        if not prefix:
            self._check(pytype, type_id, what, "")
            return
        members = {name: (off, m) for name, off, m in self.flat_members(type_id)}
        for name in _flat_field_names(pytype):
            if name not in members:
                raise LayoutError(f"{what}: member '{name}' exists in Python but not in BTF")
            off, m = members[name]
            desc = getattr(pytype, name)
            if (desc.offset, desc.size) != (off, self.size_of(m.type_id)):
                raise LayoutError(f"{what}: member '{name}' is {desc.size} bytes at offset "
                                  f"{desc.offset} in Python but {self.size_of(m.type_id)} "
                                  f"bytes at offset {off} in BTF")
            self._check(_field_type(pytype, name), m.type_id, what, name)

    def _check(self, pytype: type, type_id: int, what: str, path: str) -> None:
        t = self.resolve(type_id)
        at = f"member '{path}'" if path else "the type"
        btf_size, py_size = self.size_of(type_id), ctypes.sizeof(pytype)
        if t.kind in ("struct", "union"):
            if not (isinstance(pytype, type) and issubclass(pytype, (Structure, ctypes.Union))):
                raise LayoutError(f"{what}: {at} is {self.describe(type_id)} in BTF but "
                                  f"{pytype.__name__} in Python")
            seen = set()
            for name, off, m in self.flat_members(type_id):
                full = f"{path}.{name}" if path else name
                if m.bitfield_size or m.bit_offset % 8:
                    raise LayoutError(f"{what}: member '{full}' is a bitfield, which map "
                                      "types must not use")
                desc = getattr(pytype, name, None)
                if not isinstance(desc, _CField):
                    raise LayoutError(f"{what}: member '{full}' is missing in Python")
                seen.add(name)
                size = self.size_of(m.type_id)
                if desc.offset != off:
                    raise LayoutError(f"{what}: member '{full}' is at offset {desc.offset} in "
                                      f"Python but {off} in BTF")
                if desc.size != size:
                    raise LayoutError(f"{what}: member '{full}' is {desc.size} bytes in "
                                      f"Python but {size} in BTF ({self.describe(m.type_id)})")
                self._check(_field_type(pytype, name), m.type_id, what, full)
            extra = [n for n in _flat_field_names(pytype) if n not in seen and
                     not n.startswith("_")]
            if extra:
                where = f" of '{path}'" if path else ""
                raise LayoutError(f"{what}: member '{extra[0]}'{where} exists in Python but "
                                  "not in BTF")
        elif t.kind in ("int", "enum", "enum64", "ptr", "float"):
            if not (isinstance(pytype, type) and issubclass(pytype, ctypes._SimpleCData)):
                raise LayoutError(f"{what}: {at} is {self.describe(type_id)} in BTF but "
                                  f"{pytype.__name__} in Python")
        elif t.kind == "array":
            if not (isinstance(pytype, type) and issubclass(pytype, ctypes.Array)):
                raise LayoutError(f"{what}: {at} is {self.describe(type_id)} in BTF but "
                                  f"{pytype.__name__} in Python")
            if pytype._length_ != t.nelems:
                raise LayoutError(f"{what}: {at} has {t.nelems} elements in BTF but "
                                  f"{pytype._length_} in Python")
            self._check(pytype._type_, t.ref, what, f"{path}[]")
        if btf_size != py_size:
            raise LayoutError(f"{what}: {at} is {py_size} bytes in Python but {btf_size} in "
                              f"BTF ({self.describe(type_id)})")


def plain(v: object) -> object:
    """A ctypes value as plain Python: records -> dicts, arrays -> lists (for JSON, repr)."""
    if isinstance(v, (Structure, ctypes.Union)):
        return {n: plain(getattr(v, n)) for n in _flat_field_names(type(v))
                if not n.startswith("_")}
    if isinstance(v, ctypes.Array):
        return [plain(x) for x in v]
    return v


class _Record:
    """Readable, comparable ctypes records (those derived from BTF)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and bytes(self) == bytes(other)  # type: ignore

    def __hash__(self) -> int:
        return hash(bytes(self))  # type: ignore[call-overload]

    def to_dict(self) -> dict:
        return plain(self)  # type: ignore[return-value]


class BtfStruct(_Record, Structure):
    pass


class BtfUnion(_Record, ctypes.Union):
    pass


class _Probe(Structure):
    _fields_ = [("x", ctypes.c_int)]


_CField = type(_Probe.x)  # the descriptor type of ctypes record members

_INT_CTYPES = {
    (1, False): ctypes.c_uint8, (1, True): ctypes.c_int8,
    (2, False): ctypes.c_uint16, (2, True): ctypes.c_int16,
    (4, False): ctypes.c_uint32, (4, True): ctypes.c_int32,
    (8, False): ctypes.c_uint64, (8, True): ctypes.c_int64,
    (16, False): ctypes.c_uint8 * 16, (16, True): ctypes.c_uint8 * 16,
}


def _all_fields(pytype: type) -> list[tuple]:
    """_fields_ of a ctypes record including those of its ctypes base classes."""
    out = []
    for klass in reversed(pytype.__mro__):
        out.extend(klass.__dict__.get("_fields_", ()))
    return out


def _field_type(pytype: type, name: str) -> type:
    for f in _all_fields(pytype):
        if f[0] == name:
            return f[1]
    for anon in getattr(pytype, "_anonymous_", ()):
        try:
            return _field_type(_field_type(pytype, anon), name)
        except KeyError:
            continue
    raise KeyError(name)


def _flat_field_names(pytype: type) -> list[str]:
    anonymous = set(getattr(pytype, "_anonymous_", ()))
    names = []
    for f in _all_fields(pytype):
        if f[0] in anonymous:
            names.extend(_flat_field_names(f[1]))
        else:
            names.append(f[0])
    return names


@functools.cache
def vmlinux() -> Btf:
    """The running kernel's BTF (/sys/kernel/btf/vmlinux), parsed once per process."""
    try:
        ptr = libbpf.check_ptr(libbpf.lib().btf__load_vmlinux_btf(), "load vmlinux BTF")
    except OSError as e:
        raise LabError(f"the kernel's BTF is not readable ({e.strerror}); the lab needs "
                       "CONFIG_DEBUG_INFO_BTF=y") from None
    return Btf(ptr, owned=True)


def kernel_struct(name: str) -> type:
    """A ctypes type for the running kernel's `struct NAME` (e.g. __sk_buff, xdp_md)."""
    btf = vmlinux()
    return btf.ctype(btf.find(name, "struct"))
