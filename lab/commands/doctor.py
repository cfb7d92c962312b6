"""`lab doctor`: what this machine can do for the lab, each answer with its reason."""

from __future__ import annotations

import json
import platform

from lab import features
from lab.bpf import features as bpf_features


def register(sub) -> None:
    p = sub.add_parser("doctor", help="kernel and tool capabilities, privileges",
                       description="Check privileges, kernel features (netns, veth, netkit, "
                                   "tcx, XDP, BIG TCP, BPF helpers) and tools.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)


def collect() -> list[features.Capability]:
    caps = [features.privileges()]
    if caps[0].ok:
        ok, detail = features.link_kind("veth")
        caps.append(features.Capability("veth", ok, detail))
        ok, detail = features.netkit()
        caps.append(features.Capability("netkit", ok, detail))
        ok, detail = features.netem()
        caps.append(features.Capability("netem", ok, detail))
        big = features.big_tcp()
        caps += big.values()
        caps.append(_big_tcp_form(big["ipv6"]))
    caps += bpf_features.collect()
    caps += [features.tool(name) for name in features.TOOLS]
    return caps


def _big_tcp_form(ipv6: features.Capability) -> features.Capability:
    """How this kernel writes IPv6 packets above 64 KB (what the translator must write too)."""
    from lab.datapath import bigtcp_form

    name = "big_tcp_ipv6_form"
    if not ipv6.ok:
        return features.Capability(name, False, f"no IPv6 BIG TCP: {ipv6.detail}")
    try:
        form = bigtcp_form.ipv6_form()
    except bigtcp_form.ProbeError as e:
        return features.Capability(name, False, str(e))
    return features.Capability(name, True, bigtcp_form.DESCRIPTIONS[form])


def cmd_doctor(args) -> int:
    caps = collect()
    if args.json:
        print(json.dumps({"kernel": platform.release(),
                          "capabilities": [c.as_dict() for c in caps]}, indent=2))
    else:
        print(f"kernel {platform.release()}")
        width = max(len(c.name) for c in caps)
        for c in caps:
            print(f"  {c.name:<{width}}  {'yes' if c.ok else 'no ':<3}  {c.detail}")
    return 0 if caps[0].ok else 2
