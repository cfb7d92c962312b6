"""Thin ctypes binding to libbpf.so.1: only the calls the lab uses, typed, errors as OSError.

Written against the symbols of libbpf 1.1 (Debian 12) so it also works with 1.3+ (Ubuntu 24.04).
What 1.1 lacks (tcx and netkit attach) is done with bpf_link_create() and the kernel's raw attach
type numbers, which libbpf 1.1 passes through unchanged (see `link_create`).

libbpf's messages go through one print callback: they are logged, and `captured_messages()`
collects them for the calling thread, so a failed load can say which program the verifier
rejected and show its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_int, c_size_t, c_uint8,
                    c_uint32, c_uint64, c_void_p)

from lab.errors import UsageError

log = logging.getLogger("lab.bpf.libbpf")

# enum bpf_prog_type
PROG_TYPE_SCHED_CLS = 3
PROG_TYPE_XDP = 6

# enum bpf_map_type (the ones with behaviour the lab cares about)
MAP_TYPE_HASH = 1
MAP_TYPE_ARRAY = 2
MAP_TYPE_PERCPU_HASH = 5
MAP_TYPE_PERCPU_ARRAY = 6
MAP_TYPE_LRU_HASH = 9
MAP_TYPE_LRU_PERCPU_HASH = 10
MAP_TYPE_LPM_TRIE = 11
MAP_TYPE_ARRAY_OF_MAPS = 12
MAP_TYPE_HASH_OF_MAPS = 13
MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
PERCPU_MAP_TYPES = frozenset({MAP_TYPE_PERCPU_HASH, MAP_TYPE_PERCPU_ARRAY,
                              MAP_TYPE_LRU_PERCPU_HASH, MAP_TYPE_PERCPU_CGROUP_STORAGE})
MAP_OF_MAPS_TYPES = frozenset({MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE_HASH_OF_MAPS})

# enum bpf_attach_type: link-based network hooks. tcx (6.6) and netkit (6.7) are newer than
# libbpf 1.1's headers; the numbers are kernel ABI (checked against vmlinux BTF in the tests).
ATTACH_XDP = 37
ATTACH_TCX_INGRESS = 46
ATTACH_TCX_EGRESS = 47
ATTACH_NETKIT_PRIMARY = 54
ATTACH_NETKIT_PEER = 55

# XDP attach flags (linux/if_link.h)
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2

# BPF_PROG_TEST_RUN flags (linux/bpf.h): the skb arrives CHECKSUM_COMPLETE, skb->csum summing the
# packet from its network header, and the run fails with EBADMSG unless the program left skb->csum
# summing what it made of the packet (kernel 6.11+)
TEST_RUN_SKB_CHECKSUM_COMPLETE = 1 << 2

# bpf_map_update_elem flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
# map_flags: a map the programs may only read (libbpf sets it on .rodata and .kconfig)
BPF_F_RDONLY_PROG = 1 << 7

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2


# --- structs passed to libbpf --------------------------------------------------------------
# libbpf "opts" structs start with their own size; libbpf accepts a shorter struct from an older
# or leaner caller, so each declares only the fields up to the last one the lab sets.

class LinkCreateOpts(Structure):
    _fields_ = [("sz", c_size_t), ("flags", c_uint32)]


class MapCreateOpts(Structure):
    _fields_ = [("sz", c_size_t), ("btf_fd", c_uint32), ("btf_key_type_id", c_uint32),
                ("btf_value_type_id", c_uint32), ("btf_vmlinux_value_type_id", c_uint32),
                ("inner_map_fd", c_uint32), ("map_flags", c_uint32)]


class ProgLoadOpts(Structure):
    _fields_ = [("sz", c_size_t), ("attempts", c_int), ("expected_attach_type", c_int)]


class TestRunOpts(Structure):
    _fields_ = [("sz", c_size_t), ("data_in", c_void_p), ("data_out", c_void_p),
                ("data_size_in", c_uint32), ("data_size_out", c_uint32),
                ("ctx_in", c_void_p), ("ctx_out", c_void_p),
                ("ctx_size_in", c_uint32), ("ctx_size_out", c_uint32),
                ("retval", c_uint32), ("repeat", c_int), ("duration", c_uint32),
                ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32)]


# --- kernel info structs (linux/bpf.h, append-only ABI) --------------------------------------
# The kernel copies min(our size, its size), so a prefix is enough. tests/unit checks these
# against the running kernel's BTF so a typo cannot hide.

class bpf_map_info(Structure):  # noqa: N801 (the kernel's name, so the BTF check can match it)
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("key_size", c_uint32),
                ("value_size", c_uint32), ("max_entries", c_uint32), ("map_flags", c_uint32),
                ("name", c_char * 16), ("ifindex", c_uint32),
                ("btf_vmlinux_value_type_id", c_uint32), ("netns_dev", c_uint64),
                ("netns_ino", c_uint64), ("btf_id", c_uint32), ("btf_key_type_id", c_uint32),
                ("btf_value_type_id", c_uint32)]


class bpf_prog_info(Structure):  # noqa: N801
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * 8)]


class bpf_btf_info(Structure):  # noqa: N801
    _fields_ = [("btf", c_uint64), ("btf_size", c_uint32), ("id", c_uint32)]


class bpf_link_info(Structure):  # noqa: N801
    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32)]


# --- the library ---------------------------------------------------------------------------

_PrintFn = CFUNCTYPE(c_int, c_int, c_void_p, c_void_p)

_P = c_void_p  # opaque libbpf object pointers (struct bpf_object *, bpf_program *, ...)
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (_P, [_PrintFn]),
    "libbpf_version_string": (c_char_p, []),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_bpf_prog_type_str": (c_char_p, [c_int]),
    "libbpf_bpf_map_type_str": (c_char_p, [c_int]),
    "libbpf_probe_bpf_helper": (c_int, [c_int, c_int, _P]),
    "bpf_object__open_file": (_P, [c_char_p, _P]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__name": (c_char_p, [_P]),
    "bpf_object__btf": (_P, [_P]),
    "bpf_object__btf_fd": (c_int, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_program__name": (c_char_p, [_P]),
    "bpf_program__section_name": (c_char_p, [_P]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_program__type": (c_int, [_P]),
    "bpf_program__set_autoload": (c_int, [_P, ctypes.c_bool]),
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__max_entries": (c_uint32, [_P]),
    "bpf_map__set_max_entries": (c_int, [_P, c_uint32]),
    "bpf_map__map_flags": (c_uint32, [_P]),
    "bpf_map__btf_key_type_id": (c_uint32, [_P]),
    "bpf_map__btf_value_type_id": (c_uint32, [_P]),
    "bpf_map__is_internal": (ctypes.c_bool, [_P]),
    "bpf_map__inner_map": (_P, [_P]),
    "bpf_map__set_pin_path": (c_int, [_P, c_char_p]),
    "bpf_map__pin_path": (c_char_p, [_P]),
    "bpf_map__unpin": (c_int, [_P, c_char_p]),
    "bpf_map__initial_value": (_P, [_P, POINTER(c_size_t)]),
    "bpf_map_create": (c_int, [c_int, c_char_p, c_uint32, c_uint32, c_uint32,
                               POINTER(MapCreateOpts)]),
    "bpf_map_lookup_elem": (c_int, [c_int, _P, _P]),
    "bpf_map_update_elem": (c_int, [c_int, _P, _P, c_uint64]),
    "bpf_map_update_batch": (c_int, [c_int, _P, _P, POINTER(c_uint32), _P]),
    "bpf_map_delete_elem": (c_int, [c_int, _P]),
    "bpf_map_get_next_key": (c_int, [c_int, _P, _P]),
    "bpf_map_get_fd_by_id": (c_int, [c_uint32]),
    "bpf_btf_get_fd_by_id": (c_int, [c_uint32]),
    "bpf_obj_get": (c_int, [c_char_p]),
    "bpf_obj_pin": (c_int, [c_int, c_char_p]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, _P, POINTER(c_uint32)]),
    "bpf_prog_load": (c_int, [c_int, c_char_p, c_char_p, _P, c_size_t, POINTER(ProgLoadOpts)]),
    "bpf_prog_test_run_opts": (c_int, [c_int, POINTER(TestRunOpts)]),
    "bpf_link_create": (c_int, [c_int, c_int, c_int, POINTER(LinkCreateOpts)]),
    "bpf_link_detach": (c_int, [c_int]),
    "btf__load_from_kernel_by_id": (_P, [c_uint32]),
    "btf__load_vmlinux_btf": (_P, []),
    "btf__parse_elf": (_P, [c_char_p, _P]),
    "btf__free": (None, [_P]),
    "btf__type_cnt": (c_uint32, [_P]),
    "btf__type_by_id": (_P, [_P, c_uint32]),
    "btf__name_by_offset": (c_char_p, [_P, c_uint32]),
    "btf__find_by_name_kind": (c_int, [_P, c_char_p, c_uint32]),
}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def lib() -> ctypes.CDLL:
    """The loaded library with its prototypes set (loaded on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            try:
                handle = ctypes.CDLL("libbpf.so.1", use_errno=True)
            except OSError as e:
                raise UsageError(f"libbpf.so.1 not found ({e}); install libbpf1 "
                                 "(tools/debian-packages.txt)") from None
            for name, (restype, argtypes) in _PROTOTYPES.items():
                fn = getattr(handle, name)
                fn.restype, fn.argtypes = restype, argtypes
            handle.libbpf_set_print(_print_callback)
            _lib = handle
    return _lib


def check(ret: int, what: str, path: str | None = None) -> int:
    """libbpf 1.x returns -errno from int functions: raise OSError for it, else pass ret on."""
    if ret < 0:
        raise OSError(-ret, f"{what}: {os.strerror(-ret)}", path)
    return ret


def check_ptr(ptr: int | None, what: str, path: str | None = None) -> int:
    """Pointer-returning libbpf functions return NULL and set errno."""
    if not ptr:
        err = ctypes.get_errno() or 22  # EINVAL if libbpf did not say
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ptr


def version() -> str:
    return lib().libbpf_version_string().decode()


def num_possible_cpus() -> int:
    return check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


def prog_type_name(prog_type: int) -> str:
    s = lib().libbpf_bpf_prog_type_str(prog_type)
    return s.decode() if s else f"prog_type_{prog_type}"


def map_type_name(map_type: int) -> str:
    s = lib().libbpf_bpf_map_type_str(map_type)
    return s.decode() if s else f"map_type_{map_type}"


def obj_info(fd: int, info: Structure, what: str) -> Structure:
    """bpf_obj_get_info_by_fd into INFO (a prefix of the kernel's struct is fine)."""
    size = c_uint32(ctypes.sizeof(info))
    check(lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), what)
    return info


def link_create(prog_fd: int, target_ifindex: int, attach_type: int, flags: int = 0) -> int:
    """BPF_LINK_CREATE for network hooks (XDP, tcx, netkit): the one place that does it.

    libbpf 1.1 has no bpf_program__attach_tcx/netkit, but its bpf_link_create() forwards any
    attach type it does not know with the target ifindex and flags, which is all tcx and netkit
    need when the program goes at the end of the chain (no relative_fd, no expected_revision).
    """
    opts = LinkCreateOpts(sz=ctypes.sizeof(LinkCreateOpts), flags=flags)
    return check(lib().bpf_link_create(prog_fd, target_ifindex, attach_type,
                                       ctypes.byref(opts)), "bpf_link_create")


def load_return_program(prog_type: int, retval: int, name: str = "lab_return") -> int:
    """Load a two-instruction program `return RETVAL;` (feature probes, benchmark baseline).
    Returns its fd, owned by the caller."""
    insns = bytes([0xB7, 0, 0, 0]) + retval.to_bytes(4, "little", signed=True)  # r0 = imm
    insns += bytes([0x95, 0, 0, 0, 0, 0, 0, 0])                                 # exit
    opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts),
                        expected_attach_type=ATTACH_XDP if prog_type == PROG_TYPE_XDP else 0)
    buf = ctypes.create_string_buffer(insns, len(insns))
    return check(lib().bpf_prog_load(prog_type, name.encode(), b"GPL", buf, len(insns) // 8,
                                     ctypes.byref(opts)), f"load {name}")


# --- libbpf's messages ---------------------------------------------------------------------

# Prefix of the message that carries a verifier log; it can be megabytes long.
_PROG_LOG_MARKER = b"-- BEGIN PROG LOAD LOG --"
_LOG_BUF_BIG = 16 << 20 | 4096  # libbpf's own verifier log buffer starts at 16 MiB
_LOG_BUF_SMALL = 8192

_libc = ctypes.CDLL(None)
_libc.vsnprintf.argtypes = [c_void_p, c_size_t, c_void_p, c_void_p]
_libc.vsnprintf.restype = c_int
_capture = threading.local()


def _format(fmt: int, va_list: int) -> str:
    # A va_list can be walked once only, so the buffer is sized by the format, not by retrying.
    size = _LOG_BUF_BIG if _PROG_LOG_MARKER in ctypes.string_at(fmt) else _LOG_BUF_SMALL
    buf = ctypes.create_string_buffer(size)
    n = _libc.vsnprintf(buf, size, fmt, va_list)
    text = buf.raw[:min(max(n, 0), size - 1)].decode(errors="replace")
    return text + ("\n[... truncated]" if n >= size else "")


@CFUNCTYPE(c_int, c_int, c_void_p, c_void_p)
def _print_callback(level: int, fmt: int, va_list: int) -> int:
    try:
        msg = _format(fmt, va_list)
        sink = getattr(_capture, "messages", None)
        if sink is not None:
            sink.append((level, msg))
            log.debug("libbpf: %s", msg.rstrip())
        elif level == LIBBPF_WARN:
            log.warning("libbpf: %s", msg.rstrip())
        else:
            log.debug("libbpf: %s", msg.rstrip())
    except Exception:  # never let an exception unwind into C
        pass
    return 0


@contextlib.contextmanager
def captured_messages() -> Iterator[list[tuple[int, str]]]:
    """Collect libbpf's messages printed by this thread during the body, instead of logging
    its warnings (the caller turns them into an error if the call fails)."""
    lib()
    outer = getattr(_capture, "messages", None)
    _capture.messages = []
    try:
        yield _capture.messages
    finally:
        inner = _capture.messages
        _capture.messages = outer
        if outer is not None:
            outer.extend(inner)
