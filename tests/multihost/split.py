"""The reference nat46 topology split across two hosts, for the tests of labs that span hosts:
the client on one host, the gateway, the node with its pods and the IPv4 server on the other,
the client's link to the gateway of kind vxlan or phys (topologies/nat46.yaml otherwise as it
is: addresses, routes, the translator and DNS64)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_SIDE = ("gw", "node1", "server4")


def split_nat46(kind: str, *, here: str, there: str, ssh: str, lab: str,
                underlay: tuple[str, str] = ("10.99.0.1", "10.99.0.2"),
                nics: tuple[str, str] = ("eth1", "eth1"), name: str = "nat46") -> dict:
    """The document: HERE ("client" or "gateway") is the side on `local`, the other side on
    host `THERE` (reached as `ssh SSH`, lab command LAB). UNDERLAY and NICS: the client
    side's, then the gateway side's."""
    doc = yaml.safe_load((ROOT / "topologies" / "nat46.yaml").read_text())
    doc["name"] = name
    doc["hosts"] = {there: {"ssh": ssh, "lab": lab}}
    remote = "client" if here == "gateway" else "gateway"
    for node in doc["nodes"]:
        side = "gateway" if node in GATEWAY_SIDE else "client"
        if side == remote:
            doc["nodes"][node]["host"] = there
    link = next(li for li in doc["links"] if li["ends"][0]["node"] == "client")
    client, gw = link["ends"]
    link["kind"] = kind
    if kind == "vxlan":
        link["vxlan"] = {"vni": 4600}
        client["underlay"], gw["underlay"] = ({"address": a} for a in underlay)
    else:
        client["phys"], gw["phys"] = nics
    return doc


def write(doc: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
