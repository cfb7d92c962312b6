"""BIG TCP as a datapath feature: GSO/GRO limits above 64 KiB along a path of a running lab,
and the big packet counter that proves packets above 64 KiB crossed it.

    control   the limits per address family, and BigPacketCounter (control.py)
    cli       `lab bigtcp`
    steps     the step kinds `bigtcp_sizes` and `big_packet_proof` (scenarios/bigtcp*.yaml)
    feature   BigTcpDatapath: what the feature offers through the contract

    from lab.datapath import bigtcp
    path = bigtcp.path(lab, "client", "router", "server")
    bigtcp.enable(path, 6, 185000)
"""

from lab.datapath.bigtcp.control import (DEFAULT_PATH, DEVICE_MAX, DIRECTIONS, FAMILIES,
                                         FAMILY_ATTRS, FORWARDING_HEADROOM, GRO_MAX_SIZE,
                                         BigPacketCounter, End, EndState, LinkCount, LinkPath,
                                         Reading, Size, disable, enable, path, resolve_size,
                                         set_sizes, state)

__all__ = ["DEFAULT_PATH", "DEVICE_MAX", "DIRECTIONS", "FAMILIES", "FAMILY_ATTRS",
           "FORWARDING_HEADROOM", "GRO_MAX_SIZE", "BigPacketCounter", "End", "EndState",
           "LinkCount", "LinkPath", "Reading", "Size", "disable", "enable", "path",
           "resolve_size", "set_sizes", "state"]
