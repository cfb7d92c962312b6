"""BPF objects: open and load a compiled object (build/bpf/NAME.o) through libbpf, find its
programs and maps by name, set its global configuration, pin its maps.

A verifier rejection raises BpfLoadError naming the object, the program and its section, with
the tail of the verifier log. Maps can be pinned under a lab's bpffs directory at load time; a
later load with the same directory reuses them, so state survives a datapath reload.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
from pathlib import Path
from typing import Any

from lab.bpf import bpffs, libbpf
from lab.bpf.btf import Btf, LayoutError
from lab.bpf.maps import InnerSpec, Map, MapInfo, MapOfMaps
from lab.errors import LabError, UsageError

REPO = Path(__file__).resolve().parents[2]
OBJECT_DIR = REPO / "build" / "bpf"
LOG_TAIL_LINES = 30


def object_path(name: str | os.PathLike) -> Path:
    """NAME as a file if it looks like a path, else build/bpf/NAME.o."""
    s = os.fspath(name)
    if s.endswith(".o") or "/" in s:
        return Path(s)
    return OBJECT_DIR / f"{s}.o"


def elf_section_names(path: str) -> list[str]:
    """The section names of an ELF64 little-endian file (a BPF object)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x7fELF\x02\x01":
        raise UsageError(f"{path}: not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = data[headers[shstrndx][4]:][:headers[shstrndx][5]]
    return [strtab[h[0]:strtab.index(b"\0", h[0])].decode() for h in headers]


class BpfLoadError(LabError):
    """An object that failed to load; for a verifier rejection, which program and why."""

    def __init__(self, path: str, errno_: int, program: str | None = None,
                 section: str | None = None, verifier_log: str = "",
                 messages: list[str] | None = None):
        self.path, self.errno, self.program, self.section = path, errno_, program, section
        self.verifier_log, self.messages = verifier_log, messages or []
        super().__init__(self._text())

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return self.verifier_log.rstrip("\n").splitlines()[-lines:]

    def _text(self) -> str:
        reason = os.strerror(self.errno) if self.errno else "failed"
        if self.program:
            head = (f"{self.path}: program '{self.program}' (section '{self.section}') was "
                    f"rejected by the verifier: {reason}")
        else:
            head = f"{self.path}: loading failed: {reason}"
        if self.errno in (errno.EPERM, errno.EACCES) and not self.verifier_log:
            head += " (loading BPF needs root: CAP_BPF, CAP_NET_ADMIN)"
        if self.verifier_log:
            all_lines = self.verifier_log.rstrip("\n").splitlines()
            tail = self.log_tail()
            body = [f"verifier log (last {len(tail)} of {len(all_lines)} lines):"]
            # 7.x verifiers head a longer explanation with a verdict line: keep it in view.
            verdict = next((ln for ln in all_lines if ln.startswith("Verification failed:")),
                           None)
            if verdict is not None and verdict not in tail:
                body.insert(0, verdict)
            body += [f"  {line}" for line in tail]
        else:
            body = [f"  libbpf: {m.rstrip()}" for m in self.messages[-8:]]
        return "\n".join([head, *body])


_LOAD_FAILED = re.compile(r"prog '([^']+)': BPF program load failed")
_PROG_LOG = re.compile(r"prog '([^']+)': -- BEGIN PROG LOAD LOG --\n(.*)-- END PROG LOAD LOG --",
                       re.S)


class Program:
    """A program of a BpfObject (fd valid once the object is loaded)."""

    def __init__(self, obj: BpfObject, ptr: int):
        lib = libbpf.lib()
        self.object, self._ptr = obj, ptr
        self.name: str = lib.bpf_program__name(ptr).decode()
        self.section: str = lib.bpf_program__section_name(ptr).decode()
        self.type: int = lib.bpf_program__type(ptr)

    @property
    def type_name(self) -> str:
        return libbpf.prog_type_name(self.type)

    @property
    def fd(self) -> int:
        return libbpf.check(libbpf.lib().bpf_program__fd(self._ptr),
                            f"program {self.name} is not loaded")

    @property
    def id(self) -> int:
        return libbpf.obj_info(self.fd, libbpf.bpf_prog_info(), "program info").id

    @property
    def is_xdp(self) -> bool:
        return self.type == libbpf.PROG_TYPE_XDP

    def __repr__(self) -> str:
        return f"<Program {self.object.name}:{self.name} {self.type_name} '{self.section}'>"


class BpfObject:
    """An opened (then loaded) BPF object file. Use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike, pin_maps_dir: str | None = None):
        self.path = str(object_path(path))
        if not os.path.exists(self.path):
            hint = " (run `make bpf`)" if self.path.startswith(str(OBJECT_DIR)) else ""
            raise UsageError(f"{self.path}: no such BPF object{hint}")
        lib = libbpf.lib()
        with libbpf.captured_messages() as msgs:
            ptr = lib.bpf_object__open_file(self.path.encode(), None)
        if not ptr:
            raise BpfLoadError(self.path, ctypes.get_errno() or errno.EINVAL,
                               messages=[m for _, m in msgs])
        self._ptr = ptr
        self.name: str = lib.bpf_object__name(ptr).decode()
        self.pin_maps_dir = pin_maps_dir
        self.loaded = False
        self.programs: dict[str, Program] = {}
        prog = None
        while prog := lib.bpf_object__next_program(ptr, prog):
            p = Program(self, prog)
            self.programs[p.name] = p
        self._map_ptrs: dict[str, int] = {}
        self._inner: dict[str, InnerSpec] = {}
        m = None
        while m := lib.bpf_object__next_map(ptr, m):
            name = lib.bpf_map__name(m).decode()
            self._map_ptrs[name] = m
            inner = lib.bpf_map__inner_map(m)
            if inner:  # libbpf drops the inner template once the outer map exists: keep it
                self._inner[name] = InnerSpec(
                    lib.bpf_map__type(inner), lib.bpf_map__key_size(inner),
                    lib.bpf_map__value_size(inner), lib.bpf_map__max_entries(inner),
                    lib.bpf_map__map_flags(inner), key_type_id=lib.bpf_map__btf_key_type_id(inner),
                    value_type_id=lib.bpf_map__btf_value_type_id(inner))
        self.maps: dict[str, Map] = {}
        self._btf: Btf | None = None

    # --- before load -----------------------------------------------------------------------

    def set_global(self, name: str, value: Any) -> None:
        """Set global variable NAME (e.g. a `const volatile` config in .rodata) before load.
        VALUE is an int for integer variables, else a ctypes instance or bytes of its size."""
        if self.loaded:
            raise RuntimeError(f"{self.name}: globals are fixed once the object is loaded")
        lib = libbpf.lib()
        btf = self.btf
        for mname, m in self._map_ptrs.items():
            if not lib.bpf_map__is_internal(m):
                continue
            sec = btf.resolve(lib.bpf_map__btf_value_type_id(m))
            for var_id, offset, size in sec.secinfo:
                var = btf.type(var_id)
                if var.name != name:
                    continue
                ctype = btf.ctype(var.ref)
                if isinstance(value, int):
                    data = bytes(ctype(value))
                elif isinstance(value, (bytes, bytearray)):
                    data = bytes(value)
                else:
                    btf.check(type(value), var.ref)
                    data = bytes(value)
                if len(data) != size:
                    raise LayoutError(f"{self.name}: global '{name}' is {size} bytes, "
                                      f"{len(data)} given")
                n = ctypes.c_size_t()
                base = libbpf.check_ptr(lib.bpf_map__initial_value(m, ctypes.byref(n)),
                                        f"initial value of {mname}")
                ctypes.memmove(base + offset, data, size)
                return
        raise KeyError(f"{self.name}: no global variable '{name}'")

    def set_max_entries(self, name: str, max_entries: int) -> None:
        """Size map NAME before load (e.g. a connection table to the expected load)."""
        if self.loaded:
            raise RuntimeError(f"{self.name}: map sizes are fixed once the object is loaded")
        if name not in self._map_ptrs:
            raise UsageError(f"{self.path}: no map '{name}' (has: {', '.join(self._map_ptrs)})")
        libbpf.check(libbpf.lib().bpf_map__set_max_entries(self._map_ptrs[name], max_entries),
                     f"set max_entries of {name}")

    # --- load ------------------------------------------------------------------------------

    def load(self, only: list[str] | None = None) -> BpfObject:
        """Load into the kernel (with ONLY, just those programs); BpfLoadError on failure."""
        lib = libbpf.lib()
        if only is not None:
            for p in self.programs.values():
                lib.bpf_program__set_autoload(p._ptr, p.name in only)
        if self.pin_maps_dir:
            bpffs.make_dir(self.pin_maps_dir)
            for name, m in self._map_ptrs.items():
                if not lib.bpf_map__is_internal(m):
                    libbpf.check(lib.bpf_map__set_pin_path(
                        m, f"{self.pin_maps_dir}/{name}".encode()), f"pin path of {name}")
        with libbpf.captured_messages() as captured:
            ret = lib.bpf_object__load(self._ptr)
        if ret < 0:
            raise self._load_error(-ret, [m for _, m in captured])
        self.loaded = True
        btf_fd = lib.bpf_object__btf_fd(self._ptr)
        btf_id = libbpf.obj_info(btf_fd, libbpf.bpf_btf_info(), "BTF info").id \
            if btf_fd >= 0 else 0
        for name, m in self._map_ptrs.items():
            info = MapInfo(name, lib.bpf_map__type(m), lib.bpf_map__key_size(m),
                           lib.bpf_map__value_size(m), lib.bpf_map__max_entries(m),
                           lib.bpf_map__map_flags(m))
            klass = MapOfMaps if info.type in libbpf.MAP_OF_MAPS_TYPES else Map
            key_type_id = lib.bpf_map__btf_key_type_id(m) or self._declared_key_type(name)
            mp = klass(lib.bpf_map__fd(m), info, self.btf, key_type_id,
                       lib.bpf_map__btf_value_type_id(m), keepalive=self)
            if name in self._inner:
                spec = self._inner[name]
                mp.inner_spec = InnerSpec(spec.type, spec.key_size, spec.value_size,
                                          spec.max_entries, spec.flags, self.btf, btf_id,
                                          spec.key_type_id, spec.value_type_id)
            self.maps[name] = mp
        return self

    def _declared_key_type(self, name: str) -> int:
        """The key type written in the C map definition. libbpf keeps BTF away from the
        kernel for some map types (map-in-map), but the object's BTF still has it."""
        btf = self.btf
        try:
            maps_sec = btf.resolve(btf.find(".maps", "datasec"))
        except KeyError:
            return 0
        for var_id, _, _ in maps_sec.secinfo:
            var = btf.type(var_id)
            if var.name == name:
                for m in btf.resolve(var.ref).members:
                    if m.name == "key":
                        return btf.resolve(m.type_id).ref  # __type(key, T) is a T *
        return 0

    def _load_error(self, err: int, messages: list[str]) -> BpfLoadError:
        text = "".join(messages)
        program = log = None
        if m := _LOAD_FAILED.search(text):
            program = m.group(1)
        for m in _PROG_LOG.finditer(text):
            if program is None or m.group(1) == program:
                program, log = m.group(1), m.group(2)
        section = self.programs[program].section if program in self.programs else None
        return BpfLoadError(self.path, err, program, section, log or "", messages)

    # --- after load ------------------------------------------------------------------------

    @property
    def btf(self) -> Btf:
        if self._btf is None:
            ptr = libbpf.check_ptr(libbpf.lib().bpf_object__btf(self._ptr),
                                   f"{self.name} has no BTF (compile with -g)")
            self._btf = Btf(ptr, owned=False, keepalive=self)
        return self._btf

    def program(self, name: str | None = None, *, xdp: bool | None = None) -> Program:
        """Program NAME; without a name, the only program (of the XDP or non-XDP kind)."""
        if name is not None:
            try:
                return self.programs[name]
            except KeyError:
                raise UsageError(f"{self.path}: no program '{name}' (has: "
                                 f"{', '.join(self.programs)})") from None
        cands = [p for p in self.programs.values() if xdp is None or p.is_xdp == xdp]
        if len(cands) != 1:
            kind = {True: "XDP ", False: "non-XDP ", None: ""}[xdp]
            raise UsageError(f"{self.path}: {len(cands)} {kind}programs "
                             f"({', '.join(p.name for p in cands) or 'none'}); name one")
        return cands[0]

    def map(self, name: str, key: type | None = None, value: type | None = None) -> Map:
        """Map NAME, with the caller's key/value types checked against its BTF if given."""
        if not self.loaded:
            raise RuntimeError(f"{self.name}: load the object before using its maps")
        try:
            m = self.maps[name]
        except KeyError:
            raise UsageError(f"{self.path}: no map '{name}' (has: "
                             f"{', '.join(self.maps)})") from None
        return m.typed(key, value) if (key or value) else m

    def reset_maps(self) -> None:
        """Every map back to how load() left it (Map.reset: empty, zero), for tests that want
        a fresh object without loading it again. Constant globals (.rodata, .kconfig) stay.
        Refused for objects whose load() puts more than that in their maps: globals the
        programs write (.data, .bss), map-in-map slots filled by initialisers."""
        if not self.loaded:
            raise RuntimeError(f"{self.name}: load the object before resetting its maps")
        lib = libbpf.lib()
        for name, m in self._map_ptrs.items():
            if not lib.bpf_map__is_internal(m):
                continue
            if not lib.bpf_map__map_flags(m) & libbpf.BPF_F_RDONLY_PROG:
                raise UsageError(f"{self.path}: its programs write global data ({name}): "
                                 "load it afresh instead of resetting it")
        # Relocations in .maps are initialisers of map-in-map slots (or program arrays),
        # which load() fills and an emptied map would lose.
        if ".rel.maps" in elf_section_names(self.path):
            raise UsageError(f"{self.path}: load() fills some of its maps from initialisers "
                             "(.rel.maps): load it afresh instead of resetting it")
        for name, m in self._map_ptrs.items():
            if not lib.bpf_map__is_internal(m):
                self.maps[name].reset()

    def pinned_maps(self) -> dict[str, str]:
        """Map name -> pin path, for the maps pinned by load(pin_maps_dir=...)."""
        lib = libbpf.lib()
        out = {}
        for name, m in self._map_ptrs.items():
            p = lib.bpf_map__pin_path(m)
            if p and os.path.exists(p.decode()):
                out[name] = p.decode()
        return out

    def unpin_maps(self) -> None:
        for path in self.pinned_maps().values():
            os.unlink(path)

    def close(self) -> None:
        if getattr(self, "_ptr", None):
            self.maps.clear()
            if self._btf is not None:
                self._btf.close()  # libbpf frees it with the object; stop using the pointer
            self._btf = None
            libbpf.lib().bpf_object__close(self._ptr)
            self._ptr = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | os.PathLike, pin_maps_dir: str | None = None,
         only: list[str] | None = None, **globals_: Any) -> BpfObject:
    """Open and load an object (by path or by name under build/bpf), setting globals first."""
    obj = BpfObject(path, pin_maps_dir)
    try:
        for k, v in globals_.items():
            obj.set_global(k, v)
        return obj.load(only)
    except BaseException:
        obj.close()
        raise
