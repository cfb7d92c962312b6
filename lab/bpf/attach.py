"""Attach programs to network devices, and detach exactly what was attached.

Hooks:
  tc-ingress, tc-egress        clsact qdisc + cls_bpf direct-action filter (pyroute2 netlink)
  tcx-ingress, tcx-egress      BPF links (kernel 6.6+)
  xdp, xdp-generic             BPF links, driver (native) mode or skb (generic) mode
  netkit-primary, netkit-peer  BPF links on a netkit device (kernel 6.7+)
  ingress, egress              tcx where the kernel has it, else tc (the record says which)

Attaching happens in the calling thread's network namespace (wrap the call in
`lab.netns.entered(ns)`, or pass netns=NAME). Links are pinned under the caller's bpffs
directory so they outlive the process; the tc filter lives on its device. Each attach returns
an `Attachment`, a small JSON-serialisable record; `detach(record)` undoes exactly that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import socket
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import tcmsg as _tcmsg
from pyroute2.netlink.rtnl.tcmsg import sched_bpf

from lab import netns as _netns
from lab.bpf import bpffs, features, libbpf
from lab.errors import LabError, UsageError

log = logging.getLogger("lab.bpf")

LINK_HOOKS = {
    "tcx-ingress": (libbpf.ATTACH_TCX_INGRESS, 0),
    "tcx-egress": (libbpf.ATTACH_TCX_EGRESS, 0),
    "xdp": (libbpf.ATTACH_XDP, libbpf.XDP_FLAGS_DRV_MODE),
    "xdp-generic": (libbpf.ATTACH_XDP, libbpf.XDP_FLAGS_SKB_MODE),
    "netkit-primary": (libbpf.ATTACH_NETKIT_PRIMARY, 0),
    "netkit-peer": (libbpf.ATTACH_NETKIT_PEER, 0),
}
TC_PARENT = {"tc-ingress": 0xFFFFFFF2, "tc-egress": 0xFFFFFFF3}  # clsact's minor handles
AUTO_HOOKS = ("ingress", "egress")
HOOKS = (*TC_PARENT, *LINK_HOOKS, *AUTO_HOOKS)

_TCX_MISSING = "tcx needs kernel 6.6 or later"
_NETKIT_MISSING = "netkit needs kernel 6.7 or later with CONFIG_NETKIT"
ETH_P_ALL = 0x0003


class AttachError(LabError):
    """A program that could not be attached (or detached), with what is missing."""


@dataclass
class Attachment:
    """What attach() did, enough for detach() to undo it (also from another process)."""
    hook: str                    # the hook used: never "ingress"/"egress"
    requested: str               # the hook asked for
    ifname: str
    ifindex: int
    netns: str | None            # namespace name given to attach(); None: the caller's
    netns_inode: int
    program: str
    prog_id: int
    pin: str | None = None       # link hooks: the pinned link
    link_id: int | None = None
    tc_parent: int | None = None  # tc hooks: the filter's place
    tc_prio: int | None = None
    tc_handle: int | None = None
    created_qdisc: bool = False  # tc: the clsact qdisc was added by this attach

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attachment:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


@dataclass(frozen=True)
class LinkRequest:
    """The BPF_LINK_CREATE a link hook turns into (separate so it can be tested anywhere)."""
    attach_type: int
    target_ifindex: int
    flags: int


def link_request(hook: str, ifindex: int) -> LinkRequest:
    """For netkit both hooks target the primary device: BPF_NETKIT_PEER selects its peer."""
    attach_type, flags = LINK_HOOKS[hook]
    return LinkRequest(attach_type, ifindex, flags)


def resolve_hook(hook: str) -> str:
    """The concrete hook for HOOK: `ingress`/`egress` become tcx-* if available, else tc-*."""
    if hook not in HOOKS:
        raise UsageError(f"unknown hook '{hook}' (one of: {', '.join(HOOKS)})")
    if hook in AUTO_HOOKS:
        return f"tcx-{hook}" if features.has_tcx() else f"tc-{hook}"
    return hook


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@contextlib.contextmanager
def _inside(netns: str | None) -> Iterator[None]:
    if netns is None:
        yield
    else:
        with _netns.entered(netns):
            yield


def _interface(iface: str | int) -> tuple[str, int]:
    try:
        if isinstance(iface, int):
            return socket.if_indextoname(iface), iface
        return iface, socket.if_nametoindex(iface)
    except OSError:
        raise AttachError(f"no network device {iface!r} in this namespace") from None


def _check_prog_type(prog: Any, hook: str) -> None:
    want_xdp = hook.startswith("xdp")
    if bool(prog.is_xdp) != want_xdp:
        kind = "an XDP" if want_xdp else "a tc (sched_cls)"
        raise AttachError(f"{hook} needs {kind} program; {prog.name} is {prog.type_name}")


def attach(prog: Any, hook: str, iface: str | int, *, pin_dir: str | None = None,
           pin_name: str | None = None, netns: str | None = None, prio: int = 1,
           handle: int = 1) -> Attachment:
    """Attach PROG (a loaded Program) at HOOK of device IFACE.

    Link hooks pin the link as PIN_DIR/PIN_NAME (default `netns:ifname:hook:program`);
    tc hooks add a filter at PRIO/HANDLE, creating the clsact qdisc if missing."""
    concrete = resolve_hook(hook)
    _check_prog_type(prog, concrete)
    with _inside(netns):
        ifname, ifindex = _interface(iface)
        inode = _netns_inode()
        rec = Attachment(concrete, hook, ifname, ifindex, netns, inode, prog.name, prog.id)
        if concrete in TC_PARENT:
            _attach_tc(prog, rec, prio, handle)
        else:
            if pin_dir is None:
                raise UsageError(f"{concrete}: a pin directory is needed so the link outlives "
                                 "this process")
            name = pin_name or f"{netns or f'ns{inode}'}:{ifname}:{concrete}:{prog.name}"
            _attach_link(prog, rec, f"{pin_dir}/{name}")
    log.info("attached %s at %s of %s%s", prog.name, concrete, ifname,
             f" in {netns}" if netns else "")
    return rec


def _attach_link(prog: Any, rec: Attachment, pin: str) -> None:
    req = link_request(rec.hook, rec.ifindex)
    bpffs.make_dir(os.path.dirname(pin))
    if os.path.lexists(pin):
        raise AttachError(f"{pin} exists already: is {rec.program} attached there already?")
    try:
        fd = libbpf.link_create(prog.fd, req.target_ifindex, req.attach_type, req.flags)
    except OSError as e:
        raise AttachError(_link_failure(rec, e.errno)) from None
    try:
        rec.link_id = libbpf.obj_info(fd, libbpf.bpf_link_info(), "link info").id
        libbpf.check(libbpf.lib().bpf_obj_pin(fd, pin.encode()), "pin link", pin)
        rec.pin = pin
    except BaseException:
        libbpf.lib().bpf_link_detach(fd)
        raise
    finally:
        os.close(fd)


def _link_failure(rec: Attachment, err: int) -> str:
    what = f"cannot attach {rec.program} at {rec.hook} of {rec.ifname}"
    reason = os.strerror(err)
    if rec.hook.startswith("tcx") and not features.has_tcx():
        reason = _TCX_MISSING
    elif rec.hook.startswith("netkit"):
        reason = (f"{rec.ifname} is not the primary device of a netkit pair"
                  if features.has_netkit_attach() else _NETKIT_MISSING)
    elif rec.hook == "xdp" and err == errno.EOPNOTSUPP:
        reason = f"the driver of {rec.ifname} has no native XDP; use xdp-generic"
    elif rec.hook.startswith("xdp") and err in (errno.EBUSY, errno.EEXIST):
        reason = f"{rec.ifname} has an XDP program already"
    elif rec.hook == "xdp" and err == errno.EINVAL:
        reason += " (native XDP on veth wants an MTU that fits a page, and no LRO)"
    return f"{what}: {reason}"


# pyroute2 0.9 decodes cls_bpf options only up to TCA_BPF_FLAGS; the kernel also reports the
# attached program's tag and id, which detach() checks before removing a filter.
class _BpfOptions(sched_bpf.options):
    nla_map = (*sched_bpf.options.nla_map, ("TCA_BPF_FLAGS_GEN", "uint32"),
               ("TCA_BPF_TAG", "hex"), ("TCA_BPF_ID", "uint32"))
    # pyroute2 caches the compiled table in class attributes a subclass would inherit.
    _nlmsg_base__compiled_nla = False


_tcmsg.plugins["bpf"] = types.SimpleNamespace(**{**vars(sched_bpf), "options": _BpfOptions})


def _tc_filters(ipr: IPRoute, ifindex: int, parent: int) -> list[dict[str, Any]]:
    out = []
    for msg in ipr.get_filters(ifindex, parent=parent):
        opts = msg.get_attr("TCA_OPTIONS")
        if msg.get_attr("TCA_KIND") != "bpf" or opts is None:
            continue
        out.append({"prio": msg["info"] >> 16, "handle": msg["handle"],
                    "prog_id": opts.get_attr("TCA_BPF_ID"), "name": opts.get_attr("TCA_BPF_NAME")})
    return out


def _has_filters(ipr: IPRoute, ifindex: int) -> bool:
    """Any filter of any kind left on clsact (those are what deleting the qdisc would drop)."""
    return any(msg.get_attr("TCA_OPTIONS") is not None
               for parent in TC_PARENT.values()
               for msg in ipr.get_filters(ifindex, parent=parent))


def _attach_tc(prog: Any, rec: Attachment, prio: int, handle: int) -> None:
    parent = TC_PARENT[rec.hook]
    with IPRoute() as ipr:
        try:
            ipr.tc("add", "clsact", rec.ifindex)
            rec.created_qdisc = True
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise AttachError(f"cannot add clsact qdisc to {rec.ifname}: {e.args[1]} "
                                  "(needs CONFIG_NET_SCH_INGRESS)") from None
        taken = [f for f in _tc_filters(ipr, rec.ifindex, parent)
                 if (f["prio"], f["handle"]) == (prio, handle)]
        try:
            if taken:
                raise AttachError(f"{rec.hook} of {rec.ifname}: prio {prio} handle {handle} "
                                  f"holds {taken[0]['name']} already")
            ipr.tc("add-filter", "bpf", rec.ifindex, handle=handle, fd=prog.fd, prio=prio,
                   name=f"{prog.object.name}:{prog.name}", parent=parent, classid=1,
                   direct_action=True, protocol=ETH_P_ALL)
        except NetlinkError as e:
            if rec.created_qdisc:
                ipr.tc("del", "clsact", rec.ifindex)
            raise AttachError(f"cannot attach {prog.name} at {rec.hook} of {rec.ifname}: "
                              f"{e.args[1]}") from None
        except AttachError:
            if rec.created_qdisc:
                ipr.tc("del", "clsact", rec.ifindex)
            raise
    rec.tc_parent, rec.tc_prio, rec.tc_handle = parent, prio, handle


def detach(record: Attachment | dict[str, Any]) -> bool:
    """Undo one attach(); False if there was nothing left to undo (device or link gone).

    A link is detached only if the pin still holds the link that attach() made, a tc filter
    only if it still runs the program attach() put there."""
    rec = record if isinstance(record, Attachment) else Attachment.from_dict(record)
    if rec.pin is not None:
        return _detach_link(rec)
    if rec.netns is not None and not _netns.exists(rec.netns):
        return False  # the namespace, its devices and their filters are gone
    with _inside(rec.netns):
        if _netns_inode() != rec.netns_inode:
            raise AttachError(f"{rec.program} was attached to {rec.ifname} in another network "
                              "namespace: enter it (lab.netns.entered) to detach")
        return _detach_tc(rec)


def _detach_link(rec: Attachment) -> bool:
    pin = rec.pin
    assert pin is not None
    fd = libbpf.lib().bpf_obj_get(pin.encode())
    if fd == -errno.ENOENT:
        return False
    libbpf.check(fd, "open pinned link", pin)
    try:
        link_id = libbpf.obj_info(fd, libbpf.bpf_link_info(), "link info").id
        if link_id != rec.link_id:
            raise AttachError(f"{pin} holds link {link_id}, not {rec.link_id} that attached "
                              f"{rec.program}; leaving it alone")
        # Detach now, even if someone else holds the link open; a link whose device went
        # away is detached already (EINVAL/ENOLINK), and only the pin is left to remove.
        ret = libbpf.lib().bpf_link_detach(fd)
        if ret < 0 and -ret not in (errno.EINVAL, errno.ENOLINK):
            libbpf.check(ret, "detach link", pin)
    finally:
        os.close(fd)
    os.unlink(pin)
    log.info("detached %s from %s of %s", rec.program, rec.hook, rec.ifname)
    return True


def _detach_tc(rec: Attachment) -> bool:
    with IPRoute() as ipr:
        if not ipr.link_lookup(index=rec.ifindex):
            return False
        mine = [f for f in _tc_filters(ipr, rec.ifindex, rec.tc_parent)
                if (f["prio"], f["handle"]) == (rec.tc_prio, rec.tc_handle)]
        if not mine:
            return False
        if mine[0]["prog_id"] != rec.prog_id:
            raise AttachError(f"{rec.hook} of {rec.ifname} prio {rec.tc_prio} runs program "
                              f"id {mine[0]['prog_id']}, not {rec.program} (id {rec.prog_id}); "
                              "leaving it alone")
        ipr.tc("del-filter", "bpf", rec.ifindex, handle=rec.tc_handle, prio=rec.tc_prio,
               parent=rec.tc_parent, protocol=ETH_P_ALL)
        if rec.created_qdisc and not _has_filters(ipr, rec.ifindex):
            ipr.tc("del", "clsact", rec.ifindex)
    log.info("detached %s from %s of %s", rec.program, rec.hook, rec.ifname)
    return True
