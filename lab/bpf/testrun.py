"""BPF_PROG_TEST_RUN: bytes in, (verdict, bytes out, ns) back, without attaching anything.

tc programs (sched_cls) get a `struct __sk_buff` context and XDP programs a `struct xdp_md`
when fields are given (e.g. ifindex, so a redirect has a device to name); both structs are
laid out from the running kernel's BTF. The return code is named (TC_ACT_*, XDP_*) and
sorted into what happens to the packet: passed, dropped or redirected.
"""

from __future__ import annotations

import ctypes
import errno
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.bpf import libbpf
from lab.bpf.btf import kernel_struct, plain

TC_CODES = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
            3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
            7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
XDP_CODES = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}

PASSED, DROPPED, REDIRECTED = "passed", "dropped", "redirected"
# cls_bpf direct-action and tcx both act on OK, SHOT, REDIRECT (and tc on STOLEN, TRAP) and
# treat every other code as "carry on", which ends in the packet passing.
_TC_OUTCOME = {2: DROPPED, 4: DROPPED, 8: DROPPED, 7: REDIRECTED}
_XDP_OUTCOME = {2: PASSED, 3: REDIRECTED, 4: REDIRECTED}  # XDP_TX: back out the same device

# Room for programs that grow the packet (encapsulation, 4->6 translation).
_OUT_SLACK = 4096


@dataclass(frozen=True)
class RunResult:
    retval: int            # signed for tc (TC_ACT_UNSPEC is -1)
    code: str              # TC_ACT_OK, XDP_DROP, ...
    verdict: str           # passed, dropped or redirected
    data: bytes            # the packet after the program (as the kernel left it)
    duration_ns: int       # average per repetition, as the kernel measured it
    ctx: dict[str, Any] | None = None  # the context after the run, if one was passed

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED


def verdict_of(xdp: bool, retval: int) -> tuple[str, str]:
    """(code name, outcome) for a program's return value."""
    if xdp:
        return XDP_CODES.get(retval, f"XDP_{retval}"), _XDP_OUTCOME.get(retval, DROPPED)
    return TC_CODES.get(retval, f"TC_ACT_{retval}"), _TC_OUTCOME.get(retval, PASSED)


def make_ctx(xdp: bool, fields: Mapping[str, Any], data_len: int) -> ctypes.Structure:
    """The kernel's __sk_buff or xdp_md with FIELDS set (others zero, as the kernel wants)."""
    ctype = kernel_struct("xdp_md" if xdp else "__sk_buff")
    ctx = ctype()
    for name, value in fields.items():
        if not hasattr(ctype, name) or name.startswith("_"):
            raise KeyError(f"struct {ctype.__name__} has no field '{name}'")
        if isinstance(value, (list, tuple)):
            getattr(ctx, name)[:] = value
        else:
            setattr(ctx, name, value)
    if xdp:  # no metadata; the kernel insists data_end is the packet length
        ctx.data, ctx.data_meta, ctx.data_end = 0, 0, data_len
    return ctx


def run(prog: Any, data: bytes, ctx: Mapping[str, Any] | None = None,
        repeat: int = 1, checksum_complete: bool = False) -> RunResult:
    """Run PROG (a Program, or anything with .fd and .is_xdp) once (or REPEAT times, on the
    same packet) over DATA, an Ethernet frame. CHECKSUM_COMPLETE (tc programs, kernel 6.11+):
    the skb comes in as a NIC's with a full receive checksum would, and the run fails with
    EBADMSG if skb->csum no longer sums the packet the program left."""
    xdp = bool(prog.is_xdp)
    data = bytes(data)
    out_size = len(data) + _OUT_SLACK
    while True:
        out = ctypes.create_string_buffer(out_size)
        opts = libbpf.TestRunOpts(sz=ctypes.sizeof(libbpf.TestRunOpts))
        opts.data_in = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p)
        opts.data_size_in = len(data)
        opts.data_out = ctypes.addressof(out)
        opts.data_size_out = out_size
        opts.repeat = repeat
        opts.flags = libbpf.TEST_RUN_SKB_CHECKSUM_COMPLETE if checksum_complete else 0
        ctx_in = make_ctx(xdp, ctx, len(data)) if ctx is not None else None
        ctx_out = type(ctx_in)() if ctx_in is not None else None
        if ctx_in is not None:
            opts.ctx_in, opts.ctx_size_in = ctypes.addressof(ctx_in), ctypes.sizeof(ctx_in)
            opts.ctx_out, opts.ctx_size_out = ctypes.addressof(ctx_out), ctypes.sizeof(ctx_out)
        ret = libbpf.lib().bpf_prog_test_run_opts(prog.fd, ctypes.byref(opts))
        if ret == -errno.ENOSPC and opts.data_size_out > out_size:
            out_size = opts.data_size_out  # the packet grew more than the slack: once more
            continue
        break
    if ret < 0:
        hint = ""
        if ret == -errno.EINVAL and len(data) < 14:
            hint = " (shorter than an Ethernet header)"
        elif ret == -errno.EBADMSG and checksum_complete:
            hint = (" (CHECKSUM_COMPLETE: skb->csum does not sum the packet the program "
                    "left)")
        elif ret == -errno.EINVAL and len(data) > 3000:
            hint = " (BPF_PROG_TEST_RUN takes packets up to about a page)"
        raise OSError(-ret, f"BPF_PROG_TEST_RUN of {getattr(prog, 'name', 'program')}: "
                            f"{errno.errorcode.get(-ret, -ret)}{hint}")
    retval = opts.retval if xdp else ctypes.c_int32(opts.retval).value
    code, verdict = verdict_of(xdp, retval)
    return RunResult(retval, code, verdict, out.raw[:opts.data_size_out], opts.duration,
                     plain(ctx_out) if ctx_out is not None else None)
