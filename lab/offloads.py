"""Device offload features (what `ethtool -K` changes), through pyroute2's ethtool ioctls.

Topology files name features as `ethtool -K` does: its short aliases (tso, gso, gro, tx...),
its long names (tcp-segmentation-offload...) or the kernel's own feature names
(tx-tcp6-segmentation...). Callers run this inside the device's namespace (`netns.entered`).
"""

from __future__ import annotations

from pyroute2.ethtool.ioctl import IoctlEthtool

from lab.errors import LabError

# ethtool's aliases -> the kernel feature names they switch (ethtool's off_flag_def table).
ALIASES: dict[str, tuple[str, ...]] = {
    "rx": ("rx-checksum",),
    "tx": ("tx-checksum-ipv4", "tx-checksum-ip-generic", "tx-checksum-ipv6",
           "tx-checksum-fcoe-crc", "tx-checksum-sctp"),
    "sg": ("tx-scatter-gather", "tx-scatter-gather-fraglist"),
    "tso": ("tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation",
            "tx-tcp6-segmentation"),
    "gso": ("tx-generic-segmentation",),
    "gro": ("rx-gro",),
    "lro": ("rx-lro",),
    "rxvlan": ("rx-vlan-hw-parse",),
    "txvlan": ("tx-vlan-hw-insert",),
}
LONG_NAMES = {
    "rx-checksumming": "rx", "tx-checksumming": "tx", "scatter-gather": "sg",
    "tcp-segmentation-offload": "tso", "generic-segmentation-offload": "gso",
    "generic-receive-offload": "gro", "large-receive-offload": "lro",
}


def kernel_names(name: str, available: set[str]) -> list[str]:
    """The kernel feature names NAME stands for on a device offering AVAILABLE."""
    alias = LONG_NAMES.get(name, name)
    if alias in ALIASES:
        return [n for n in ALIASES[alias] if n in available]
    if name in available:
        return [name]
    raise KeyError(name)


def apply(ifname: str, wanted: dict[str, bool], label: str) -> dict[str, bool]:
    """Set features on IFNAME (in the current namespace); return them as read back."""
    eth = IoctlEthtool(ifname)
    try:
        features = eth.get_features()
        available = set(features.keys())
        targets: dict[str, bool] = {}
        for name, on in wanted.items():
            try:
                names = kernel_names(name, available)
            except KeyError:
                raise LabError(f"{label}: unknown offload feature '{name}' (ethtool aliases: "
                               f"{', '.join(sorted(ALIASES))}; or a kernel feature name as "
                               "`ethtool -k` prints it)") from None
            for n in names:
                targets[n] = on
        changes = {n: on for n, on in targets.items() if features.get_value(n) != on}
        for n, on in changes.items():
            if not features.is_available(n):
                raise LabError(f"{label}: offload '{n}' is fixed on this device "
                               f"({'on' if features.get_value(n) else 'off'} [fixed])")
            features.set_value(n, on)
        if changes:
            eth.set_features(features)
            features = eth.get_features()
        readback = {n: bool(features.get_value(n)) for n in targets}
        wrong = {n for n, on in targets.items() if readback[n] != on}
        if wrong:
            raise LabError(f"{label}: the kernel did not apply offloads: "
                           + ", ".join(f"{n}={'on' if targets[n] else 'off'}" for n in wrong))
        return readback
    finally:
        eth.close()
