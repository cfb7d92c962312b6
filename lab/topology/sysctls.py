"""The sysctls a topology file sets, checked at load the way the kernel will take them.

A name the kernel does not have in a network namespace, or a value it refuses, would
otherwise surface half-way through `lab up`, after namespaces and links exist. So each one is
written, at load, into a throwaway network namespace (netns.anonymous: nothing mounted,
gone when the check ends): the kernel itself says whether it takes the name and the value.
Keys of a device (`net.ipv6.conf.eth0.forwarding`) are tried on `default`, which takes the
same values, after the device is found among the node's interfaces. Without the privilege to
make a namespace, names are looked up in this process's namespace and values are not tried.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass

from lab import netns

# Per-device sysctl trees: net.<family>.<tree>.<device>.<name>
DEVICE_TREES = {("ipv4", "conf"), ("ipv6", "conf"), ("ipv4", "neigh"), ("ipv6", "neigh")}
ANY_DEVICE = ("all", "default")


@dataclass(frozen=True)
class Setting:
    node: str
    key: str
    value: str


def path_of(key: str) -> str:
    """/proc/sys path of KEY; `net.ipv6.conf.eth0/1.forwarding` (sysctl(8)'s way to name a
    device with a dot in it) keeps its dots."""
    if "/" in key:
        return "/proc/sys/" + key
    return "/proc/sys/" + key.replace(".", "/")


def _split(key: str) -> list[str]:
    return key.split("/") if "/" in key else key.split(".")


def device_of(key: str) -> str | None:
    """The device a per-device key names (None for `all`, `default` and other keys)."""
    parts = _split(key)
    if len(parts) >= 5 and (parts[1], parts[2]) in DEVICE_TREES and parts[3] not in ANY_DEVICE:
        return parts[3]
    return None


def as_tried(key: str) -> str:
    """KEY with a device replaced by `default`, as it is tried in a namespace without it."""
    parts = _split(key)
    if device_of(key) is not None:
        parts[3] = "default"
    return ".".join(parts)


def problems(settings: Iterable[Setting], interfaces: dict[str, set[str]]
             ) -> list[tuple[Setting, str]]:
    """What is wrong with each of SETTINGS (empty: nothing); INTERFACES: node -> its
    devices."""
    settings = list(settings)
    out: list[tuple[Setting, str]] = []
    tried: list[Setting] = []
    for s in settings:
        dev = device_of(s.key)
        if dev is not None and dev != "lo" and dev not in interfaces.get(s.node, set()):
            out.append((s, f"node '{s.node}' has no interface '{dev}' for sysctl '{s.key}'"))
        elif any(p in ("", ".", "..") for p in _split(s.key)):
            out.append((s, f"'{s.key}' is not a sysctl name"))
        else:
            tried.append(s)
    if not tried:
        return out
    try:
        with netns.anonymous():
            out += [(s, m) for s in tried if (m := _write(s)) is not None]
    except PermissionError:
        out += [(s, f"no sysctl '{s.key}' in this kernel") for s in tried
                if not os.path.isfile(path_of(as_tried(s.key)))]
    return out


def _write(s: Setting) -> str | None:
    path = path_of(as_tried(s.key))
    try:
        with open(path, "w") as f:
            f.write(s.value)
    except FileNotFoundError:
        return (f"no sysctl '{s.key}' in a network namespace of this kernel (a lab sets "
                "only what each namespace has of its own)")
    except IsADirectoryError:
        return f"'{s.key}' is a group of sysctls, not one"
    except OSError as e:
        if e.errno == errno.EINVAL or e.errno == errno.ERANGE:
            return f"the kernel refuses {s.key}={s.value!r} ({e.strerror})"
        return f"cannot set {s.key}={s.value!r}: {e.strerror}"
    return None
