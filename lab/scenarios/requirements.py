"""What a scenario requires, checked against this machine: `lab doctor`'s names, or CONFIG_X.

A requirement is a capability or tool as `lab doctor` names it (privileges, veth, netkit,
big_tcp_ipv6, big_tcp_ipv4, iperf3, tcpdump, ...; also the BPF features doctor lists when the
BPF layer is present) or a kernel build option (CONFIG_NET_SCH_NETEM: built in or a module).
Every scenario needs privileges (labs are network namespaces). The machine is probed once per
run, through the probes doctor lists (lab.features.collect), so a scenario and `lab doctor` never disagree.
"""

from __future__ import annotations

from lab import features
from lab.features import Capability


class Requirements:
    """The machine's answers, probed on first use and kept for the run."""

    def __init__(self):
        self._caps: dict[str, Capability] | None = None

    def _collect(self) -> dict[str, Capability]:
        if self._caps is None:
            self._caps = {c.name: c for c in features.collect()}
        return self._caps

    def probe(self, name: str) -> Capability | None:
        """The capability NAME as found here; None if no probe knows the name."""
        if name.startswith("CONFIG_"):
            value = features.config_option(name)
            if value is None:
                return Capability(name, False, "this kernel does not expose its configuration "
                                               "(/proc/config.gz or /boot/config-*)")
            return Capability(name, value in ("y", "m"), f"{name}={value}")
        caps = self._collect()
        if name in caps:
            return caps[name]
        if name in features.TOOLS:
            return features.tool(name)
        privileges = caps["privileges"]
        if not privileges.ok:
            # Kernel probes need root: doctor skipped them, so the name cannot be judged here.
            return Capability(name, False, f"not probed: {privileges.detail}")
        return None

    def missing(self, names: list[str]) -> tuple[list[Capability], list[str]]:
        """(the capabilities among NAMES this machine lacks, the names nothing knows)."""
        lacking, unknown = [], []
        for name in dict.fromkeys(["privileges", *names]):
            cap = self.probe(name)
            if cap is None:
                unknown.append(name)
            elif not cap.ok:
                lacking.append(cap)
        return lacking, unknown
